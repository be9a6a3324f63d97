// The forward pass on the real SmolLM2-135M-Instruct (GGUF Q4_1, dequantized)
// against transformers on the same dequantized weights
// (tests/golden/nn_real_model_fixtures.py). Needs COMPRESSD_REAL_MODEL (set by
// ctest from the CMake cache variable); fails without it.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/golden_files.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/nn/backend_factory.h"
#include "workers/engine/nn/bf16_gemm.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine {
namespace {

// Logit tolerance vs transformers: |d| <= kAbs + kRel * |ref|, float32 on both
// sides over 30 blocks; the observed max |d| is 7.3e-5 (docs/benchmarks.md).
constexpr float kAbs = 5e-4f;
constexpr float kRel = 1e-5f;
// Windows of ppl-persuasion checked here (the full 64 run in bench/forward).
constexpr int kPplWindows = 2;

std::string Fixture(const std::string& name) { return compressd::testing::GoldenFixture(name); }
std::string ReadAll(const std::string& path) { return compressd::testing::ReadFileBytes(path); }

class RealModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* path = std::getenv("COMPRESSD_REAL_MODEL");
    if (path == nullptr || *path == '\0' || !std::ifstream(path).good()) {
      load_error_ =
          "COMPRESSD_REAL_MODEL is unset or missing: run scripts/fetch-model.sh and "
          "configure with -DCOMPRESSD_REAL_MODEL=<the path it prints>";
      return;
    }
    auto model = LoadGgufModel(std::string(path));
    if (!model.ok()) {
      load_error_ = model.status().ToString();
      return;
    }
    model_ = new LlamaModel(std::move(*model));
    meta_ = nlohmann::json::parse(ReadAll(Fixture("nn_real_smollm2.json")), nullptr, false);
    const std::string tok = ReadAll(Fixture("nn_ppl_persuasion_tokens.bin"));
    tokens_.resize(tok.size() / 4);
    std::memcpy(tokens_.data(), tok.data(), tokens_.size() * 4);
  }
  static void TearDownTestSuite() { delete model_; }
  void SetUp() override {
    ASSERT_TRUE(load_error_.empty()) << load_error_;
    ASSERT_FALSE(meta_.is_discarded()) << "bad fixture nn_real_smollm2.json";
  }

  static inline std::string load_error_;
  static inline LlamaModel* model_ = nullptr;
  static inline nlohmann::json meta_;
  static inline std::vector<int32_t> tokens_;
};

TEST_F(RealModelTest, LogitsOf128TokenSequencesMatchTransformers) {
  CpuBackend backend;
  auto fwd = LlamaForward::Create(model_, &backend);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  const std::string bin = ReadAll(Fixture("nn_real_smollm2.bin"));
  const float* ref = reinterpret_cast<const float*>(bin.data());
  const int64_t vocab = meta_["vocab"], len = meta_["seq_len"], k = meta_["top_k"];
  const std::vector<int64_t> sample = meta_["sample_ids"];
  const std::vector<int64_t> offsets = meta_["seq_offsets"];
  const int64_t per_seq = vocab + len * static_cast<int64_t>(sample.size()) + len * k;
  ASSERT_EQ(bin.size(), sizeof(float) * per_seq * offsets.size());
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t off : offsets) seqs.emplace_back(tokens_.begin() + off, tokens_.begin() + off + len);
  auto logits = fwd->Logits(*SequenceBatch::Pack(seqs));  // all four in one batch
  ASSERT_TRUE(logits.ok()) << logits.status();
  float worst = 0;
  int top1_mismatch = 0;
  auto check = [&](float got, float want) {
    const float d = std::fabs(got - want);
    worst = std::max(worst, d);
    EXPECT_LE(d, kAbs + kRel * std::fabs(want));
  };
  for (size_t s = 0; s < offsets.size(); ++s) {
    const float* r = ref + s * per_seq;
    const float* got = logits->data() + s * len * vocab;
    for (int64_t v = 0; v < vocab; ++v) check(got[(len - 1) * vocab + v], r[v]);
    for (int64_t p = 0; p < len; ++p) {
      for (size_t j = 0; j < sample.size(); ++j) {
        check(got[p * vocab + sample[j]], r[vocab + p * sample.size() + j]);
      }
      for (int64_t j = 0; j < k; ++j) {
        const int64_t id = meta_["top_ids"][s][p][j];
        check(got[p * vocab + id], r[vocab + len * sample.size() + p * k + j]);
      }
      const float* row = got + p * vocab;
      top1_mismatch += (std::max_element(row, row + vocab) - row) != meta_["top_ids"][s][p][0];
    }
  }
  EXPECT_EQ(top1_mismatch, 0);
  std::printf("max |logit - transformers| = %g\n", worst);
}

TEST_F(RealModelTest, PerplexityOfFirstPersuasionWindowsMatchesTransformers) {
  CpuBackend backend;
  auto fwd = LlamaForward::Create(model_, &backend);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  const auto& ppl = meta_["ppl_persuasion"];
  const int64_t window = ppl["window"];
  auto got = Perplexity(*fwd, tokens_, {window, kPplWindows, kPplWindows});
  ASSERT_TRUE(got.ok()) << got.status();
  double nll = 0;
  for (int w = 0; w < kPplWindows; ++w) nll += ppl["window_nll_sums"][w].get<double>();
  const double want = std::exp(nll / (kPplWindows * (window - 1)));
  EXPECT_EQ(got->n_predicted, kPplWindows * (window - 1));
  EXPECT_NEAR(got->perplexity, want, 1e-3 * want);  // within 0.1%
  std::printf("ppl (%d windows): ours %.6f transformers %.6f\n", kPplWindows, got->perplexity,
              want);
}

// compute: bf16 against transformers with every Linear in BF16
// (tests/golden/bf16_reference.py). After block 0 the two agree to float32
// noise, far closer than either is to float32: a bf16 backend that computed in
// float32 fails here. Deeper, BF16 rounding flips make the model chaotic at
// the 0.05-logit level (see the script), so the whole model is checked as a
// result: perplexity within 0.1% of the reference's BF16 one.
TEST_F(RealModelTest, Bf16LinearsMatchTheTransformersBf16Reference) {
  if (!Bf16GemmAvailable().ok()) GTEST_SKIP() << Bf16GemmAvailable().message();
  const nlohmann::json ref =
      nlohmann::json::parse(ReadAll(Fixture("nn_real_smollm2_bf16.json")), nullptr, false);
  ASSERT_FALSE(ref.is_discarded()) << "bad fixture nn_real_smollm2_bf16.json";
  auto backend = CreateBackend("cpu", 2, Compute::kBf16);
  ASSERT_TRUE(backend.ok()) << backend.status();
  auto fwd = LlamaForward::Create(model_, backend->get());
  ASSERT_TRUE(fwd.ok()) << fwd.status();

  const int64_t n = ref["block0_tokens"], hidden = model_->config.hidden;
  const std::string bin = ReadAll(Fixture("nn_real_smollm2_bf16_block0.bin"));
  ASSERT_EQ(bin.size(), sizeof(float) * 2 * n * hidden);
  const float* want_bf16 = reinterpret_cast<const float*>(bin.data());
  const float* want_fp32 = want_bf16 + n * hidden;
  std::vector<std::vector<int32_t>> seq{{tokens_.begin(), tokens_.begin() + n}};
  const SequenceBatch batch = *SequenceBatch::Pack(seq);
  std::vector<float> h(n * hidden);
  ASSERT_TRUE(fwd->Embed(batch, h.data()).ok());
  BlockWorkspace ws;
  ASSERT_TRUE(fwd->RunBlock(model_->blocks[0], batch, h.data(), &ws).ok());
  double to_bf16 = 0, bf16_to_fp32 = 0;
  for (int64_t i = 0; i < n * hidden; ++i) {
    to_bf16 += std::pow(double{h[i]} - want_bf16[i], 2);
    bf16_to_fp32 += std::pow(double{want_fp32[i]} - want_bf16[i], 2);
  }
  to_bf16 = std::sqrt(to_bf16 / (n * hidden));
  bf16_to_fp32 = std::sqrt(bf16_to_fp32 / (n * hidden));
  std::printf(
      "block 0 output, rms: ours bf16 - transformers bf16 %.3g; transformers bf16 - fp32 "
      "%.3g\n",
      to_bf16, bf16_to_fp32);
  // Measured: 0.05 of it (float32 order differences flip some roundings;
  // our float32 block 0 is 1e-6 from transformers'); float32 would be ~1.
  EXPECT_LT(to_bf16, 0.25 * bf16_to_fp32);

  const int64_t window = ref["window"], windows = ref["windows"];
  auto got = Perplexity(*fwd, tokens_, {window, windows, windows});
  ASSERT_TRUE(got.ok()) << got.status();
  double bf16 = 0, fp32 = 0;
  for (int64_t w = 0; w < windows; ++w) {
    bf16 += ref["window_nll_sums_bf16"][w].get<double>();
    fp32 += ref["window_nll_sums_fp32"][w].get<double>();
  }
  const double count = static_cast<double>(windows * (window - 1));
  const double want = std::exp(bf16 / count);
  std::printf("perplexity, %lld windows: ours bf16 %.4f, transformers bf16 %.4f, fp32 %.4f\n",
              static_cast<long long>(windows), got->perplexity, want, std::exp(fp32 / count));
  EXPECT_NEAR(got->perplexity, want, 1e-3 * want);
}

}  // namespace
}  // namespace compressd::engine
