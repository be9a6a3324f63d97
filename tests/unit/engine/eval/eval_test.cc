// Perplexity and model comparison (streamed over vocabulary chunks) against
// direct computation from full logits.
#include <cmath>

#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/eval/model_compare.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/eval/windows.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {
namespace {

using testing::RandomModel;
using testing::RandomTokens;
using testing::SmallConfig;

// log softmax of one row, in double.
std::vector<double> LogSoftmax(const float* row, int64_t n) {
  double m = row[0];
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double{row[i]});
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(row[i] - m);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = row[i] - m - std::log(s);
  return out;
}

TEST(Windows, CutsTheProtocolWindowsAndRejectsShortTexts) {
  std::vector<int32_t> tokens(105);
  for (int i = 0; i < 105; ++i) tokens[i] = i;
  auto w = CutWindows(tokens, {10, 3, 1});
  ASSERT_TRUE(w.ok());
  ASSERT_EQ(w->size(), 3u);
  EXPECT_EQ((*w)[2].front(), 20);
  EXPECT_EQ((*w)[2].back(), 29);
  auto all = CutWindows(tokens, {10, 0, 1});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 10u);
  auto too_many = CutWindows(tokens, {10, 11, 1});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("10 full windows"), std::string::npos);
  EXPECT_EQ(CutWindows(tokens, {1, 3, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CutWindows(tokens, {10, 3, 0}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Perplexity, EqualsExpMeanNllOfFullLogits) {
  const LlamaModel model = RandomModel(SmallConfig(), 11, 0.3f);
  CpuBackend backend(CpuBackendOptions{2, 16});
  auto fwd = LlamaForward::Create(&model, &backend, ForwardOptions{30});  // 96 = 3*30 + 6
  ASSERT_TRUE(fwd.ok());
  const std::vector<int32_t> tokens = RandomTokens(5 * 40 + 13, 96, 12);
  auto result = Perplexity(*fwd, tokens, {40, 5, 2});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->n_windows, 5);
  EXPECT_EQ(result->n_predicted, 5 * 39);

  double total = 0;
  for (int w = 0; w < 5; ++w) {
    std::vector<int32_t> win(tokens.begin() + 40 * w, tokens.begin() + 40 * (w + 1));
    auto logits = fwd->Logits(*SequenceBatch::Pack({win}));
    ASSERT_TRUE(logits.ok());
    for (int r = 0; r < 39; ++r) total -= LogSoftmax(&(*logits)[r * 96], 96)[win[r + 1]];
  }
  const double want = std::exp(total / (5 * 39));
  EXPECT_NEAR(result->perplexity, want, 1e-5 * want);
  EXPECT_GT(result->perplexity, 1.0);
}

TEST(CompareModels, SelfIsZeroKlAndFullAgreement) {
  const LlamaModel model = RandomModel(SmallConfig(), 13, 0.3f);
  CpuBackend backend(CpuBackendOptions{2, 16});
  auto fwd = LlamaForward::Create(&model, &backend, ForwardOptions{25});
  ASSERT_TRUE(fwd.ok());
  auto r = CompareModels(*fwd, *fwd, RandomTokens(120, 96, 14), {30, 4, 3});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->n_positions, 4 * 29);
  EXPECT_LT(r->mean_kl, 1e-6);
  EXPECT_EQ(r->top1_agreement, 1.0);
}

TEST(CompareModels, MatchesDirectKlAndAgreement) {
  const LlamaModel dense = RandomModel(SmallConfig(), 15, 0.3f);
  LlamaModel other = dense;
  // Perturb the LM head: a different but related model.
  const LlamaModel noise = RandomModel(SmallConfig(), 16, 0.3f);
  std::vector<float> head(dense.lm_head.data, dense.lm_head.data + dense.lm_head.numel());
  for (size_t i = 0; i < head.size(); ++i) head[i] += 0.5f * noise.lm_head.data[i];
  other.lm_head = Tensor::Owned(dense.lm_head.shape, std::move(head));

  CpuBackend backend(CpuBackendOptions{2, 16});
  auto fp = LlamaForward::Create(&dense, &backend, ForwardOptions{40});
  auto fq = LlamaForward::Create(&other, &backend, ForwardOptions{40});
  ASSERT_TRUE(fp.ok() && fq.ok());
  const std::vector<int32_t> tokens = RandomTokens(90, 96, 17);
  auto r = CompareModels(*fp, *fq, tokens, {30, 3, 2});
  ASSERT_TRUE(r.ok()) << r.status();

  double kl = 0;
  int agree = 0;
  for (int w = 0; w < 3; ++w) {
    std::vector<int32_t> win(tokens.begin() + 30 * w, tokens.begin() + 30 * (w + 1));
    auto lp = fp->Logits(*SequenceBatch::Pack({win}));
    auto lq = fq->Logits(*SequenceBatch::Pack({win}));
    for (int row = 0; row < 29; ++row) {
      const auto a = LogSoftmax(&(*lp)[row * 96], 96), b = LogSoftmax(&(*lq)[row * 96], 96);
      for (int v = 0; v < 96; ++v) kl += std::exp(a[v]) * (a[v] - b[v]);
      agree += std::max_element(a.begin(), a.end()) - a.begin() ==
               std::max_element(b.begin(), b.end()) - b.begin();
    }
  }
  EXPECT_NEAR(r->mean_kl, kl / 87, 1e-5 * (1 + kl / 87));
  EXPECT_GT(r->mean_kl, 1e-3);
  EXPECT_DOUBLE_EQ(r->top1_agreement, agree / 87.0);

  LlamaModel wrong = RandomModel(SmallConfig(), 18);
  wrong.config.vocab = 95;
  wrong.embed_tokens.shape = {95, 64};
  wrong.lm_head.shape = {95, 64};
  auto fw = LlamaForward::Create(&wrong, &backend);
  ASSERT_TRUE(fw.ok()) << fw.status();
  EXPECT_EQ(CompareModels(*fp, *fw, tokens, {30, 3, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine
