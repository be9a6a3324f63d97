#include "workers/engine/evopress/levels_db.h"

#include <cstring>
#include <random>

#include "common/recipe.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/evopress/evopress_fixture.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/level_codec.h"
#include "workers/engine/nn/block_runner.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/evopress_session.h"

namespace compressd::engine::evopress {
namespace {

using testing::AllModules;
using testing::RecordingSink;
using testing::ScratchDir;
using testing::TestModel;
using testing::Windows;

std::vector<float> RandomWeights(int64_t n, uint32_t seed, double zero_fraction) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<float> w(n);
  for (float& x : w) x = u(rng) < zero_fraction ? 0.0f : normal(rng);
  return w;
}

bool SameBits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

TEST(LevelCodecTest, PrunedRoundTripIsBitExact) {
  std::vector<float> w = RandomWeights(37 * 19, 1, 0.6);
  w[3] = -0.0f;  // a negative zero is stored, not dropped
  const std::string bytes = EncodeLevelWeight(w.data(), 37, 19, nullptr);
  EXPECT_LT(bytes.size(), w.size() * sizeof(float));
  absl::StatusOr<LevelWeight> d = DecodeLevelWeight(bytes, "x", 37, 19);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->quantized.has_value());
  EXPECT_TRUE(SameBits(d->weight.data, w.data(), w.size()));
}

TEST(LevelCodecTest, QuantizedRoundTripKeepsCodes) {
  std::vector<float> w = RandomWeights(8 * 32, 2, 0.0);
  absl::StatusOr<engine::QuantizedTensor> q =
      engine::QuantizeRtn(w.data(), 8, 32, engine::QuantGrid{3, 16, false}, "x");
  ASSERT_TRUE(q.ok());
  const std::string bytes = EncodeLevelWeight(w.data(), 8, 32, &*q);
  absl::StatusOr<LevelWeight> d = DecodeLevelWeight(bytes, "x", 8, 32);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->quantized.has_value());
  EXPECT_EQ(d->quantized->codes, q->codes);
  EXPECT_EQ(d->quantized->scales, q->scales);
  EXPECT_EQ(d->quantized->group_index, q->group_index);
  EXPECT_TRUE(SameBits(d->weight.data, w.data(), w.size()));
  // Weights that are not the codes' dequantization are stored as they are.
  w[5] += 1e-3f;
  absl::StatusOr<LevelWeight> d2 =
      DecodeLevelWeight(EncodeLevelWeight(w.data(), 8, 32, &*q), "x", 8, 32);
  ASSERT_TRUE(d2.ok());
  EXPECT_TRUE(SameBits(d2->weight.data, w.data(), w.size()));
}

TEST(LevelCodecTest, CorruptBytesAreDataLoss) {
  std::vector<float> w = RandomWeights(16, 3, 0.5);
  std::string bytes = EncodeLevelWeight(w.data(), 4, 4, nullptr);
  EXPECT_EQ(DecodeLevelWeight(bytes.substr(0, bytes.size() - 1), "e", 4, 4).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeLevelWeight(bytes, "e", 2, 8).status().code(), absl::StatusCode::kDataLoss);
  bytes[0] = 'X';
  EXPECT_EQ(DecodeLevelWeight(bytes, "e", 4, 4).status().code(), absl::StatusCode::kDataLoss);
}

class LevelsDbTest : public ::testing::Test {
 protected:
  SearchSpace Space(const std::string& mode, std::vector<double> levels) {
    v1::EvoPressStage stage;
    stage.set_mode(mode);
    for (double l : levels) stage.add_levels(l);
    absl::StatusOr<SearchSpace> s = MakeSearchSpace(model_, AllModules(4), stage);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  DbBuildStats Build(LevelsDb& db, std::set<int> blocks = {}) {
    absl::StatusOr<DbBuildStats> s =
        BuildLevelsDb(model_, backend_, windows_, blocks, 1, db, sink_, cancel_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : DbBuildStats{};
  }
  static LevelsDbSpec DenseSpec() {
    LevelsDbSpec spec;
    spec.build = DbBuild::kDenseInputs;
    return spec;
  }
  DbBuildStats BuildSequential(LevelsDb& db, std::set<int> blocks = {}) {
    absl::StatusOr<DbBuildStats> s = BuildSequentialLevelsDb(
        model_, blocks,
        SequentialCompressor(model_, backend_, db.space(), db.spec(), windows_, 1, sink_, cancel_),
        db, sink_, cancel_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : DbBuildStats{};
  }
  // `model_` compressed by the calibration pipeline with `stage` (YAML flow
  // mapping of one stage) on every block linear.
  std::pair<engine::LlamaModel, CompressionResult> Calibrated(const std::string& stage,
                                                              bool true_sequential = false) {
    absl::StatusOr<v1::Recipe> recipe =
        ParseRecipeText("stages:\n  - " + stage + "\ncalibration: {path: /unused}\n");
    EXPECT_TRUE(recipe.ok()) << recipe.status();
    ApplyRecipeDefaults(&*recipe);
    recipe->mutable_calibration()->set_true_sequential(true_sequential);
    std::pair<engine::LlamaModel, CompressionResult> out{model_, {}};
    std::vector<ModelTarget> targets;
    for (const std::string& m : AllModules(4)) targets.push_back({m + ".weight", m});
    CalibrationSet calib;
    calib.sequences = windows_;
    const absl::Status s = CompressCalibrated(out.first, backend_, *recipe, targets, calib, 1,
                                              nullptr, sink_, cancel_, &out.second);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // Dense H of the input feeding q_proj in every block.
  std::vector<std::vector<float>> AttentionHessians() {
    engine::LlamaModel copy = model_;
    auto runner = engine::BlockRunner::Create(&copy, &backend_, windows_);
    EXPECT_TRUE(runner.ok());
    std::vector<std::vector<float>> hs;
    EXPECT_TRUE((*runner)
                    ->RunAll([&](int, const engine::LinearInputs& in, engine::BlockWeights*) {
                      engine::HessianAccumulator acc(model_.config.hidden);
                      EXPECT_TRUE(acc.Add(in.attn_in, in.tokens).ok());
                      hs.push_back(*acc.Hessian());
                      return absl::OkStatus();
                    })
                    .ok());
    return hs;
  }

  engine::LlamaModel model_ = TestModel();
  std::vector<std::vector<int32_t>> windows_ = Windows(6, 24);
  engine::CpuBackend backend_{engine::CpuBackendOptions{1, 128}};
  RecordingSink sink_;
  CancelToken cancel_;
  ScratchDir dir_;
  DirCheckpointStore store_{dir_.path()};
};

TEST_F(LevelsDbTest, EntriesAreSparseGptOnTheDenseInputs) {
  const SearchSpace space = Space("sparsity", {0.0, 0.25, 0.5});
  const LevelsDbSpec spec = DenseSpec();
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  const DbBuildStats stats = Build(db);
  EXPECT_EQ(stats.solved, 28 * 3);
  EXPECT_EQ(stats.reused, 0);
  const std::vector<std::vector<float>> hs = AttentionHessians();
  for (size_t u = 0; u < space.units.size(); ++u) {
    const Unit& unit = space.units[u];
    if (unit.member != &engine::BlockWeights::q_proj) continue;
    const engine::Tensor& dense = model_.blocks[unit.block].q_proj;
    for (int l = 0; l < 3; ++l) {
      std::vector<float> want(dense.data, dense.data + dense.numel());
      if (space.levels[l] > 0) {
        engine::SparseGptOptions o;
        o.sparsity = space.levels[l];
        o.report_error = false;
        ASSERT_TRUE(engine::SparseGpt(want.data(), dense.rows(), dense.cols(),
                                      hs[unit.block].data(), o, "q")
                        .ok());
      }
      absl::StatusOr<std::shared_ptr<const LevelWeight>> got = db.Load(u, l);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(SameBits((*got)->weight.data, want.data(), want.size()))
          << unit.name << " level " << l;
    }
  }
}

TEST_F(LevelsDbTest, SecondBuildReusesAndAnotherTargetBuildsOnlyNewLevels) {
  const LevelsDbSpec spec = DenseSpec();
  const std::string fp = LevelsDbFingerprint(model_, windows_, spec, Space("sparsity", {0.5}));
  LevelsDb first(&store_, fp, Space("sparsity", {0.3, 0.4, 0.5}), spec);
  EXPECT_EQ(Build(first).solved, 28 * 3);
  LevelsDb again(&store_, fp, Space("sparsity", {0.3, 0.4, 0.5}), spec);
  const DbBuildStats s2 = Build(again);
  EXPECT_EQ(s2.solved, 0);
  EXPECT_EQ(s2.reused, 28 * 3);
  LevelsDb shifted(&store_, fp, Space("sparsity", {0.4, 0.5, 0.6}), spec);
  const DbBuildStats s3 = Build(shifted);
  EXPECT_EQ(s3.solved, 28);  // only 0.6 is new
  EXPECT_EQ(s3.reused, 28 * 2);
  // Other calibration windows: another fingerprint, nothing shared.
  EXPECT_NE(LevelsDbFingerprint(model_, Windows(6, 24, 999), spec, Space("sparsity", {0.5})), fp);
}

TEST_F(LevelsDbTest, BuildsASubsetOfBlocks) {
  const LevelsDbSpec spec = DenseSpec();
  const SearchSpace space = Space("sparsity", {0.5});
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  EXPECT_EQ(Build(db, {1, 2}).solved, 14);
  // Units are sorted by projection, then block: unit 1 is q_proj of block 1.
  EXPECT_TRUE(db.Load(1, 0).ok());
  EXPECT_EQ(db.Load(0, 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Build(db).solved, 14);  // blocks 0 and 3
}

TEST_F(LevelsDbTest, BitsEntriesAreGptqWithCodes) {
  const SearchSpace space = Space("bits", {2, 4});
  LevelsDbSpec spec = DenseSpec();
  spec.mode = Mode::kBits;
  spec.grid = engine::QuantGrid{4, 16, true};
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  EXPECT_EQ(Build(db).solved, 28 * 2);
  const std::vector<std::vector<float>> hs = AttentionHessians();
  const engine::Tensor& dense = model_.blocks[0].q_proj;
  std::vector<float> want(dense.data, dense.data + dense.numel());
  engine::GptqOptions o;
  o.grid = engine::QuantGrid{2, 16, true};
  o.act_order = true;  // the database's default, as the GPTQ stage's
  o.static_groups = true;
  o.massive_fallback = true;
  o.report_error = false;
  absl::StatusOr<engine::LayerSolveResult> r =
      engine::Gptq(want.data(), dense.rows(), dense.cols(), hs[0].data(), o, "q");
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::shared_ptr<const LevelWeight>> got = db.Load(0, 0);  // q_proj block 0, 2 bits
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE((*got)->quantized.has_value());
  EXPECT_EQ((*got)->quantized->grid.bits, 2);
  EXPECT_EQ((*got)->quantized->codes, r->quantized->codes);
  EXPECT_TRUE(SameBits((*got)->weight.data, want.data(), want.size()));
}

TEST_F(LevelsDbTest, LoadDecodesOnceAndReportsMissingEntries) {
  const LevelsDbSpec spec = DenseSpec();
  const SearchSpace space = Space("sparsity", {0.5});
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  EXPECT_EQ(db.Load(0, 0).status().code(), absl::StatusCode::kNotFound);
  Build(db, {0});
  ASSERT_TRUE(db.Load(0, 0).ok());
  ASSERT_TRUE(db.Load(0, 0).ok());
  EXPECT_EQ(db.decodes(), 1);
}

// The sequential database's level L is the sequential pipeline's model at
// uniform L, every unit bit for bit: its uniform configuration IS the
// standard SparseGPT baseline.
TEST_F(LevelsDbTest, SequentialEntriesAreTheCalibratedPipelineAtUniformLevel) {
  const SearchSpace space = Space("sparsity", {0.0, 0.25, 0.5});
  const LevelsDbSpec spec;
  ASSERT_EQ(spec.build, DbBuild::kSequential);
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  const DbBuildStats stats = BuildSequential(db);
  EXPECT_EQ(stats.solved, 28 * 3);
  EXPECT_EQ(stats.reused, 0);
  for (int l = 0; l < 3; ++l) {
    engine::LlamaModel want = model_;
    if (l > 0) {
      want = Calibrated("sparsegpt: {sparsity: " + std::to_string(space.levels[l]) + "}").first;
    }
    for (size_t u = 0; u < space.units.size(); ++u) {
      const Unit& unit = space.units[u];
      const engine::Tensor& w = want.blocks[unit.block].*(unit.member);
      absl::StatusOr<std::shared_ptr<const LevelWeight>> got = db.Load(u, l);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(SameBits((*got)->weight.data, w.data, w.numel())) << unit.name << " level " << l;
    }
    // The stitched uniform configuration is that model.
    absl::StatusOr<engine::LlamaModel> stitched =
        StitchModel(model_, space, &db, Config(space.units.size(), l), nullptr);
    ASSERT_TRUE(stitched.ok()) << stitched.status();
    const engine::Tensor& down = stitched->blocks[3].down_proj;
    EXPECT_TRUE(SameBits(down.data, want.blocks[3].down_proj.data, down.numel()));
  }
  // Unlike the dense-inputs database past block 0 (its inputs differ there).
  LevelsDb dense(&store_, LevelsDbFingerprint(model_, windows_, DenseSpec(), space), space,
                 DenseSpec());
  Build(dense);
  const std::shared_ptr<const LevelWeight> a = *db.Load(3, 2);  // q_proj of block 3 at 0.5
  const std::shared_ptr<const LevelWeight> b = *dense.Load(3, 2);
  EXPECT_FALSE(SameBits(a->weight.data, b->weight.data, space.units[3].numel));
  // A second build reuses everything.
  LevelsDb again(&store_, db.fingerprint(), space, spec);
  const DbBuildStats s2 = BuildSequential(again);
  EXPECT_EQ(s2.solved, 0);
  EXPECT_EQ(s2.reused, 28 * 3);
}

TEST_F(LevelsDbTest, SequentialBitsEntriesAreGptqPassesWithCodes) {
  const SearchSpace space = Space("bits", {2, 3});
  LevelsDbSpec spec;
  spec.mode = Mode::kBits;
  spec.grid = engine::QuantGrid{4, 16, false};
  spec.true_sequential = true;
  LevelsDb db(&store_, LevelsDbFingerprint(model_, windows_, spec, space), space, spec);
  EXPECT_EQ(BuildSequential(db).solved, 28 * 2);
  const auto [want, result] =
      Calibrated("gptq: {grid: {bits: 3, group_size: 16, asymmetric: true}}", true);
  for (size_t u = 0; u < space.units.size(); ++u) {
    const Unit& unit = space.units[u];
    absl::StatusOr<std::shared_ptr<const LevelWeight>> got = db.Load(u, 1);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE((*got)->quantized.has_value());
    EXPECT_EQ((*got)->quantized->codes, result.quantized.at(unit.name + ".weight").codes);
    const engine::Tensor& w = want.blocks[unit.block].*(unit.member);
    EXPECT_TRUE(SameBits((*got)->weight.data, w.data, w.numel())) << unit.name;
  }
}

TEST_F(LevelsDbTest, SequentialSubsetOfBlocksMatchesTheFullPass) {
  const SearchSpace space = Space("sparsity", {0.5});
  const LevelsDbSpec spec;
  const std::string fp = LevelsDbFingerprint(model_, windows_, spec, space);
  testing::MemoryStore full_store;
  LevelsDb full(&full_store, fp, space, spec);
  EXPECT_EQ(BuildSequential(full).solved, 28);
  LevelsDb part(&store_, fp, space, spec);
  EXPECT_EQ(BuildSequential(part, {1}).solved, 7);  // a pass cut after block 1
  EXPECT_EQ(part.Load(0, 0).status().code(), absl::StatusCode::kNotFound);
  const std::shared_ptr<const LevelWeight> a = *part.Load(1, 0);  // q_proj of block 1
  const std::shared_ptr<const LevelWeight> b = *full.Load(1, 0);
  EXPECT_TRUE(SameBits(a->weight.data, b->weight.data, space.units[1].numel));
  EXPECT_EQ(BuildSequential(part).solved, 21);
}

TEST_F(LevelsDbTest, FingerprintKeysTheBuildAndTheSequentialUnits) {
  const SearchSpace all = Space("sparsity", {0.5});
  v1::EvoPressStage mlp;
  mlp.set_mode("sparsity");
  mlp.add_levels(0.5);
  std::vector<std::string> modules;
  for (const std::string& m : AllModules(4)) {
    if (m.find("mlp") != std::string::npos) modules.push_back(m);
  }
  const SearchSpace mlp_only = *MakeSearchSpace(model_, modules, mlp);
  LevelsDbSpec seq;
  EXPECT_NE(LevelsDbFingerprint(model_, windows_, seq, all),
            LevelsDbFingerprint(model_, windows_, DenseSpec(), all));
  EXPECT_NE(LevelsDbFingerprint(model_, windows_, seq, all),
            LevelsDbFingerprint(model_, windows_, seq, mlp_only));
  LevelsDbSpec ts = seq;
  ts.true_sequential = true;
  EXPECT_NE(LevelsDbFingerprint(model_, windows_, seq, all),
            LevelsDbFingerprint(model_, windows_, ts, all));
  // Bits entries solved with and without act-order differ.
  const SearchSpace bits = Space("bits", {2, 3});
  LevelsDbSpec act = seq;
  act.mode = Mode::kBits;
  LevelsDbSpec plain = act;
  plain.act_order = false;
  EXPECT_NE(LevelsDbFingerprint(model_, windows_, act, bits),
            LevelsDbFingerprint(model_, windows_, plain, bits));
  // Dense-inputs entries do not depend on the other units: shared.
  EXPECT_EQ(LevelsDbFingerprint(model_, windows_, DenseSpec(), all),
            LevelsDbFingerprint(model_, windows_, DenseSpec(), mlp_only));
  // Each builder refuses the other's database.
  LevelsDb db(&store_, "x", all, seq);
  EXPECT_EQ(BuildLevelsDb(model_, backend_, windows_, {}, 1, db, sink_, cancel_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine::evopress
