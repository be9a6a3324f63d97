// Each CPU backend op against its plain reference (ops_ref.h), with a stated
// tolerance per op, on shapes that exercise partial tiles and thread splits.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/nn/blas_setup.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/cpu_kernels.h"
#include "workers/engine/nn/ops_ref.h"
#include "workers/engine/nn/rope.h"

namespace compressd::engine {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// max |a - b| / (atol + rtol |b|) <= 1 elementwise.
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float atol,
                 float rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i]))
        << "at " << i << ": got " << got[i] << " want " << want[i];
  }
}

TEST(CpuKernels, FastExpIsAccurateOverTheFloatRange) {
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
    const double want = std::exp(double{x});
    ASSERT_LE(std::fabs(cpu::FastExp(x) - want), 3e-7 * want) << x;
  }
  EXPECT_EQ(cpu::FastExp(-std::numeric_limits<float>::infinity()) < 1e-37f, true);
}

class CpuOpsTest : public ::testing::TestWithParam<int> {  // thread count
 protected:
  CpuBackend backend_{CpuBackendOptions{GetParam(), 128}};
};

TEST_P(CpuOpsTest, LinearMatchesRefForRowAndColumnSplits) {
  for (auto [t, in, out] : {std::tuple{1, 33, 70}, {5, 64, 300}, {300, 48, 20}, {129, 17, 129}}) {
    const auto x = Random(int64_t{t} * in, 1), w = Random(int64_t{out} * in, 2), b = Random(out, 3);
    std::vector<float> got(int64_t{t} * out), want(got.size());
    backend_.Linear(x.data(), t, in, w.data(), b.data(), out, got.data());
    LinearRef(x.data(), t, in, w.data(), b.data(), out, want.data());
    ExpectClose(got, want, 1e-4f, 1e-5f);
    backend_.Linear(x.data(), t, in, w.data(), nullptr, out, got.data());
    LinearRef(x.data(), t, in, w.data(), nullptr, out, want.data());
    ExpectClose(got, want, 1e-4f, 1e-5f);
  }
}

TEST_P(CpuOpsTest, RmsNormSiluMulAddEmbedMatchRef) {
  const int64_t t = 37, dim = 83;
  const auto x = Random(t * dim, 4, 3.0f), w = Random(dim, 5);
  std::vector<float> got(t * dim), want(t * dim);
  backend_.RmsNorm(x.data(), w.data(), t, dim, 1e-5f, got.data());
  RmsNormRef(x.data(), w.data(), t, dim, 1e-5f, want.data());
  ExpectClose(got, want, 1e-6f, 1e-5f);

  const auto g = Random(100003, 6, 8.0f), u = Random(100003, 7);
  got.resize(g.size());
  want.resize(g.size());
  backend_.SiluMul(g.data(), u.data(), g.size(), got.data());
  SiluMulRef(g.data(), u.data(), g.size(), want.data());
  ExpectClose(got, want, 1e-6f, 1e-5f);

  std::vector<float> a = g, b = g;
  backend_.Add(a.data(), u.data(), a.size());
  AddRef(b.data(), u.data(), b.size());
  EXPECT_EQ(a, b);

  const std::vector<int32_t> ids = {3, 0, 7, 3};
  const auto table = Random(8 * 5, 8);
  got.assign(ids.size() * 5, 0);
  want.assign(ids.size() * 5, 0);
  backend_.Embed(table.data(), 5, ids.data(), 4, got.data());
  EmbedRef(table.data(), 5, ids.data(), 4, want.data());
  EXPECT_EQ(got, want);
}

// W8A8's per-token int8 quantization: vLLM's arithmetic (x * 127 / max|x|,
// round half to even, clamp to [-128, 127], times max|x| / 127), row by row.
TEST_P(CpuOpsTest, QuantizeActivationsIsPerTokenInt8) {
  const float s = 2.0f / 127.0f;
  // x * 63.5: 1 -> 63.5, a tie, to even 64; -2 -> -127 (the row's maximum maps to
  // exactly -127); 0.5 -> 31.75 -> 32. Second row: 2 -> 127, 1 -> 64.
  const std::vector<float> x = {1.0f, -2.0f, 0.5f, 0.0f, 0, 0, 0, 0, 2.0f, 1.0f, 0, 0};
  std::vector<float> got(x.size(), -1.0f);
  backend_.QuantizeActivations(x.data(), 3, 4, ActQuantType::kInt8, got.data());
  const std::vector<float> want = {64 * s, -127 * s, 32 * s, 0, 0, 0, 0,
                                   0,      127 * s,  64 * s, 0, 0};  // a zero row stays zero
  EXPECT_EQ(got, want);

  const int64_t t = 53, dim = 301;
  auto r = Random(t * dim, 11, 2.0f);
  r[5 * dim + 7] = 80.0f;  // an outlier channel: its token's other values lose precision
  std::vector<float> fast(r.size()), ref(r.size());
  backend_.QuantizeActivations(r.data(), t, dim, ActQuantType::kInt8, fast.data());
  QuantizeActivationsRef(r.data(), t, dim, ActQuantType::kInt8, ref.data());
  EXPECT_EQ(fast, ref);
  for (int64_t row = 0; row < t; ++row) {
    float max = 0;
    for (int64_t j = 0; j < dim; ++j) max = std::max(max, std::fabs(r[row * dim + j]));
    for (int64_t j = 0; j < dim; ++j) {  // within half a step of the input
      ASSERT_LE(std::fabs(ref[row * dim + j] - r[row * dim + j]), 0.5f * max / 127.0f + 1e-6f);
    }
  }
}

// fp8 W8A8's per-token E4M3 quantization (vLLM's: s = max|x| / 448, e4m3(x / s) * s).
TEST_P(CpuOpsTest, QuantizeActivationsIsPerTokenFp8) {
  // Row max 448: s = 1, so each value becomes its nearest E4M3 value: 17 lies
  // between 16 and 18 (a tie, to the even mantissa: 16), 0.3 -> 0.3125. The
  // third row's max is 4: s = 1/112, 1 -> 112, 0.01 -> 1.12 -> 1.125.
  const std::vector<float> x = {448.0f, 17.0f, -0.3f, 0.0f, 0, 0, 0, 0, -4.0f, 1.0f, 0.01f, 0};
  std::vector<float> got(x.size(), -1.0f);
  backend_.QuantizeActivations(x.data(), 3, 4, ActQuantType::kFp8E4m3, got.data());
  const float s = 4.0f / 448.0f;
  const std::vector<float> want = {448.0f, 16.0f, -0.3125f, 0,       0,          0,
                                   0,      0,     -448 * s, 112 * s, 1.125f * s, 0};
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;

  const int64_t t = 53, dim = 301;
  auto r = Random(t * dim, 12, 2.0f);
  r[5 * dim + 7] = 80.0f;
  r[9 * dim + 3] = 1e-30f;  // a tiny row below: vLLM's floor on the scale
  for (int64_t j = 0; j < dim; ++j) r[11 * dim + j] *= 1e-9f;
  std::vector<float> fast(r.size()), ref(r.size());
  backend_.QuantizeActivations(r.data(), t, dim, ActQuantType::kFp8E4m3, fast.data());
  QuantizeActivationsRef(r.data(), t, dim, ActQuantType::kFp8E4m3, ref.data());
  EXPECT_EQ(fast, ref);
  for (int64_t row = 0; row < t; ++row) {  // within 1/16 relative (3 mantissa bits) or a tiny step
    float max = 0;
    for (int64_t j = 0; j < dim; ++j) max = std::max(max, std::fabs(r[row * dim + j]));
    for (int64_t j = 0; j < dim; ++j) {
      const float v = r[row * dim + j];
      ASSERT_LE(std::fabs(ref[row * dim + j] - v),
                std::fabs(v) / 16.0f + std::max(max / 448.0f, 1.0f / 229376.0f) / 1024.0f)
          << row << " " << j;
    }
  }
}

TEST_P(CpuOpsTest, RopeMatchesRef) {
  LlamaConfig c;
  c.head_dim = 16;
  c.rope_theta = 10000.0f;
  auto table = BuildRopeTable(c, 64);
  ASSERT_TRUE(table.ok()) << table.status();
  const int64_t t = 40;
  std::vector<int32_t> pos(t);
  for (int64_t i = 0; i < t; ++i) pos[i] = static_cast<int32_t>((i * 7) % 64);
  auto got = Random(t * 3 * 16, 9), want = got;
  backend_.Rope(got.data(), t, 3, 16, pos.data(), *table);
  RopeRef(want.data(), t, 3, 16, pos.data(), *table);
  ExpectClose(got, want, 1e-6f, 1e-6f);
}

TEST_P(CpuOpsTest, SoftmaxAndKlStatsMatchRefAcrossChunks) {
  const int64_t t = 9, vocab = 1000, chunk = 384;
  const auto p = Random(t * vocab, 10, 4.0f), q = Random(t * vocab, 11, 4.0f);
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> m1(t, -inf), s1(t, 0), c1(t, 0), m2(t, -inf), s2(t, 0), c2(t, 0);
  std::vector<int32_t> a1(t, -1), a2(t, -1);
  std::vector<float> pc, qc;
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t n = std::min(chunk, vocab - v0);
    pc.resize(t * n);
    qc.resize(t * n);
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        pc[r * n + i] = p[r * vocab + v0 + i];
        qc[r * n + i] = q[r * vocab + v0 + i];
      }
    }
    backend_.KlStatsUpdate(pc.data(), qc.data(), t, n, v0, m1.data(), s1.data(), a1.data(),
                           c1.data());
    KlStatsUpdateRef(pc.data(), qc.data(), t, n, v0, m2.data(), s2.data(), a2.data(), c2.data());
  }
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(a1, a2);
  ExpectClose(s1, s2, 0.0f, 1e-5f);
  ExpectClose(c1, c2, 1e-4f, 1e-4f);
  // The argmax is the true one.
  for (int64_t r = 0; r < t; ++r) {
    const auto* row = &p[r * vocab];
    EXPECT_EQ(a1[r], std::max_element(row, row + vocab) - row);
  }
}

struct AttnCase {
  std::vector<int64_t> lens;
  int n_heads, n_kv, hd, tile;
};

TEST_P(CpuOpsTest, BlockwiseAttentionMatchesFullSoftmax) {
  const std::vector<AttnCase> cases = {
      {{37, 64, 9}, 4, 2, 16, 16},  // partial and exact tiles, GQA 2
      {{1, 5}, 6, 2, 8, 4},         // single-token sequence, group 3
      {{130}, 3, 1, 32, 128},       // MQA, just over one tile
      {{77, 33}, 4, 4, 16, 7},      // MHA, odd tile
  };
  for (const AttnCase& c : cases) {
    CpuBackend backend(CpuBackendOptions{GetParam(), c.tile});
    std::vector<int64_t> start = {0};
    for (int64_t l : c.lens) start.push_back(start.back() + l);
    const int64_t t = start.back();
    const auto q = Random(t * c.n_heads * c.hd, 12, 2.0f);
    const auto k = Random(t * c.n_kv * c.hd, 13, 2.0f), v = Random(t * c.n_kv * c.hd, 14);
    std::vector<float> got(q.size()), want(q.size());
    const AttentionShape shape{c.n_heads, c.n_kv, c.hd};
    backend.Attention(q.data(), k.data(), v.data(), start.data(), c.lens.size(), shape, got.data());
    AttentionRef(q.data(), k.data(), v.data(), start.data(), c.lens.size(), shape, want.data());
    ExpectClose(got, want, 2e-6f, 2e-5f);
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, CpuOpsTest, ::testing::Values(1, 3));

TEST(Rope, TableMatchesDefinitionAndLlama3Scaling) {
  LlamaConfig c;
  c.head_dim = 8;
  c.rope_theta = 500000.0f;
  auto plain = BuildInvFreq(c);
  ASSERT_TRUE(plain.ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR((*plain)[i], std::pow(500000.0, -2.0 * i / 8),
                1e-6 * std::pow(500000.0, -2.0 * i / 8));
  }
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 32;
  auto scaled = BuildInvFreq(c);
  ASSERT_TRUE(scaled.ok());
  // Wavelength 2pi (< 32/4): kept. Wavelength 2pi*500000^(3/4) (> 32): divided by 8.
  EXPECT_FLOAT_EQ((*scaled)[0], (*plain)[0]);
  EXPECT_FLOAT_EQ((*scaled)[3], (*plain)[3] / 8.0f);
  auto table = BuildRopeTable(c, 10);
  ASSERT_TRUE(table.ok());
  EXPECT_NEAR(table->cos[7 * 4 + 2], std::cos(7.0 * (*scaled)[2]), 1e-6);
  EXPECT_NEAR(table->sin[7 * 4 + 2], std::sin(7.0 * (*scaled)[2]), 1e-6);

  c.rope_scaling.type = "yarn";
  EXPECT_EQ(BuildInvFreq(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.rope_scaling.type = "";
  c.head_dim = 7;
  EXPECT_EQ(BuildInvFreq(c).status().code(), absl::StatusCode::kInvalidArgument);
}

// Phi-3's longrope: each frequency divided by its short or long factor (by
// the batch's length), cos/sin times the attention factor; a partial rotary
// turns only the first dims.
TEST(Rope, LongropeFactorsAndPartialRotary) {
  LlamaConfig c;
  c.head_dim = 16;
  c.rotary_dims = 8;
  c.rope_theta = 10000.0f;
  c.rope_scaling.type = "longrope";
  c.rope_scaling.original_max_position_embeddings = 32;
  c.rope_scaling.short_factor = {1, 2, 3, 4};
  c.rope_scaling.long_factor = {5, 6, 7, 8};
  c.rope_scaling.attention_factor = 1.25f;
  auto short_freq = BuildInvFreq(c);
  auto long_freq = BuildInvFreq(c, /*long_factors=*/true);
  ASSERT_TRUE(short_freq.ok() && long_freq.ok()) << short_freq.status();
  ASSERT_EQ(short_freq->size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const double plain = std::pow(10000.0, -2.0 * i / 8);
    EXPECT_NEAR((*short_freq)[i], plain / (i + 1), 1e-6 * plain);
    EXPECT_NEAR((*long_freq)[i], plain / (i + 5), 1e-6 * plain);
  }
  EXPECT_FALSE(UsesLongFactors(c, 32));
  EXPECT_TRUE(UsesLongFactors(c, 33));
  auto table = BuildRopeTable(c, 4, true);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->half, 4);
  EXPECT_NEAR(table->cos[3 * 4 + 1], 1.25 * std::cos(3.0 * (*long_freq)[1]), 1e-6);

  // The last 8 dims of each head pass through.
  std::vector<float> x(16), before;
  for (int i = 0; i < 16; ++i) x[i] = 0.1f * (i + 1);
  before = x;
  CpuBackend backend(CpuBackendOptions{1, 16});
  const int32_t position = 3;
  backend.Rope(x.data(), 1, 1, 16, &position, *table);
  for (int i = 8; i < 16; ++i) EXPECT_EQ(x[i], before[i]) << i;
  EXPECT_NE(x[0], before[0]);

  c.rope_scaling.long_factor.pop_back();  // one factor per rotated pair
  EXPECT_EQ(BuildInvFreq(c).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine

namespace compressd::engine {
namespace {

TEST(BlasSetup, ReportsTheOpenBlasCoreAndWarnsOnlyForAnAvx2CoreOnAnAvx512Cpu) {
  const BlasInfo info = GetBlasInfo();
  EXPECT_FALSE(info.core.empty()) << "the build links OpenBLAS";
  EXPECT_EQ(BlasCoreWarning().empty(), !info.cpu_avx512 || info.avx512_core);
}

}  // namespace
}  // namespace compressd::engine
