// The EvoPress stage of a model job (workers/engine/pipeline/evopress_stage.h):
// the model stitched from the search's best configuration, the configuration
// file and summary, every mode and database, the score start, and the same
// result when the stage's parts are fanned out over two workers.
#include "workers/engine/pipeline/evopress_stage.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/evopress/evopress_fixture.h"
#include "workers/engine/evopress/drop_score.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/evopress_session.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine::evopress {
namespace {

using testing::AllModules;
using testing::RecordingSink;
using testing::ScratchDir;
using testing::TestModel;
using testing::Windows;

struct RunOutcome {
  engine::LlamaModel model;
  CompressionResult result;
  nlohmann::json summary, config;
};

// What RunEvoPress gets for `stage` (an evopress flow mapping) on the test model.
struct StageInputs {
  RecipeSpec recipe;
  std::vector<ModelTarget> targets;
  CalibrationSet calib;
};

StageInputs Inputs(const std::string& stage) {
  StageInputs in;
  absl::StatusOr<v1::Recipe> recipe =
      ParseRecipeText("stages:\n  - evopress: " + stage +
                      "\ncalibration: {path: /unused, samples: 4, seq_len: 20}\n");
  EXPECT_TRUE(recipe.ok()) << recipe.status();
  absl::StatusOr<RecipeSpec> spec = PrepareRecipe(*recipe);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (spec.ok()) in.recipe = *spec;
  engine::LlamaModel model = TestModel();
  absl::StatusOr<std::vector<ModelTarget>> targets = SelectModelTargets(model, in.recipe);
  EXPECT_TRUE(targets.ok());
  if (targets.ok()) in.targets = *targets;
  in.calib.sequences = Windows(4, 20);
  in.calib.stream = engine::testing::RandomTokens(300, testing::TestConfig().vocab, 8);
  return in;
}

// RunEvoPress on the test model with `stage` (an evopress flow mapping).
RunOutcome RunStage(const std::string& stage, CheckpointStore* levels_db = nullptr,
                    Fanout* fanout = nullptr) {
  RunOutcome out;
  const StageInputs inputs = Inputs(stage);
  out.model = TestModel();
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  ScratchDir dir;
  RecordingSink sink;
  CancelToken cancel;
  RunOptions options;
  options.levels_db = levels_db;
  options.fanout = fanout;
  const EvoPressJob job{&out.model, &backend, &inputs.recipe, &inputs.targets, &inputs.calib, 1};
  absl::StatusOr<nlohmann::json> s =
      RunEvoPress(job, options, dir.path(), sink, cancel, &out.result);
  EXPECT_TRUE(s.ok()) << s.status();
  if (s.ok()) out.summary = *s;
  std::ifstream in(std::filesystem::path(dir.path()) / "evopress_config.json");
  out.config = nlohmann::json::parse(in, nullptr, false);
  return out;
}

constexpr char kSparsityStage[] =
    "{mode: sparsity, target: 0.5, levels: [0.3, 0.4, 0.5, 0.6, 0.7], generations: 3, "
    "offspring: 4, survivors: [2, 1], step_tokens: [40, 80], seed: 5}";

TEST(EvoPressRunTest, SparsityStitchesTheModelAndWritesTheConfiguration) {
  testing::MemoryStore db;
  const RunOutcome r = RunStage(kSparsityStage, &db);
  EXPECT_EQ(r.result.layers.size(), 28u);
  const double sparsity = static_cast<double>(r.result.zeros) / r.result.targeted_parameters;
  EXPECT_NEAR(sparsity, 0.5, 0.02);
  EXPECT_NE(r.model.blocks[0].q_proj.data, TestModel().blocks[0].q_proj.data);
  EXPECT_EQ(r.summary["fitness_curve"].size(), 3u);
  EXPECT_EQ(r.summary["levels_db"]["entries_built"].get<int>(), 28 * 5);
  EXPECT_EQ(r.summary["levels_db"]["build"], "sequential");
  ASSERT_TRUE(r.config.is_object());
  EXPECT_EQ(r.config["units"].size(), 28u);
  EXPECT_NEAR(r.config["mean_level"].get<double>(), 0.5, 1e-9);
  // A second run finds the database in the store: nothing rebuilt, same result.
  const RunOutcome again = RunStage(kSparsityStage, &db);
  EXPECT_EQ(again.summary["levels_db"]["entries_built"].get<int>(), 0);
  EXPECT_EQ(again.summary["levels_db"]["entries_reused"].get<int>(), 28 * 5);
  EXPECT_EQ(again.config, r.config);
}

// Two workers as the service runs them: parts alternate between the job's
// own process (`local`) and a second EvoPressSession built from the same
// model, recipe and calibration set, as another worker builds it (its own
// model copy, backend and database reader on the shared store).
class TwoWorkerFanout : public Fanout {
 public:
  TwoWorkerFanout(const std::string& stage, CheckpointStore* store)
      : inputs_(Inputs(stage)), model_(TestModel()) {
    absl::StatusOr<std::unique_ptr<EvoPressSession>> s = EvoPressSession::Create(
        model_, backend_, inputs_.recipe, inputs_.targets, inputs_.calib, 1, store);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) other_ = *std::move(s);
  }
  absl::StatusOr<std::vector<std::string>> Run(const std::vector<WorkPart>& parts,
                                               const LocalFn& local,
                                               const CancelToken& cancel) override {
    std::vector<std::string> out;
    for (const WorkPart& p : parts) {
      names.push_back(p.name);
      absl::StatusOr<std::string> r =
          (turn_++ % 2 == 0) ? local(p) : other_->RunPart(p.payload, sink_, cancel);
      if (!r.ok()) return r.status();
      out.push_back(*r);
    }
    return out;
  }
  int workers() override { return 2; }
  std::vector<std::string> names;

 private:
  StageInputs inputs_;
  engine::LlamaModel model_;
  engine::CpuBackend backend_{engine::CpuBackendOptions{1, 128}};
  std::unique_ptr<EvoPressSession> other_;
  RecordingSink sink_;
  int turn_ = 0;
};

TEST(EvoPressRunTest, FannedOutOverTwoWorkersEqualsTheLocalRun) {
  testing::MemoryStore local_db, fanned_db;
  const RunOutcome local = RunStage(kSparsityStage, &local_db);
  TwoWorkerFanout fanout(kSparsityStage, &fanned_db);
  const RunOutcome fanned = RunStage(kSparsityStage, &fanned_db, &fanout);
  // One part per level of the database, then two per selection step.
  int level_parts = 0, eval_parts = 0;
  for (const std::string& n : fanout.names) {
    level_parts += n.rfind("evopress/level/", 0) == 0;
    eval_parts += n.rfind("evopress/eval/", 0) == 0;
  }
  EXPECT_EQ(level_parts, 5);
  EXPECT_EQ(eval_parts, 3 * 2 * 2);  // generations x steps x workers
  EXPECT_EQ(fanned.summary["levels_db"]["entries_built"].get<int>(), 28 * 5);
  EXPECT_EQ(fanned.summary["levels_db"]["parts"].get<int>(), 5);
  // The same search: fitness curve, configuration and weights, bit for bit.
  EXPECT_EQ(fanned.summary["fitness_curve"], local.summary["fitness_curve"]);
  EXPECT_EQ(fanned.summary["final_fitness"], local.summary["final_fitness"]);
  EXPECT_EQ(fanned.summary["tokens"], local.summary["tokens"]);
  // Each worker also runs the parent for prefix reuse, but unscored (not an
  // evaluation) where the parent is not among its candidates.
  EXPECT_EQ(fanned.summary["evaluations"], local.summary["evaluations"]);
  EXPECT_EQ(fanned.config, local.config);
  for (int b = 0; b < 4; ++b) {
    const engine::Tensor& a = fanned.model.blocks[b].down_proj;
    const engine::Tensor& c = local.model.blocks[b].down_proj;
    EXPECT_EQ(std::memcmp(a.data, c.data, sizeof(float) * a.numel()), 0) << b;
  }
  // A payload this session cannot compute is INVALID_ARGUMENT.
  StageInputs in = Inputs(kSparsityStage);
  engine::LlamaModel model = TestModel();
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  absl::StatusOr<std::unique_ptr<EvoPressSession>> s =
      EvoPressSession::Create(model, backend, in.recipe, in.targets, in.calib, 1, &fanned_db);
  ASSERT_TRUE(s.ok());
  RecordingSink sink;
  CancelToken cancel;
  EXPECT_EQ((*s)->RunPart(R"({"kind": "level", "level": 9})", sink, cancel).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->RunPart("not json", sink, cancel).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*s)->RunPart(R"({"kind": "eval", "generation": 0, "step": 0, "configs": [[1]],)"
                          R"( "base": [1]})",
                          sink, cancel)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EvoPressRunTest, DenseInputsDatabaseIsSelectable) {
  testing::MemoryStore db;
  const RunOutcome seq = RunStage(kSparsityStage, &db);
  std::string stage = kSparsityStage;
  stage.insert(stage.size() - 1, ", database: dense_inputs");
  const RunOutcome dense = RunStage(stage, &db);
  EXPECT_EQ(dense.summary["levels_db"]["build"], "dense_inputs");
  // Its own entries: nothing reused from the sequential database.
  EXPECT_EQ(dense.summary["levels_db"]["entries_built"].get<int>(), 28 * 5);
  EXPECT_NE(dense.summary["levels_db"]["fingerprint"], seq.summary["levels_db"]["fingerprint"]);
}

TEST(EvoPressRunTest, BitsModeKeepsTheCodesOfEveryLayer) {
  const RunOutcome r = RunStage(
      "{mode: bits, target: 3, levels: [2, 3, 4], grid: {group_size: 16}, generations: 2, "
      "offspring: 3, survivors: [1], step_tokens: [60], seed: 2}");
  ASSERT_EQ(r.result.quantized.size(), 28u);
  ASSERT_TRUE(r.config.is_object());
  for (const nlohmann::json& u : r.config["units"]) {
    const engine::QuantizedTensor& q =
        r.result.quantized.at(u["name"].get<std::string>() + ".weight");
    EXPECT_EQ(q.grid.bits, u["level"].get<double>());
    EXPECT_EQ(q.grid.group_size, 16);
  }
  EXPECT_NEAR(r.config["mean_level"].get<double>(), 3.0, 1e-9);
}

TEST(EvoPressRunTest, DropModeZeroesTheDroppedHalves) {
  const RunOutcome r = RunStage(
      "{mode: drop, target: 0.25, drop_attention: true, generations: 2, offspring: 2, "
      "survivors: [1], step_tokens: [40], seed: 3}");
  ASSERT_TRUE(r.config.is_object());
  ASSERT_EQ(r.config["units"].size(), 4u);  // attention halves only
  int dropped = 0;
  for (int b = 0; b < 4; ++b) {
    const engine::Tensor& o = r.model.blocks[b].o_proj;
    const bool zero = std::all_of(o.data, o.data + o.numel(), [](float x) { return x == 0; });
    EXPECT_EQ(zero, r.config["units"][b]["level"].get<double>() == 1.0) << b;
    dropped += zero;
  }
  EXPECT_EQ(dropped, 1);
}

TEST(EvoPressRunTest, ScoreStartWithoutGenerationsIsTheScoreBaseline) {
  const RunOutcome r = RunStage(
      "{mode: drop, target: 0.25, start: score, generations: 0, survivors: [1], "
      "step_tokens: [40], seed: 3}");
  ASSERT_TRUE(r.summary.contains("block_influence")) << r.summary.dump();
  EXPECT_EQ(r.summary["start"], "score");
  EXPECT_EQ(r.summary["block_influence"].size(), 8u);
  // Per half type, the unit of lowest block influence is the one dropped.
  for (const char* half : {".self_attn", ".mlp"}) {
    std::string lowest;
    for (const auto& [name, score] : r.summary["block_influence"].items()) {
      if (name.find(half) == std::string::npos) continue;
      if (lowest.empty() ||
          score.get<double>() < r.summary["block_influence"][lowest].get<double>()) {
        lowest = name;
      }
    }
    for (const nlohmann::json& u : r.config["units"]) {
      if (u["name"].get<std::string>().find(half) == std::string::npos) continue;
      EXPECT_EQ(u["level"].get<double>(), u["name"] == lowest ? 1.0 : 0.0) << u["name"];
    }
  }
  // start: score is a drop-mode option.
  absl::StatusOr<v1::Recipe> bad = ParseRecipeText(
      "stages:\n  - evopress: {mode: sparsity, target: 0.5, start: score}\n"
      "calibration: {path: /unused}\n");
  ASSERT_TRUE(bad.ok());
  ApplyRecipeDefaults(&*bad);
  const absl::Status st = ValidateRecipe(*bad);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("start"), std::string::npos) << st;
}

}  // namespace
}  // namespace compressd::engine::evopress
