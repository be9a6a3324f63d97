// Parity of the CUDA forward-pass backend (workers/cuda/cuda_backend.h) with
// the plain references of ops_ref.h, op by op, each with a stated tolerance,
// on shapes with partial tiles, packed sequences of different lengths (one of
// length 1, one empty) and the head shapes of SmolLM2 (9/3 x 64) and Llama 3
// (32/8 x 128). Skipped, visibly, without a GPU.
#include "workers/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/cuda/cuda_test_util.h"
#include "workers/engine/nn/ops_ref.h"
#include "workers/engine/nn/rope.h"

namespace compressd::cuda {
namespace {

using engine::AttentionShape;
using engine::LlamaConfig;
using engine::RopeTable;

const float kNan = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A device copy of a host vector. Construction and ToHost() wait for the
// whole device (every stream, the backend's included), and so does the
// destructor before freeing, so no kernel can still be using the memory.
template <typename T>
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<T>& host) : n_(host.size()) {
    Check(cudaMalloc(&p_, bytes()), "cudaMalloc");
    Check(cudaMemcpy(p_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }
  ~DeviceVector() {
    cudaDeviceSynchronize();
    cudaFree(p_);
  }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector& operator=(const DeviceVector&) = delete;

  T* get() const { return static_cast<T*>(p_); }
  std::vector<T> ToHost() const {
    std::vector<T> host(n_);
    Check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    Check(cudaMemcpy(host.data(), p_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    return host;
  }

 private:
  static void Check(cudaError_t e, const char* what) {
    EXPECT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e);
  }
  size_t bytes() const { return n_ * sizeof(T); }
  void* p_ = nullptr;
  size_t n_;
};

std::unique_ptr<CudaBackend> MakeBackend(GemmMode gemm = GemmMode::kFp32) {
  CudaBackendOptions options;
  options.gemm = gemm;
  auto backend = CudaBackend::Create(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

// |got - want| <= atol + rtol |want| elementwise (NaN in got fails).
void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, float atol,
                 float rtol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i]))
        << "at " << i << ": got " << got[i] << " want " << want[i];
  }
}

// |got - want| <= tol * max |want| over the row, for rows of `cols`.
void ExpectRowsClose(const std::vector<float>& got, const std::vector<float>& want, int64_t cols,
                     float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t r = 0; r * cols < want.size(); ++r) {
    float scale = 1e-6f;
    for (int64_t c = 0; c < cols; ++c) scale = std::max(scale, std::fabs(want[r * cols + c]));
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = r * cols + c;
      ASSERT_LE(std::fabs(got[i] - want[i]), tol * scale)
          << "row " << r << " col " << c << ": got " << got[i] << " want " << want[i];
    }
  }
}

// x rounded to BF16, to nearest even (as __float2bfloat16_rn; no NaNs here).
float RoundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  std::memcpy(&x, &bits, sizeof(bits));
  return x;
}

TEST(CudaBackendTest, CreateReportsAMissingDeviceAsAStatus) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  CudaBackendOptions options;
  options.device = 999;
  auto missing = CudaBackend::Create(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument) << missing.status();
  EXPECT_NE(missing.status().message().find("999"), absl::string_view::npos) << missing.status();

  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->name(), "cuda:0");
}

TEST(CudaBackendTest, AFailedOpIsKeptAndLaterOpsDoNothing) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  DeviceVector<float> x(std::vector<float>(8, 1.0f)), y(std::vector<float>(8, 2.0f));
  DeviceVector<int64_t> start(std::vector<int64_t>{0, 1});
  backend->Attention(x.get(), x.get(), x.get(), start.get(), 1, AttentionShape{1, 1, 512}, y.get());
  const absl::Status failed = backend->status();
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument) << failed;
  EXPECT_NE(failed.message().find("Attention"), absl::string_view::npos) << failed;
  EXPECT_NE(failed.message().find("512"), absl::string_view::npos) << failed;
  backend->Add(x.get(), y.get(), 8);  // skipped
  EXPECT_EQ(backend->Synchronize(), failed);
  EXPECT_EQ(x.ToHost(), std::vector<float>(8, 1.0f));
}

// Error relative to the row's largest output. With these seeds, rounding the
// inputs alone costs up to 5.4e-3 in BF16 and 1.3e-3 in TF32 (truncated), so
// kFp32 must be true FP32 (TF32 would miss 1e-4 by 7x or more), and kBf16 is
// checked to be exactly "inputs rounded to BF16, FP32 accumulation" against
// the reference on rounded inputs.
class CudaLinearTest : public ::testing::TestWithParam<GemmMode> {};

TEST_P(CudaLinearTest, LinearMatchesRef) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  const GemmMode mode = GetParam();
  auto backend = MakeBackend(mode);
  ASSERT_NE(backend, nullptr);
  const float tol = mode == GemmMode::kFp32 ? 1e-4f : mode == GemmMode::kTf32 ? 3e-3f : 1e-2f;
  int seed = 0;
  for (auto [t, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 33, 70},
                            {5, 64, 300},
                            {300, 48, 20},
                            {129, 576, 1536},
                            {17, 2048, 96}}) {
    const auto x = Random(t * in, ++seed), w = Random(out * in, ++seed), b = Random(out, ++seed);
    const bool with_bias = seed % 2 == 0;
    const float* bias = with_bias ? b.data() : nullptr;
    DeviceVector<float> dx(x), dw(w), db(b), dy(std::vector<float>(t * out, kNan));
    backend->Linear(dx.get(), t, in, dw.get(), with_bias ? db.get() : nullptr, out, dy.get());
    ASSERT_TRUE(backend->Synchronize().ok()) << backend->status();
    const std::vector<float> got = dy.ToHost();
    std::vector<float> want(t * out);
    engine::LinearRef(x.data(), t, in, w.data(), bias, out, want.data());
    SCOPED_TRACE(::testing::Message() << "t=" << t << " in=" << in << " out=" << out);
    ExpectRowsClose(got, want, out, tol);
    if (mode == GemmMode::kBf16) {
      std::vector<float> xr = x, wr = w;
      for (float& v : xr) v = RoundToBf16(v);
      for (float& v : wr) v = RoundToBf16(v);
      engine::LinearRef(xr.data(), t, in, wr.data(), bias, out, want.data());
      ExpectRowsClose(got, want, out, 5e-4f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(GemmModes, CudaLinearTest,
                         ::testing::Values(GemmMode::kFp32, GemmMode::kTf32, GemmMode::kBf16),
                         [](const ::testing::TestParamInfo<GemmMode>& info) {
                           return info.param == GemmMode::kFp32   ? "Fp32"
                                  : info.param == GemmMode::kTf32 ? "Tf32"
                                                                  : "Bf16";
                         });

TEST(CudaBackendTest, QuantizeActivationsMatchesRef) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  for (const engine::ActQuantType type :
       {engine::ActQuantType::kInt8, engine::ActQuantType::kFp8E4m3}) {
    for (auto [t, dim] : {std::pair<int64_t, int64_t>{37, 83}, {1, 576}, {5, 4096}}) {
      auto x = Random(t * dim, 12, 3.0f);
      x[dim + 1] = 60.0f;  // an outlier
      DeviceVector<float> dx(x), dy(std::vector<float>(t * dim, kNan));
      backend->QuantizeActivations(dx.get(), t, dim, type, dy.get());
      std::vector<float> want(t * dim);
      engine::QuantizeActivationsRef(x.data(), t, dim, type, want.data());
      EXPECT_EQ(dy.ToHost(), want) << (type == engine::ActQuantType::kFp8E4m3 ? "fp8" : "int8");
    }
  }
  EXPECT_TRUE(backend->Synchronize().ok()) << backend->status();
}

TEST(CudaBackendTest, RmsNormSiluMulAddEmbedMatchRef) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  for (auto [t, dim] : {std::pair<int64_t, int64_t>{37, 83}, {1, 576}, {5, 4096}}) {
    const auto x = Random(t * dim, 4, 3.0f), w = Random(dim, 5);
    DeviceVector<float> dx(x), dw(w), dy(std::vector<float>(t * dim, kNan));
    backend->RmsNorm(dx.get(), dw.get(), t, dim, 1e-5f, dy.get());
    std::vector<float> want(t * dim);
    engine::RmsNormRef(x.data(), w.data(), t, dim, 1e-5f, want.data());
    ExpectClose(dy.ToHost(), want, 1e-6f, 1e-5f);
  }

  const auto g = Random(100003, 6, 8.0f), u = Random(100003, 7);
  DeviceVector<float> dg(g), du(u);
  backend->SiluMul(dg.get(), du.get(), g.size(), dg.get());  // in place: out aliases gate
  std::vector<float> want(g.size());
  engine::SiluMulRef(g.data(), u.data(), g.size(), want.data());
  ExpectClose(dg.ToHost(), want, 1e-6f, 1e-5f);

  std::vector<float> sum = g;
  DeviceVector<float> da(g);
  backend->Add(da.get(), du.get(), g.size());
  engine::AddRef(sum.data(), u.data(), sum.size());
  EXPECT_EQ(da.ToHost(), sum);

  const std::vector<int32_t> ids = {3, 0, 7, 3, 7};
  const auto table = Random(8 * 300, 8);
  DeviceVector<float> dtable(table), dout(std::vector<float>(ids.size() * 300, kNan));
  DeviceVector<int32_t> dids(ids);
  backend->Embed(dtable.get(), 300, dids.get(), ids.size(), dout.get());
  want.assign(ids.size() * 300, 0.0f);
  engine::EmbedRef(table.data(), 300, ids.data(), ids.size(), want.data());
  EXPECT_EQ(dout.ToHost(), want);
  EXPECT_TRUE(backend->Synchronize().ok()) << backend->status();
}

// The cached device table follows the host table: A, then B, then A again.
TEST(CudaBackendTest, RopeMatchesRefWithPlainAndLlama3Tables) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  LlamaConfig smol;  // SmolLM2-135M
  smol.head_dim = 64;
  smol.rope_theta = 100000.0f;
  LlamaConfig llama;  // Llama 3.1 8B
  llama.head_dim = 128;
  llama.rope_theta = 500000.0f;
  llama.rope_scaling.type = "llama3";
  llama.rope_scaling.factor = 8.0f;
  llama.rope_scaling.original_max_position_embeddings = 8192;  // low/high: 1 and 4
  auto smol_table = engine::BuildRopeTable(smol, 2048);
  auto llama_table = engine::BuildRopeTable(llama, 9000);
  ASSERT_TRUE(smol_table.ok()) << smol_table.status();
  ASSERT_TRUE(llama_table.ok()) << llama_table.status();
  struct Case {
    const RopeTable* table;
    int n_heads, head_dim;
  };
  int seed = 20;
  for (const Case& c : {Case{&*smol_table, 9, 64}, Case{&*llama_table, 32, 128},
                        Case{&*llama_table, 8, 128}, Case{&*smol_table, 3, 64}}) {
    const int64_t t = 37;
    std::mt19937 rng(++seed);
    std::vector<int32_t> pos(t);
    for (int32_t& p : pos) p = static_cast<int32_t>(rng() % c.table->n_positions);
    pos[0] = static_cast<int32_t>(c.table->n_positions - 1);
    auto want = Random(t * c.n_heads * c.head_dim, ++seed);
    DeviceVector<float> dx(want);
    DeviceVector<int32_t> dpos(pos);
    backend->Rope(dx.get(), t, c.n_heads, c.head_dim, dpos.get(), *c.table);
    engine::RopeRef(want.data(), t, c.n_heads, c.head_dim, pos.data(), *c.table);
    ExpectClose(dx.ToHost(), want, 1e-6f, 1e-6f);
  }
  EXPECT_TRUE(backend->Synchronize().ok()) << backend->status();
}

struct AttnCase {
  std::vector<int64_t> lens;
  int n_heads, n_kv, hd;
};

TEST(CudaBackendTest, AttentionMatchesFullSoftmax) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  const std::vector<AttnCase> cases = {
      {{37, 64, 1, 9}, 9, 3, 64},      // SmolLM2 heads; partial tiles, a 1-token sequence
      {{1}, 9, 3, 64},                 // a single token
      {{300, 5, 1, 250}, 32, 8, 128},  // Llama 3 heads; blocks stride over several tiles
      {{40, 33}, 4, 1, 256},           // MQA at the largest head_dim (> 48 KiB shared)
      {{50, 0, 21}, 6, 2, 80},         // an empty sequence; head_dim not a multiple of 32
  };
  uint32_t seed = 40;
  for (const AttnCase& c : cases) {
    std::vector<int64_t> start = {0};
    for (int64_t l : c.lens) start.push_back(start.back() + l);
    const int64_t t = start.back();
    const auto q = Random(t * c.n_heads * c.hd, ++seed, 2.0f);
    const auto k = Random(t * c.n_kv * c.hd, ++seed, 2.0f), v = Random(t * c.n_kv * c.hd, ++seed);
    const AttentionShape shape{c.n_heads, c.n_kv, c.hd};
    DeviceVector<float> dq(q), dk(k), dv(v), dout(std::vector<float>(q.size(), kNan));
    DeviceVector<int64_t> dstart(start);
    backend->Attention(dq.get(), dk.get(), dv.get(), dstart.get(), c.lens.size(), shape,
                       dout.get());
    ASSERT_TRUE(backend->Synchronize().ok()) << backend->status();
    std::vector<float> want(q.size());
    engine::AttentionRef(q.data(), k.data(), v.data(), start.data(), c.lens.size(), shape,
                         want.data());
    SCOPED_TRACE(::testing::Message()
                 << "heads " << c.n_heads << "/" << c.n_kv << " hd " << c.hd << " T " << t);
    ExpectClose(dout.ToHost(), want, 1e-4f, 1e-4f);  // float scores and exp vs double
  }
}

// Row r of [t, vocab] logits with ties planted: the first maximum wins,
// within a chunk (across threads, within a thread) and across chunks.
void PlantTies(std::vector<float>& p, int64_t vocab, int64_t chunk) {
  const std::vector<std::pair<int64_t, int64_t>> ties = {
      {5, chunk + 316}, {10, 300}, {20, 276}, {chunk - 1, chunk}};
  for (size_t r = 0; r < ties.size(); ++r) {
    p[r * vocab + ties[r].first] = p[r * vocab + ties[r].second] = 50.0f;
  }
}

void CheckStatsAcrossChunks(CudaBackend& backend, int64_t t, int64_t vocab, int64_t chunk,
                            uint32_t seed) {
  auto p = Random(t * vocab, seed, 4.0f);
  const auto q = Random(t * vocab, seed + 1, 4.0f);
  PlantTies(p, vocab, chunk);
  std::vector<float> m(t, -kInf), s(t, 0.0f), c(t, 0.0f), sm_m = m, sm_s = s;
  std::vector<int32_t> a(t, -1), sm_a = a;
  DeviceVector<float> dm(m), ds(s), dc(c), dsm_m(m), dsm_s(s);
  DeviceVector<int32_t> da(a), dsm_a(a);
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t n = std::min(chunk, vocab - v0);
    std::vector<float> pc(t * n), qc(t * n);
    for (int64_t r = 0; r < t; ++r) {
      std::copy_n(&p[r * vocab + v0], n, &pc[r * n]);
      std::copy_n(&q[r * vocab + v0], n, &qc[r * n]);
    }
    DeviceVector<float> dpc(pc), dqc(qc);
    backend.KlStatsUpdate(dpc.get(), dqc.get(), t, n, v0, dm.get(), ds.get(), da.get(), dc.get());
    backend.SoftmaxStatsUpdate(dpc.get(), t, n, v0, dsm_m.get(), dsm_s.get(), dsm_a.get());
    engine::KlStatsUpdateRef(pc.data(), qc.data(), t, n, v0, m.data(), s.data(), a.data(),
                             c.data());
    engine::SoftmaxStatsUpdateRef(pc.data(), t, n, v0, sm_m.data(), sm_s.data(), sm_a.data());
  }
  ASSERT_TRUE(backend.Synchronize().ok()) << backend.status();
  EXPECT_EQ(dm.ToHost(), m);
  EXPECT_EQ(da.ToHost(), a);
  ExpectClose(ds.ToHost(), s, 0.0f, 1e-5f);
  ExpectClose(dc.ToHost(), c, 1e-4f, 1e-4f);
  EXPECT_EQ(dsm_m.ToHost(), sm_m);
  EXPECT_EQ(dsm_a.ToHost(), sm_a);
  ExpectClose(dsm_s.ToHost(), sm_s, 0.0f, 1e-5f);
  // The argmax is the true first maximum.
  const std::vector<int32_t> got = da.ToHost();
  for (int64_t r = 0; r < t; ++r) {
    const float* row = &p[r * vocab];
    EXPECT_EQ(got[r], std::max_element(row, row + vocab) - row) << "row " << r;
  }
}

TEST(CudaBackendTest, SoftmaxAndKlStatsMatchRefAcrossChunks) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto backend = MakeBackend();
  ASSERT_NE(backend, nullptr);
  {
    SCOPED_TRACE("9 rows, 3 chunks of <= 384");
    CheckStatsAcrossChunks(*backend, 9, 1000, 384, 10);
  }
  {
    SCOPED_TRACE("5 rows, 7 chunks of <= 8192");
    CheckStatsAcrossChunks(*backend, 5, 50000, 8192, 12);
  }
}

}  // namespace
}  // namespace compressd::cuda
