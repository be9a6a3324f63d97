#include "workers/engine/evopress/search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/evopress/evopress_fixture.h"
#include "workers/engine/evopress/drop_score.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/evopress_session.h"
#include "workers/engine/pipeline/evopress_stage.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine::evopress {
namespace {

using testing::AllModules;
using testing::RecordingSink;
using testing::ScratchDir;
using testing::TestModel;
using testing::Windows;

// Cancels the run when generation `g` starts.
class CancelAtGeneration : public EventSink {
 public:
  CancelAtGeneration(CancelToken* cancel, int g) : cancel_(cancel), g_(g) {}
  void Emit(const v1::JobEvent& e) override {
    if (e.has_progress() && e.progress().stage() == "search" && e.progress().current() == g_) {
      cancel_->Cancel();
    }
  }

 private:
  CancelToken* cancel_;
  int g_;
};

const FitnessSpec kEveryFitness[] = {
    {FitnessKind::kKl, 0}, {FitnessKind::kKl, 5}, {FitnessKind::kPpl, 0}};

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::EvoPressStage stage;
    stage.set_mode("sparsity");
    for (double l : {0.0, 0.2, 0.4, 0.6, 0.8}) stage.add_levels(l);
    space_ = *MakeSearchSpace(model_, AllModules(4), stage);
    std::mt19937_64 rng(0);
    initial_ = *InitialConfig(space_, 0.4, rng);
    LevelsDbSpec spec;
    spec.build = DbBuild::kDenseInputs;
    db_ = std::make_unique<LevelsDb>(&store_, LevelsDbFingerprint(model_, windows_, spec, space_),
                                     space_, spec);
    ASSERT_TRUE(BuildLevelsDb(model_, backend_, windows_, {}, 1, *db_, sink_, cancel_).ok());
    stream_ = engine::testing::RandomTokens(400, model_.config.vocab, 42);
    options_.generations = 6;
    options_.offspring = 6;
    options_.survivors = {3, 1};
    options_.step_tokens = {48, 96};
    options_.window = 24;
    options_.seed = 11;
  }

  std::unique_ptr<CandidateEvaluator> Evaluator(FitnessSpec fitness = {}, bool reuse = true) {
    EvaluatorOptions o = eval_;
    o.fitness = fitness;
    o.prefix_reuse = reuse;
    absl::StatusOr<std::unique_ptr<CandidateEvaluator>> e =
        CandidateEvaluator::Create(model_, &backend_, space_, db_.get(), o);
    EXPECT_TRUE(e.ok()) << e.status();
    return std::move(*e);
  }

  // The initial configuration and ten of its mutations.
  std::vector<Config> InitialAndMutations() const {
    std::mt19937_64 rng(4);
    std::vector<Config> configs = {initial_};
    for (int i = 0; i < 10; ++i) configs.push_back(Mutate(space_, initial_, rng));
    return configs;
  }

  absl::StatusOr<SearchResult> Search(CheckpointStore* checkpoints = nullptr,
                                      EventSink* sink = nullptr, CancelToken* cancel = nullptr,
                                      bool reuse = true) {
    auto evaluator = Evaluator({}, reuse);
    return RunSearch(space_, initial_, *evaluator, stream_, options_, "fp", checkpoints,
                     sink ? *sink : sink_, cancel ? *cancel : cancel_);
  }

  engine::LlamaModel model_ = TestModel();
  std::vector<std::vector<int32_t>> windows_ = Windows(6, 24);
  engine::CpuBackend backend_{engine::CpuBackendOptions{1, 128}};
  RecordingSink sink_;
  CancelToken cancel_;
  ScratchDir dir_;
  testing::MemoryStore store_;
  SearchSpace space_;
  Config initial_;
  std::unique_ptr<LevelsDb> db_;
  std::vector<int32_t> stream_;
  SearchOptions options_;
  EvaluatorOptions eval_ = [] {
    EvaluatorOptions o;
    o.micro_batch_tokens = 48;
    return o;
  }();
};

TEST_F(SearchTest, PrefixReuseGivesBitIdenticalFitness) {
  const std::vector<std::vector<int32_t>> windows = DrawWindows(stream_, 24, 96, 1, 0, 0);
  const std::vector<Config> configs = InitialAndMutations();
  for (FitnessSpec spec : kEveryFitness) {
    auto reuse = Evaluator(spec, true), full = Evaluator(spec, false);
    ASSERT_TRUE(reuse->SetWindows(windows).ok());
    ASSERT_TRUE(full->SetWindows(windows).ok());
    absl::StatusOr<std::vector<double>> a = reuse->Evaluate(configs, &initial_, cancel_);
    absl::StatusOr<std::vector<double>> b = full->Evaluate(configs, &initial_, cancel_);
    ASSERT_TRUE(a.ok() && b.ok());
    for (size_t i = 0; i < configs.size(); ++i) {
      EXPECT_EQ((*a)[i], (*b)[i]) << "config " << i << " kind " << int(spec.kind);
      EXPECT_TRUE(std::isfinite((*a)[i]));
    }
    EXPECT_GT(reuse->stats().block_tokens_saved, 0);
    EXPECT_LT(reuse->stats().block_tokens, full->stats().block_tokens);
  }
}

TEST_F(SearchTest, KlIsZeroForTheDenseModelAndTopKOfFullVocabIsExact) {
  const Config dense(space_.units.size(), 0);  // level 0.0: the dense weights
  Config pruned = initial_;
  const std::vector<std::vector<int32_t>> windows = DrawWindows(stream_, 24, 72, 2, 0, 0);
  auto full = Evaluator({FitnessKind::kKl, 0});
  auto top = Evaluator({FitnessKind::kKl, model_.config.vocab});
  ASSERT_TRUE(full->SetWindows(windows).ok() && top->SetWindows(windows).ok());
  absl::StatusOr<std::vector<double>> a = full->Evaluate({dense, pruned}, nullptr, cancel_);
  absl::StatusOr<std::vector<double>> b = top->Evaluate({dense, pruned}, nullptr, cancel_);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR((*a)[0], 0.0, 1e-9);
  EXPECT_GT((*a)[1], 1e-4);
  EXPECT_NEAR((*b)[1], (*a)[1], 1e-4 * (*a)[1]);
}

TEST_F(SearchTest, SameSeedSameResultAndBudgetKept) {
  absl::StatusOr<SearchResult> a = Search(), b = Search();
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->state.parent, b->state.parent);
  EXPECT_EQ(a->state.history, b->state.history);
  EXPECT_EQ(a->state.history.size(), 6u);
  EXPECT_EQ(GroupLevelSums(space_, a->state.parent), GroupLevelSums(space_, initial_));
  options_.seed = 12;
  absl::StatusOr<SearchResult> c = Search();
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->state.history, a->state.history);
}

TEST_F(SearchTest, DuplicatesAreRejected) {
  absl::StatusOr<SearchResult> r = Search();
  ASSERT_TRUE(r.ok());
  const std::vector<uint64_t>& seen = r->state.seen;
  EXPECT_EQ(std::set<uint64_t>(seen.begin(), seen.end()).size(), seen.size());
  EXPECT_EQ(seen.size(), 1u + 6u * 6u);  // the initial config + every offspring, all distinct
  EXPECT_EQ(seen.front(), ConfigHash(initial_));
}

TEST_F(SearchTest, NeverEndsWorseThanTheStartOnFixedTokens) {
  stream_.resize(24);  // a single possible window: every step sees the same tokens
  options_.generations = 8;
  absl::StatusOr<SearchResult> r = Search();
  ASSERT_TRUE(r.ok()) << r.status();
  const SearchState& st = r->state;
  EXPECT_LE(st.fitness, st.initial_fitness);
  for (size_t g = 1; g < st.history.size(); ++g) EXPECT_LE(st.history[g], st.history[g - 1]);
  // The reported fitness is the parent's, re-evaluated independently.
  auto e = Evaluator();
  ASSERT_TRUE(e->SetWindows(DrawWindows(stream_, 24, 96, 0, 0, 1)).ok());
  absl::StatusOr<std::vector<double>> f = e->Evaluate({st.parent, initial_}, nullptr, cancel_);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)[0], st.fitness);
  EXPECT_EQ((*f)[1], st.initial_fitness);
}

TEST_F(SearchTest, ResumeFromAGenerationCheckpointEqualsAnUninterruptedRun) {
  absl::StatusOr<SearchResult> whole = Search();
  ASSERT_TRUE(whole.ok());
  DirCheckpointStore checkpoints(dir_.path() + "/ckpt");
  CancelToken cancel;
  CancelAtGeneration stopper(&cancel, 3);
  EXPECT_EQ(Search(&checkpoints, &stopper, &cancel).status().code(), absl::StatusCode::kCancelled);
  absl::StatusOr<SearchResult> resumed = Search(&checkpoints);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->resumed_generations, 3);
  EXPECT_EQ(resumed->state.parent, whole->state.parent);
  EXPECT_EQ(resumed->state.history, whole->state.history);
  EXPECT_EQ(resumed->state.tokens, whole->state.tokens);
  EXPECT_EQ(resumed->state.seen, whole->state.seen);
  // A checkpoint of another search is ignored.
  auto evaluator = Evaluator();
  absl::StatusOr<SearchResult> other = RunSearch(space_, initial_, *evaluator, stream_, options_,
                                                 "other", &checkpoints, sink_, cancel_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->resumed_generations, 0);
}

TEST_F(SearchTest, PrefixReuseDoesNotChangeTheSearch) {
  absl::StatusOr<SearchResult> a = Search(nullptr, nullptr, nullptr, true);
  absl::StatusOr<SearchResult> b = Search(nullptr, nullptr, nullptr, false);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->state.history, b->state.history);
  EXPECT_EQ(a->state.parent, b->state.parent);
}

// The dense logits kept per step (all of them, or only the first micro-batch's)
// give the fitness of recomputing them for every candidate, bit for bit; and
// the sums run in row order across micro-batches, so packing two windows or
// four per micro-batch changes no value either.
TEST_F(SearchTest, KeptDenseLogitsAndMicroBatchPackingChangeNoFitness) {
  const std::vector<std::vector<int32_t>> windows = DrawWindows(stream_, 24, 96, 1, 0, 0);
  const std::vector<Config> configs = InitialAndMutations();
  for (FitnessSpec spec : kEveryFitness) {
    eval_.dense_logits_bytes = 0;
    eval_.micro_batch_tokens = 96;
    auto plain = Evaluator(spec);
    ASSERT_TRUE(plain->SetWindows(windows).ok());
    absl::StatusOr<std::vector<double>> a = plain->Evaluate(configs, &initial_, cancel_);
    ASSERT_TRUE(a.ok());
    const int64_t one_micro_batch = 48 * model_.config.vocab * int64_t{sizeof(float)};
    for (int64_t logits : {int64_t{1} << 30, one_micro_batch}) {
      eval_.dense_logits_bytes = logits;
      eval_.micro_batch_tokens = 48;
      auto kept = Evaluator(spec);
      ASSERT_TRUE(kept->SetWindows(windows).ok());
      absl::StatusOr<std::vector<double>> b = kept->Evaluate(configs, &initial_, cancel_);
      ASSERT_TRUE(b.ok());
      EXPECT_EQ(*a, *b) << "kind " << int(spec.kind) << " top_k " << spec.top_k << " logits "
                        << logits;
    }
  }
}

TEST_F(SearchTest, KeptDenseLogitsDoNotChangeTheSearch) {
  eval_.dense_logits_bytes = 0;
  absl::StatusOr<SearchResult> plain = Search();
  eval_.dense_logits_bytes = int64_t{1} << 30;
  absl::StatusOr<SearchResult> kept = Search();
  ASSERT_TRUE(plain.ok() && kept.ok());
  EXPECT_EQ(kept->state.history, plain->state.history);
  EXPECT_EQ(kept->state.parent, plain->state.parent);
  EXPECT_EQ(kept->state.seen, plain->state.seen);
}

TEST_F(SearchTest, EmitsPerGenerationEvents) {
  RecordingSink sink;
  ASSERT_TRUE(Search(nullptr, &sink).ok());
  int fitness = 0, survivors = 0, tokens = 0, search_progress = 0, units = 0, best = 0;
  for (const v1::JobEvent& e : sink.events) {
    if (e.has_metric()) {
      fitness += e.metric().name() == "fitness";
      survivors += e.metric().name() == "survivor_fitness";
      tokens += e.metric().name() == "tokens";
      units += e.metric().name() == "search_unit";
      if (e.metric().name() == "best_levels") {
        ++best;
        // One level per unit, each one of the space's levels.
        const std::vector<std::string> levels =
            absl::StrSplit(e.metric().labels().at("levels"), ',');
        ASSERT_EQ(levels.size(), space_.units.size());
        for (const std::string& l : levels) {
          double v = 0;
          ASSERT_TRUE(absl::SimpleAtod(l, &v));
          EXPECT_NE(std::find(space_.levels.begin(), space_.levels.end(), v), space_.levels.end());
        }
      }
    }
    search_progress += e.has_progress() && e.progress().stage() == "search";
  }
  EXPECT_EQ(fitness, 6);
  EXPECT_EQ(tokens, 6);
  EXPECT_EQ(best, 6);
  EXPECT_EQ(units, static_cast<int>(space_.units.size()));
  EXPECT_EQ(survivors, 6 * (3 + 1));
  EXPECT_EQ(search_progress, 7);
}

TEST(DrawWindowsTest, FreshWindowsPerGenerationAndStep) {
  const std::vector<int32_t> stream = engine::testing::RandomTokens(1000, 96, 1);
  const auto a = DrawWindows(stream, 64, 150, 7, 3, 1);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].size(), 64u);
  EXPECT_EQ(a[2].size(), 22u);  // cut to make 150 tokens
  EXPECT_EQ(DrawWindows(stream, 64, 150, 7, 3, 1), a);
  EXPECT_NE(DrawWindows(stream, 64, 150, 7, 4, 1), a);
  EXPECT_NE(DrawWindows(stream, 64, 150, 7, 3, 0), a);
  EXPECT_NE(DrawWindows(stream, 64, 150, 8, 3, 1), a);
  const auto whole =
      DrawWindows(std::vector<int32_t>(stream.begin(), stream.begin() + 10), 64, 25, 7, 0, 0);
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[0], std::vector<int32_t>(stream.begin(), stream.begin() + 10));
}

TEST(DropTest, SkippedSubBlocksEqualZeroedProjections) {
  const engine::LlamaModel model = TestModel();
  v1::EvoPressStage stage;
  stage.set_mode("drop");
  absl::StatusOr<SearchSpace> space = MakeSearchSpace(model, {}, stage);
  ASSERT_TRUE(space.ok());
  std::mt19937_64 rng(1);
  const Config c = *InitialConfig(*space, 0.5, rng);
  absl::StatusOr<engine::LlamaModel> stitched = StitchModel(model, *space, nullptr, c, nullptr);
  ASSERT_TRUE(stitched.ok());
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  absl::StatusOr<engine::SequenceBatch> batch = engine::SequenceBatch::Pack(Windows(3, 20));
  auto fwd = engine::LlamaForward::Create(&model, &backend);
  auto zeroed = engine::LlamaForward::Create(&*stitched, &backend);
  ASSERT_TRUE(fwd.ok() && zeroed.ok() && batch.ok());
  const int64_t n = batch->tokens() * model.config.hidden;
  std::vector<float> skip(n), full(n), plain(n);
  ASSERT_TRUE(fwd->Embed(*batch, skip.data()).ok());
  full = plain = skip;
  engine::BlockWorkspace ws;
  for (int b = 0; b < model.config.n_layers; ++b) {
    engine::BlockParts parts;
    for (size_t u = 0; u < space->units.size(); ++u) {
      if (space->units[u].block != b || c[u] == 0) continue;
      (space->units[u].attention ? parts.attention : parts.mlp) = false;
    }
    ASSERT_TRUE(fwd->RunBlockParts(model.blocks[b], parts, *batch, skip.data(), &ws).ok());
    ASSERT_TRUE(zeroed->RunBlock(stitched->blocks[b], *batch, full.data(), &ws).ok());
    ASSERT_TRUE(fwd->RunBlockParts(model.blocks[b], {}, *batch, plain.data(), &ws).ok());
  }
  EXPECT_EQ(skip, full);
  absl::StatusOr<std::vector<float>> dense = fwd->FinalHidden(*batch);
  std::vector<float> normed(n);
  fwd->FinalNorm(plain.data(), batch->tokens(), normed.data());
  EXPECT_EQ(normed, *dense);  // both halves: RunBlockParts == RunBlock
}

TEST(DropScoreTest, BlockInfluenceIsOneMinusCosineOfEachHalf) {
  const engine::LlamaModel model = TestModel();
  v1::EvoPressStage stage;
  stage.set_mode("drop");
  absl::StatusOr<SearchSpace> space = MakeSearchSpace(model, AllModules(4), stage);
  ASSERT_TRUE(space.ok()) << space.status();
  ASSERT_EQ(space->units.size(), 8u);
  const std::vector<std::vector<int32_t>> windows = Windows(2, 12);
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  absl::StatusOr<std::vector<double>> scores = BlockInfluence(model, &backend, *space, windows);
  ASSERT_TRUE(scores.ok()) << scores.status();
  // Independently: the residual stream before and after each half, by hand.
  absl::StatusOr<engine::LlamaForward> fwd = engine::LlamaForward::Create(&model, &backend);
  ASSERT_TRUE(fwd.ok());
  const int64_t d = model.config.hidden;
  std::map<std::string, double> want;
  engine::BlockWorkspace ws;
  for (const auto& w : windows) {
    absl::StatusOr<engine::SequenceBatch> batch = engine::SequenceBatch::Pack({w});
    ASSERT_TRUE(batch.ok());
    std::vector<float> h(w.size() * d);
    ASSERT_TRUE(fwd->Embed(*batch, h.data()).ok());
    for (int b = 0; b < 4; ++b) {
      for (bool attention : {true, false}) {
        const std::vector<float> in = h;
        engine::BlockParts parts{attention, !attention};
        ASSERT_TRUE(fwd->RunBlockParts(model.blocks[b], parts, *batch, h.data(), &ws).ok());
        for (size_t t = 0; t < w.size(); ++t) {
          double ab = 0, aa = 0, bb = 0;
          for (int64_t i = 0; i < d; ++i) {
            ab += double{in[t * d + i]} * h[t * d + i];
            aa += double{in[t * d + i]} * in[t * d + i];
            bb += double{h[t * d + i]} * h[t * d + i];
          }
          want["model.layers." + std::to_string(b) + (attention ? ".self_attn" : ".mlp")] +=
              (1 - ab / std::sqrt(aa * bb)) / 24.0;
        }
      }
    }
  }
  for (size_t u = 0; u < space->units.size(); ++u) {
    EXPECT_NEAR((*scores)[u], want.at(space->units[u].name), 1e-9) << space->units[u].name;
    EXPECT_GT((*scores)[u], 0.0);
  }
  // The baseline drops the lowest-scoring quarter of each half type.
  absl::StatusOr<Config> config = ScoreDropConfig(*space, 0.25, *scores);
  ASSERT_TRUE(config.ok());
  for (const std::vector<int>& group : space->groups) {
    int lowest = group[0];
    for (int u : group) {
      if ((*scores)[u] < (*scores)[lowest]) lowest = u;
    }
    for (int u : group) EXPECT_EQ((*config)[u], u == lowest ? 1 : 0) << space->units[u].name;
  }
  EXPECT_EQ(ScoreDropConfig(*space, 0.25, {1.0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine::evopress
