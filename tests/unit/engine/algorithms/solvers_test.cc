// GPTQ, SparseGPT, Wanda and the OBS sweep on random correlated layers: the
// blocked, threaded sweep against the unblocked reference, and the
// properties users rely on (exact sparsity, masks kept, GPTQ beats RTN).
#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/algorithms/wanda.h"

namespace compressd::engine {
namespace {

using testing::Agreement;
using testing::Layer;
using testing::RandomLayer;

const Layer& TestLayer() {
  static const Layer* layer = new Layer(RandomLayer(48, 320, 640, 11));
  return *layer;
}

double RelErr(const Layer& l, const std::vector<float>& w) {
  return RelativeReconstructionError(l.w.data(), w.data(), l.h.data(), l.rows, l.cols);
}

// Runs ObsSweep and ObsSweepRef on the same inputs; returns the fraction of
// equal codes (or of equal masks without a grid) and checks the errors agree.
double SweepAgreement(const SweepOptions& o) {
  const Layer& l = TestLayer();
  auto u = InverseHessianUpper(l.h.data(), l.cols, nullptr, 0.01, "t");
  EXPECT_TRUE(u.ok());
  std::vector<float> w1 = l.w, w2 = l.w;
  SweepState s1, s2;
  for (auto* s : {&s1, &s2}) {
    s->rows = l.rows;
    s->cols = l.cols;
    s->u = u->data();
  }
  s1.w = w1.data();
  s2.w = w2.data();
  ObsSweep(o, &s1);
  testing::ObsSweepRef(o, &s2);
  EXPECT_NEAR(RelErr(l, w1), RelErr(l, w2), 0.01 * RelErr(l, w2));
  return o.grid ? Agreement(s1.codes, s2.codes) : Agreement(s1.pruned, s2.pruned);
}

TEST(ObsSweepTest, BlockedThreadedSweepMatchesUnblockedReference) {
  SweepOptions o;
  o.threads = 3;
  o.grid = QuantGrid{3, 64, false};
  EXPECT_GE(SweepAgreement(o), 0.999);
  o.grid = QuantGrid{4, 96, true};  // groups crossing block ends split the blocks
  EXPECT_GE(SweepAgreement(o), 0.999);
  o.grid.reset();
  o.pruning.kind = SweepPruning::Kind::kBlock;
  o.pruning.sparsity = 0.5;
  EXPECT_GE(SweepAgreement(o), 0.999);
  o.pruning.kind = SweepPruning::Kind::kNM;
  o.pruning.n = 2;
  o.pruning.m = 4;
  o.grid = QuantGrid{4, 32, false};
  EXPECT_GE(SweepAgreement(o), 0.999);
}

TEST(ObsSweepTest, BlocksEndBeforeGroupsThatWouldCrossThem) {
  using Blocks = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(SweepBlocks(300, 128, 0), (Blocks{{0, 128}, {128, 256}, {256, 300}}));
  EXPECT_EQ(SweepBlocks(300, 128, 64), (Blocks{{0, 128}, {128, 256}, {256, 300}}));
  EXPECT_EQ(SweepBlocks(300, 128, 96), (Blocks{{0, 96}, {96, 192}, {192, 300}}));
  EXPECT_EQ(SweepBlocks(400, 128, 96), (Blocks{{0, 96}, {96, 192}, {192, 288}, {288, 400}}));
  EXPECT_EQ(SweepBlocks(300, 128, 200), (Blocks{{0, 128}, {128, 200}, {200, 300}}));
}

TEST(GptqTest, ThreadsDoNotChangeTheResult) {
  const Layer& l = TestLayer();
  std::vector<float> w1 = l.w, w4 = l.w;
  GptqOptions o;
  o.grid = {3, 64, false};
  o.act_order = true;
  auto r1 = Gptq(w1.data(), l.rows, l.cols, l.h.data(), o, "t");
  o.threads = 4;
  auto r4 = Gptq(w4.data(), l.rows, l.cols, l.h.data(), o, "t");
  ASSERT_TRUE(r1.ok() && r4.ok());
  EXPECT_EQ(w1, w4);
}

TEST(GptqTest, BeatsRtnOnTheSameGridAndDequantizesToTheResult) {
  const Layer& l = TestLayer();
  for (const QuantGrid& grid : {QuantGrid{2, 64, false}, QuantGrid{3, -1, true},
                                QuantGrid{4, 128, true}, QuantGrid{8, -1, false}}) {
    for (bool act : {false, true}) {
      for (bool stat : {false, true}) {
        SCOPED_TRACE(::testing::Message() << grid.bits << "b g" << grid.group_size << " act " << act
                                          << " static " << stat);
        std::vector<float> w = l.w, wr = l.w;
        GptqOptions o;
        o.grid = grid;
        o.act_order = act;
        o.static_groups = stat;
        auto r = Gptq(w.data(), l.rows, l.cols, l.h.data(), o, "t");
        ASSERT_TRUE(r.ok()) << r.status();
        ASSERT_TRUE(QuantizeRtn(wr.data(), l.rows, l.cols, grid, "t").ok());
        EXPECT_NEAR(r->relative_error, RelErr(l, w), 1e-6);
        // 2-bit: the grid is so coarse that compensation gains less.
        EXPECT_LT(r->relative_error, (grid.bits == 2 ? 1.0 : 0.8) * RelErr(l, wr));
        if (grid.bits == 8) {
          EXPECT_LT(r->relative_error, 1e-4);
        }
        std::vector<float> deq(w.size());
        r->quantized->DequantizeTo(deq.data());
        EXPECT_EQ(deq, w);
        if (stat || !act) {  // contiguous groups: g_idx = column / group
          for (int64_t c = 0; c < l.cols; ++c) {
            EXPECT_EQ(r->quantized->group_index[c], grid.group_size > 0 ? c / grid.group_size : 0);
          }
        }
      }
    }
  }
}

TEST(GptqTest, MassiveInputRatioIsTheLargestOverTheMedianLiveEnergy) {
  std::vector<float> h(5 * 5, 0.0f);
  const float diag[5] = {1, 2, 3, 0, 5000};  // input 3 is dead
  for (int j = 0; j < 5; ++j) h[j * 5 + j] = diag[j];
  EXPECT_DOUBLE_EQ(MassiveInputRatio(h.data(), 5), 5000.0 / 3.0);
  std::fill(h.begin(), h.end(), 0.0f);
  EXPECT_EQ(MassiveInputRatio(h.data(), 5), 0.0);
}

// A layer whose input 0 carries massive activations: X's column 0 scaled by
// `scale`, so H's row and column 0 scale by it and H_00 by its square.
Layer MassiveLayer(float scale, uint32_t seed) {
  Layer l = RandomLayer(32, 128, 512, seed);
  for (int64_t j = 0; j < l.cols; ++j) {
    l.h[j] *= scale;
    l.h[j * l.cols] *= scale;
  }
  return l;
}

// massive_fallback solves a layer with massive inputs with and without
// act-order and keeps the lower error, bit for bit that solve; any other layer
// (or with the option off) is the act-order solve alone.
TEST(GptqTest, MassiveFallbackKeepsTheBetterOfTheTwoSolves) {
  int kept_plain = 0, kept_act = 0;
  for (const float scale : {1.0f, 35.0f, 200.0f}) {
    for (const uint32_t seed : {3u, 4u, 5u, 6u}) {
      SCOPED_TRACE(::testing::Message() << "scale " << scale << " seed " << seed);
      const Layer l = MassiveLayer(scale, seed);
      GptqOptions o;
      o.grid = {3, seed % 2 ? 32 : -1, true};  // per channel, act-order wins some
      o.act_order = o.static_groups = true;
      auto solve = [&](const GptqOptions& options, std::vector<float>* w) {
        *w = l.w;
        auto r = Gptq(w->data(), l.rows, l.cols, l.h.data(), options, "t");
        EXPECT_TRUE(r.ok()) << r.status();
        return r.ok() ? *std::move(r) : LayerSolveResult();
      };
      std::vector<float> w_act, w_plain, w_fallback, w_off;
      const LayerSolveResult act = solve(o, &w_act);
      GptqOptions plain = o;
      plain.act_order = plain.static_groups = false;
      const LayerSolveResult without = solve(plain, &w_plain);
      o.massive_fallback = true;
      const LayerSolveResult fallback = solve(o, &w_fallback);
      const bool massive = MassiveInputRatio(l.h.data(), l.cols) >= kMassiveInputRatio;
      EXPECT_EQ(massive, scale > 1.0f);
      ASSERT_EQ(fallback.act_order_check.has_value(), massive);
      EXPECT_FALSE(act.act_order_check.has_value());
      if (!massive) {
        EXPECT_EQ(w_fallback, w_act);
        continue;
      }
      const ActOrderCheck& c = *fallback.act_order_check;
      EXPECT_EQ(c.act_order_error, act.relative_error);
      EXPECT_EQ(c.plain_error, without.relative_error);
      EXPECT_EQ(c.kept_act_order, act.relative_error <= without.relative_error);
      EXPECT_EQ(w_fallback, c.kept_act_order ? w_act : w_plain);
      EXPECT_EQ(fallback.quantized->codes,
                c.kept_act_order ? act.quantized->codes : without.quantized->codes);
      EXPECT_EQ(fallback.relative_error, std::min(c.act_order_error, c.plain_error));
      ++(c.kept_act_order ? kept_act : kept_plain);
      o.massive_fallback = false;
      EXPECT_FALSE(solve(o, &w_off).act_order_check.has_value());
      EXPECT_EQ(w_off, w_act);
    }
  }
  // Both outcomes occur on these layers (act-order keeps the per-channel
  // ones at scale 35), so both branches ran.
  EXPECT_GT(kept_plain, 0);
  EXPECT_GT(kept_act, 0);
}

// The CPU solver, refusing sweeps that choose grids as they go (as the CUDA
// solver does for lattice groups).
class StaticOnlySolver : public SolverBackend {
 public:
  std::string name() const override { return "static-only"; }
  std::unique_ptr<HessianSum> NewHessian(int64_t dim, int threads) override {
    return DefaultCpuSolver().NewHessian(dim, threads);
  }
  absl::Status FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                              absl::string_view tensor, const SweepOptions& options,
                              SweepState* state) override {
    if (!options.static_grids) return absl::UnimplementedError("grids chosen in the sweep");
    return DefaultCpuSolver().FactorAndSweep(h, perm, percdamp, tensor, options, state);
  }
  absl::StatusOr<double> RelativeError(const float* w, const float* w_new, const float* h,
                                       int64_t rows, int64_t cols, int threads) override {
    return DefaultCpuSolver().RelativeError(w, w_new, h, rows, cols, threads);
  }
};

// Where the backend cannot run the plain sweep, a massive layer keeps its
// act-order solve (uncompared) instead of failing the job.
TEST(GptqTest, MassiveFallbackKeepsActOrderWhereThePlainSweepIsUnavailable) {
  const Layer l = MassiveLayer(35.0f, 3);
  StaticOnlySolver solver;
  GptqOptions o;
  o.grid = {3, 32, true};
  o.act_order = o.static_groups = o.massive_fallback = true;
  o.solver = &solver;
  std::vector<float> w = l.w, w_act = l.w;
  auto r = Gptq(w.data(), l.rows, l.cols, l.h.data(), o, "t");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->act_order_check.has_value());
  o.massive_fallback = false;
  ASSERT_TRUE(Gptq(w_act.data(), l.rows, l.cols, l.h.data(), o, "t").ok());
  EXPECT_EQ(w, w_act);
}

TEST(GptqTest, KeepsZerosOfAPrunedLayerAndCompensates) {
  const Layer& l = TestLayer();
  std::vector<float> pruned = l.w;
  SparseGptOptions so;
  so.nm_n = 2;
  so.nm_m = 4;
  auto sr = SparseGpt(pruned.data(), l.rows, l.cols, l.h.data(), so, "t");
  ASSERT_TRUE(sr.ok()) << sr.status();
  std::vector<float> w = pruned, wr = pruned;
  GptqOptions o;
  o.grid = {4, 128, false};
  auto r = Gptq(w.data(), l.rows, l.cols, l.h.data(), o, "t");
  ASSERT_TRUE(r.ok());
  for (size_t i = 0; i < w.size(); ++i) {
    if (pruned[i] == 0.0f) {
      ASSERT_EQ(w[i], 0.0f) << i;
    }
  }
  ASSERT_TRUE(QuantizeRtn(wr.data(), l.rows, l.cols, o.grid, "t").ok());
  EXPECT_LT(RelErr(l, w), RelErr(l, wr));
  // Without preserve_zeros the mask is lost.
  std::vector<float> w2 = pruned;
  o.preserve_zeros = false;
  ASSERT_TRUE(Gptq(w2.data(), l.rows, l.cols, l.h.data(), o, "t").ok());
  int64_t lost = 0;
  for (size_t i = 0; i < w2.size(); ++i) lost += pruned[i] == 0.0f && w2[i] != 0.0f;
  EXPECT_GT(lost, 0);
}

TEST(GptqTest, DeadInputsAreZeroed) {
  Layer l = TestLayer();
  for (int64_t j : {5, 200}) {
    for (int64_t i = 0; i < l.cols; ++i) l.h[j * l.cols + i] = l.h[i * l.cols + j] = 0.0f;
  }
  GptqOptions o;
  o.act_order = true;
  std::vector<float> w = l.w;
  auto r = Gptq(w.data(), l.rows, l.cols, l.h.data(), o, "t");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->dead_inputs, 2);
  for (int64_t row = 0; row < l.rows; ++row) {
    EXPECT_EQ(w[row * l.cols + 5], 0.0f);
    EXPECT_EQ(w[row * l.cols + 200], 0.0f);
  }
}

TEST(SparseGptTest, ExactSparsityPerBlockOrRowAndBetterThanWanda) {
  const Layer& l = TestLayer();
  for (MaskScope scope : {MaskScope::kBlock, MaskScope::kRow}) {
    std::vector<float> w = l.w;
    SparseGptOptions o;
    o.sparsity = 0.6;
    o.mask_scope = scope;
    o.threads = 2;
    auto r = SparseGpt(w.data(), l.rows, l.cols, l.h.data(), o, "t");
    ASSERT_TRUE(r.ok()) << r.status();
    for (int64_t c0 = 0; c0 < l.cols; c0 += 128) {
      const int64_t c1 = std::min<int64_t>(c0 + 128, l.cols);
      int64_t zeros = 0;
      for (int64_t row = 0; row < l.rows; ++row) {
        int64_t row_zeros = 0;
        for (int64_t c = c0; c < c1; ++c) {
          const bool z = w[row * l.cols + c] == 0.0f;
          EXPECT_EQ(z, r->pruned[row * l.cols + c] == 1);
          row_zeros += z;
        }
        if (scope == MaskScope::kRow) {
          EXPECT_EQ(row_zeros, std::llround(0.6 * (c1 - c0)));
        }
        zeros += row_zeros;
      }
      if (scope == MaskScope::kBlock) {
        EXPECT_EQ(zeros, std::llround(0.6 * l.rows * (c1 - c0)));
      }
    }
    std::vector<float> ww = l.w;
    const std::vector<float> norms = InputNormsFromHessian(l.h.data(), l.cols);
    ASSERT_TRUE(PruneWanda(ww.data(), l.rows, l.cols, norms.data(), {0.6, 0, 0}, "t").ok());
    EXPECT_LT(r->relative_error, 0.8 * RelErr(l, ww));
  }
}

TEST(SparseGptTest, NMPatternAndJointQuantization) {
  const Layer& l = TestLayer();
  for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}}) {
    std::vector<float> w = l.w;
    SparseGptOptions o;
    o.nm_n = n;
    o.nm_m = m;
    o.grid = QuantGrid{4, 64, false};
    auto r = SparseGpt(w.data(), l.rows, l.cols, l.h.data(), o, "t");
    ASSERT_TRUE(r.ok()) << r.status();
    for (int64_t row = 0; row < l.rows; ++row) {
      for (int64_t c0 = 0; c0 < l.cols; c0 += m) {
        int pruned = 0;
        for (int j = 0; j < m; ++j) {
          const int64_t i = row * l.cols + c0 + j;
          if (r->pruned[i]) {
            ++pruned;
            EXPECT_EQ(w[i], 0.0f);
          }
        }
        EXPECT_EQ(pruned, m - n);
      }
    }
    std::vector<float> deq(w.size());
    r->quantized->DequantizeTo(deq.data());
    EXPECT_EQ(deq, w);
    std::vector<float> ww = l.w;
    const std::vector<float> norms = InputNormsFromHessian(l.h.data(), l.cols);
    ASSERT_TRUE(PruneWanda(ww.data(), l.rows, l.cols, norms.data(), {0, n, m}, "t").ok());
    EXPECT_LT(r->relative_error, RelErr(l, ww));
  }
}

TEST(SparseGptTest, RejectsBadOptions) {
  const Layer& l = TestLayer();
  std::vector<float> w = l.w;
  auto run = [&](const SparseGptOptions& o) {
    return SparseGpt(w.data(), l.rows, l.cols, l.h.data(), o, "layers.1.o_proj").status();
  };
  SparseGptOptions o;
  o.sparsity = 1.5;
  EXPECT_EQ(run(o).code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.nm_n = 3;
  o.nm_m = 7;  // 320 % 7 != 0
  const absl::Status s = run(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layers.1.o_proj"), std::string::npos);
  o = {};
  o.nm_n = 2;
  o.nm_m = 4;
  o.grid = QuantGrid{4, 30, false};  // groups not made of whole N:M runs
  EXPECT_EQ(run(o).code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> bad = l.w;
  bad[7] = NAN;
  EXPECT_EQ(SparseGpt(bad.data(), l.rows, l.cols, l.h.data(), {}, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WandaTest, MatchesReferenceWithTies) {
  const int64_t rows = 9, cols = 64;
  Layer l = RandomLayer(rows, cols, 10, 12);
  for (int64_t i = 0; i < rows * cols; i += 5) l.w[i] = 0.25f;  // ties
  std::vector<float> norms = InputNormsFromHessian(l.h.data(), cols);
  norms[3] = 0.0f;
  for (const WandaOptions& o : {WandaOptions{0.5, 0, 0}, WandaOptions{0.3, 0, 0},
                                WandaOptions{0, 2, 4}, WandaOptions{0, 1, 8}}) {
    std::vector<float> a = l.w, b = l.w;
    ASSERT_TRUE(PruneWanda(a.data(), rows, cols, norms.data(), o, "t").ok());
    PruneWandaRef(b.data(), rows, cols, norms.data(), o);
    EXPECT_EQ(a, b);
    int64_t zeros = std::count(a.begin(), a.end(), 0.0f);
    const int64_t expect =
        o.nm_m ? rows * cols / o.nm_m * (o.nm_m - o.nm_n) : rows * std::llround(o.sparsity * cols);
    EXPECT_EQ(zeros, expect);
  }
  std::vector<float> w = l.w;
  EXPECT_EQ(PruneWanda(w.data(), rows, cols, norms.data(), {0, 2, 3}, "t").code(),
            absl::StatusCode::kInvalidArgument);
  norms[0] = -1.0f;
  EXPECT_EQ(PruneWanda(w.data(), rows, cols, norms.data(), {}, "t").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine
