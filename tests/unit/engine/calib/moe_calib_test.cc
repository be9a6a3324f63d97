// Mixture-of-experts calibration: each expert's Hessian from the tokens
// routed to it, the pooled fallback for starved experts, the token counts in
// the summary, and the routing the calibration taps record.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/evopress/evopress_fixture.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/pipeline/summary.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;

// The events of a run, in order.
using Sink = evopress::testing::RecordingSink;

v1::Recipe GptqRecipe(int min_expert_tokens) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText(absl::StrCat(
      "stages: [{gptq: {grid: {bits: 3, group_size: 16}}}]\n"
      "calibration: {path: unused, min_expert_tokens: ",
      min_expert_tokens, "}\n"));
  EXPECT_TRUE(r.ok()) << r.status();
  ApplyRecipeDefaults(&*r);
  EXPECT_TRUE(ValidateRecipe(*r).ok()) << ValidateRecipe(*r);
  return *r;
}

CalibrationSet Calibration(int vocab) {
  CalibrationSet c;
  c.name = "test";
  for (int s = 0; s < 6; ++s) c.sequences.push_back(testing::RandomTokens(24, vocab, 300 + s));
  return c;
}

std::vector<float> Hessian(const std::vector<float>& rows, int64_t n, int64_t dim) {
  HessianAccumulator acc(dim);
  EXPECT_TRUE(acc.Add(rows.data(), n).ok());
  return *acc.Hessian();
}

std::vector<float> Gather(const float* x, int64_t dim, const std::vector<int64_t>& rows) {
  std::vector<float> out;
  for (int64_t r : rows) out.insert(out.end(), x + r * dim, x + (r + 1) * dim);
  return out;
}

// Top-k of softmax(x . router) written out: the experts of each token.
std::vector<int32_t> Route(const LlamaConfig& c, const Tensor& router, const float* x,
                           int64_t t) {
  std::vector<int32_t> ids;
  for (int64_t r = 0; r < t; ++r) {
    std::vector<double> logit(static_cast<size_t>(c.n_experts));
    for (int e = 0; e < c.n_experts; ++e) {
      for (int d = 0; d < c.hidden; ++d) logit[e] += double{x[r * c.hidden + d]} * router.data[e * c.hidden + d];
    }
    std::vector<int32_t> order(static_cast<size_t>(c.n_experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logit[a] > logit[b]; });
    ids.insert(ids.end(), order.begin(), order.begin() + c.experts_per_token);
  }
  return ids;
}

struct Reference {
  LlamaModel model;
  std::vector<std::vector<int64_t>> tokens;  // [block][expert]
};

// The procedure written out: per block, the linear inputs of the dense
// block, the routing recomputed from the router, one Hessian per expert from
// its tokens (or the layer's pooled one below `min_tokens`), GPTQ on every
// projection, then the block's output with the compressed weights.
Reference ReferenceMoeGptq(const LlamaModel& dense, const CalibrationSet& calib, int min_tokens) {
  Reference ref{dense, {}};
  LlamaModel& model = ref.model;
  CpuBackend backend(CpuBackendOptions{1, 128});
  absl::StatusOr<LlamaForward> fwd = LlamaForward::Create(&model, &backend);
  EXPECT_TRUE(fwd.ok()) << fwd.status();
  absl::StatusOr<SequenceBatch> batch = SequenceBatch::Pack(calib.sequences);
  const LlamaConfig& c = model.config;
  const int k = c.experts_per_token;
  const int64_t t = batch->tokens(), qd = int64_t{c.n_heads} * c.head_dim,
                f = c.expert_intermediate, sw = c.shared_expert_intermediate;
  std::vector<float> hidden(t * c.hidden);
  EXPECT_TRUE(fwd->Embed(*batch, hidden.data()).ok());
  BlockWorkspace ws;
  GptqOptions options;
  options.grid = {3, 16, true};
  options.act_order = true;  // the recipe's defaults
  options.static_groups = true;
  options.report_error = false;
  auto solve = [&](Tensor* w, const std::vector<float>& h) {
    std::vector<float> v(w->data, w->data + w->numel());
    EXPECT_TRUE(Gptq(v.data(), w->rows(), w->cols(), h.data(), options, "ref").ok());
    *w = Tensor::Owned(w->shape, std::move(v));
  };
  for (BlockWeights& b : model.blocks) {
    std::vector<float> attn(t * c.hidden), o(t * qd), mlp(t * c.hidden), down(t * c.intermediate),
        edown(t * k * f), sdown(t * std::max<int64_t>(sw, 1));
    std::vector<int32_t> routes(t * k);
    BlockTaps taps{attn.data(), o.data(), mlp.data(), down.data()};
    taps.routes = routes.data();
    taps.expert_down_in = edown.data();
    taps.shared_down_in = sdown.data();
    EXPECT_TRUE(fwd->BlockLinearInputs(b, *batch, hidden.data(), taps, &ws).ok());
    const std::vector<float> h_attn = Hessian(attn, t, c.hidden), h_mlp = Hessian(mlp, t, c.hidden);
    for (Tensor* w : {&b.q_proj, &b.k_proj, &b.v_proj}) solve(w, h_attn);
    solve(&b.o_proj, Hessian(o, t, qd));
    EXPECT_EQ(routes, Route(c, b.router, mlp.data(), t)) << "block " << b.layer;
    const std::vector<float> h_pooled_down = Hessian(edown, t * k, f);
    ref.tokens.emplace_back();
    for (int e = 0; e < c.n_experts; ++e) {
      std::vector<int64_t> slots, tokens;
      for (int64_t s = 0; s < t * k; ++s) {
        if (routes[s] == e) slots.push_back(s), tokens.push_back(s / k);
      }
      ref.tokens.back().push_back(static_cast<int64_t>(tokens.size()));
      ExpertWeights& x = b.experts[static_cast<size_t>(e)];
      // The taps' down inputs are silu(gate x) * up x of the expert's tokens.
      for (size_t i = 0; i < std::min<size_t>(tokens.size(), 3); ++i) {
        for (int64_t j = 0; j < f; j += 7) {
          double g = 0, u = 0;
          for (int d = 0; d < c.hidden; ++d) {
            g += double{mlp[tokens[i] * c.hidden + d]} * x.gate_proj.data[j * c.hidden + d];
            u += double{mlp[tokens[i] * c.hidden + d]} * x.up_proj.data[j * c.hidden + d];
          }
          EXPECT_NEAR(edown[slots[i] * f + j], g / (1 + std::exp(-g)) * u, 1e-4);
        }
      }
      const bool own = static_cast<int64_t>(tokens.size()) >= min_tokens;
      const std::vector<float> h_in =
          own ? Hessian(Gather(mlp.data(), c.hidden, tokens), tokens.size(), c.hidden) : h_mlp;
      const std::vector<float> h_down =
          own ? Hessian(Gather(edown.data(), f, slots), slots.size(), f) : h_pooled_down;
      solve(&x.gate_proj, h_in);
      solve(&x.up_proj, h_in);
      solve(&x.down_proj, h_down);
    }
    if (sw > 0) {
      solve(&b.shared_expert.gate_proj, h_mlp);
      solve(&b.shared_expert.up_proj, h_mlp);
      solve(&b.shared_expert.down_proj, Hessian(sdown, t, sw));
    }
    EXPECT_TRUE(fwd->RunBlock(b, *batch, hidden.data(), &ws).ok());
  }
  return ref;
}

struct MoeRun {
  LlamaModel model;
  CompressionResult result;
  Sink events;
  absl::Status status;
};

std::unique_ptr<MoeRun> Compress(const LlamaModel& dense, const v1::Recipe& recipe,
                              const CalibrationSet& calib) {
  auto run = std::make_unique<MoeRun>();
  run->model = dense;
  CancelToken no_cancel;
  CpuBackend backend(CpuBackendOptions{1, 128});
  absl::StatusOr<std::vector<ModelTarget>> targets =
      SelectModelTargets(run->model, *CompileRecipe(recipe));
  EXPECT_TRUE(targets.ok()) << targets.status();
  run->status = CompressCalibrated(run->model, backend, recipe, *targets, calib, 1, nullptr,
                                   run->events, no_cancel, &run->result);
  return run;
}

void ExpectSameTensor(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape, b.shape) << what;
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data[i], b.data[i]) << what << " at " << i;
}

class MoeCalibrationTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MoeCalibrationTest, MatchesTheProcedureWrittenOut) {
  absl::StatusOr<testing::TinyFixture> fixture = testing::LoadTinyFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const LlamaModel& dense = fixture->model;
  const LlamaConfig& c = dense.config;
  const CalibrationSet calib = Calibration(c.vocab);
  // The mean tokens per expert: some experts get fewer, some more.
  const int kMin = static_cast<int>(6 * 24 * c.experts_per_token / c.n_experts);
  std::unique_ptr<MoeRun> run = Compress(dense, GptqRecipe(kMin), calib);
  ASSERT_TRUE(run->status.ok()) << run->status;
  const Reference ref = ReferenceMoeGptq(dense, calib, kMin);
  int pooled = 0, routed = 0;
  for (size_t i = 0; i < dense.blocks.size(); ++i) {
    const BlockWeights &ours = run->model.blocks[i], &theirs = ref.model.blocks[i];
    ExpectSameTensor(ours.o_proj, theirs.o_proj, "o_proj");
    ExpectSameTensor(ours.router, dense.blocks[i].router, "router (stays dense)");
    for (int e = 0; e < c.n_experts; ++e) {
      const std::string what = absl::StrCat("block ", i, " expert ", e);
      ExpectSameTensor(ours.experts[e].gate_proj, theirs.experts[e].gate_proj, what + " gate");
      ExpectSameTensor(ours.experts[e].up_proj, theirs.experts[e].up_proj, what + " up");
      ExpectSameTensor(ours.experts[e].down_proj, theirs.experts[e].down_proj, what + " down");
      (ref.tokens[i][e] >= kMin ? routed : pooled) += 1;
    }
    if (c.shared_expert_intermediate > 0) {
      ExpectSameTensor(ours.shared_expert.down_proj, theirs.shared_expert.down_proj, "shared");
    }
  }
  EXPECT_GT(pooled, 0) << "some expert should get fewer than the mean, " << kMin;
  EXPECT_GT(routed, 0);

  // The summary lists every expert with its tokens and which Hessian it got.
  std::optional<nlohmann::json> experts = ExpertsJson(run->result.layers);
  ASSERT_TRUE(experts.has_value());
  EXPECT_EQ((*experts)["count"], dense.blocks.size() * c.n_experts);
  EXPECT_EQ((*experts)["pooled"].size(), static_cast<size_t>(pooled));
  for (const nlohmann::json& e : (*experts)["list"]) {
    const std::string name = e["name"];
    const int block = std::stoi(name.substr(sizeof("model.layers.") - 1));
    const int index = std::stoi(name.substr(name.rfind('.') + 1));
    EXPECT_EQ(e["tokens"], ref.tokens[block][index]) << name;
    EXPECT_EQ(e["calibration"], ref.tokens[block][index] >= kMin ? "routed" : "pooled") << name;
    EXPECT_EQ(e["linears"].size(), 3u) << name;
  }
  // And the log says which ones fell back, layer by layer.
  int warnings = 0;
  for (const v1::JobEvent& ev : run->events.events) {
    if (ev.has_log() && absl::StrContains(ev.log().message(), "pooled Hessian")) ++warnings;
  }
  EXPECT_GT(warnings, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MoeCalibrationTest,
                         ::testing::Values("mixtral_moe", "qwen2_moe_shared"));

TEST(MoeCalibrationTest, ExpertsNoTokenReachesAreCompressedOnThePooledHessian) {
  absl::StatusOr<testing::TinyFixture> fixture = testing::LoadTinyFixture("mixtral_moe");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  LlamaModel dense = fixture->model;
  const int64_t h = dense.config.hidden;
  // As tests/golden/make_family_model.py --dead-experts: residual dim 0 held
  // at 1 into block 0's MLP (embedding column 1, o_proj row 0 zero), its norm
  // weight 30, and expert 7's router row -5 there and 0 elsewhere (the
  // others' 0 there): its logit is below -40, the others' O(1).
  auto edit = [](Tensor* t, const std::function<void(std::vector<float>&)>& fn) {
    std::vector<float> v(t->data, t->data + t->numel());
    fn(v);
    *t = Tensor::Owned(t->shape, std::move(v));
  };
  edit(&dense.embed_tokens, [&](std::vector<float>& v) {
    for (int64_t r = 0; r < dense.config.vocab; ++r) v[r * h] = 1.0f;
  });
  BlockWeights& b0 = dense.blocks[0];
  edit(&b0.o_proj, [&](std::vector<float>& v) { std::fill(v.begin(), v.begin() + b0.o_proj.cols(), 0.0f); });
  edit(&b0.mlp_norm, [](std::vector<float>& v) { v[0] = 30.0f; });
  edit(&b0.router, [&](std::vector<float>& v) {
    for (int e = 0; e < dense.config.n_experts; ++e) v[e * h] = 0.0f;
    std::fill(v.begin() + 7 * h, v.begin() + 8 * h, 0.0f);
    v[7 * h] = -5.0f;
  });
  if (dense.lm_head.data == fixture->model.embed_tokens.data) dense.lm_head = dense.embed_tokens;
  std::unique_ptr<MoeRun> run = Compress(dense, GptqRecipe(1), Calibration(dense.config.vocab));
  ASSERT_TRUE(run->status.ok()) << run->status;
  const nlohmann::json experts = *ExpertsJson(run->result.layers);
  bool seen = false;
  for (const nlohmann::json& e : experts["list"]) {
    if (e["name"] != "model.layers.0.block_sparse_moe.experts.7") continue;
    seen = true;
    EXPECT_EQ(e["tokens"], 0);
    EXPECT_EQ(e["calibration"], "pooled");
  }
  EXPECT_TRUE(seen) << experts.dump();
  const ExpertWeights& before = dense.blocks[0].experts[7];
  const ExpertWeights& after = run->model.blocks[0].experts[7];
  for (auto [a, b] : {std::pair{&before.gate_proj, &after.gate_proj},
                      std::pair{&before.down_proj, &after.down_proj}}) {
    int changed = 0;
    for (int64_t i = 0; i < a->numel(); ++i) changed += a->data[i] != b->data[i];
    EXPECT_GT(changed, a->numel() / 2) << "the starved expert was not compressed";
  }
}

TEST(MoeCalibrationTest, RoutingTiesGoToTheLowerExpertAndRenormalises) {
  // Logits of two tokens over 4 experts: a tie between 1 and 2, then a clear order.
  const std::vector<float> logits = {0.0f, 2.0f, 2.0f, 1.0f, 3.0f, -1.0f, 0.5f, 0.5f};
  std::vector<int32_t> ids(4);
  std::vector<float> w(4);
  RouteTokens(logits.data(), 2, 4, 2, /*renormalize=*/false, ids.data(), w.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 0, 2}));
  const double z = 1 + 2 * std::exp(2.0) + std::exp(1.0);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(2.0) / z, 1e-6);
  RouteTokens(logits.data(), 2, 4, 2, /*renormalize=*/true, ids.data(), w.data());
  EXPECT_NEAR(w[0], 0.5, 1e-6);
  EXPECT_NEAR(w[2] + w[3], 1.0, 1e-6);
  EXPECT_NEAR(w[2] / w[3], std::exp(3.0 - 0.5), 1e-4);
}

TEST(MoeCalibrationTest, NegativeMinExpertTokensIsRefused) {
  absl::StatusOr<v1::Recipe> r =
      ParseRecipeText("stages: [{gptq: {grid: {bits: 4}}}]\ncalibration: {path: unused, min_expert_tokens: -1}\n");
  ASSERT_TRUE(r.ok());
  ApplyRecipeDefaults(&*r);
  const absl::Status s = ValidateRecipe(*r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("calibration.min_expert_tokens"));
  EXPECT_EQ(GptqRecipe(0).calibration().min_expert_tokens(), 32);  // the default
}

}  // namespace
}  // namespace compressd::engine
