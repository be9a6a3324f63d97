#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/calib/block_checkpoint.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/checkpoint.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using engine::BlockWeights;
using engine::LlamaModel;
using engine::Tensor;

class NullSink : public EventSink {
 public:
  void Emit(const v1::JobEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back(e);
  }
  std::vector<v1::JobEvent> events;

 private:
  std::mutex mu_;
};

// Cancels the run when block `block` starts.
class CancelAtBlock : public EventSink {
 public:
  CancelAtBlock(CancelToken* cancel, int block) : cancel_(cancel), block_(block) {}
  void Emit(const v1::JobEvent& e) override {
    if (e.has_progress() && e.progress().stage() == "calibrate" &&
        e.progress().current() == block_) {
      cancel_->Cancel();
    }
  }

 private:
  CancelToken* cancel_;
  int block_;
};

// The layers that reported a reconstruction_error.
class LayerRecorder : public EventSink {
 public:
  void Emit(const v1::JobEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.has_metric() && e.metric().name() == "reconstruction_error") {
      layers.insert(e.metric().labels().at("layer"));
    }
  }
  std::set<std::string> layers;

 private:
  std::mutex mu_;
};

v1::Recipe MakeRecipe(const std::string& text) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText(text);
  EXPECT_TRUE(r.ok()) << r.status();
  ApplyRecipeDefaults(&*r);
  EXPECT_TRUE(ValidateRecipe(*r).ok()) << ValidateRecipe(*r);
  return *r;
}

CalibrationSet MakeCalibration(int samples, int len, int vocab) {
  CalibrationSet c;
  c.name = "test";
  for (int s = 0; s < samples; ++s) {
    c.sequences.push_back(engine::testing::RandomTokens(len, vocab, 100 + s));
  }
  return c;
}

struct RunResult {
  LlamaModel model;
  CompressionResult result;
  absl::Status status;
};

RunResult Compress(const LlamaModel& dense, const v1::Recipe& recipe, const CalibrationSet& calib,
                   CheckpointStore* store, EventSink* sink = nullptr,
                   CancelToken* cancel = nullptr) {
  RunResult run;
  run.model = dense;
  NullSink null_sink;
  CancelToken no_cancel;
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  absl::StatusOr<std::vector<ModelTarget>> targets =
      SelectModelTargets(run.model, *CompileRecipe(recipe));
  EXPECT_TRUE(targets.ok()) << targets.status();
  run.status =
      CompressCalibrated(run.model, backend, recipe, *targets, calib, 1, store,
                         sink ? *sink : null_sink, cancel ? *cancel : no_cancel, &run.result);
  return run;
}

std::vector<const Tensor*> Linears(const BlockWeights& b) {
  return {&b.q_proj, &b.k_proj, &b.v_proj, &b.o_proj, &b.gate_proj, &b.up_proj, &b.down_proj};
}

void ExpectSameWeights(const LlamaModel& a, const LlamaModel& b) {
  ASSERT_EQ(a.blocks.size(), b.blocks.size());
  for (size_t i = 0; i < a.blocks.size(); ++i) {
    const auto la = Linears(a.blocks[i]), lb = Linears(b.blocks[i]);
    for (size_t k = 0; k < la.size(); ++k) {
      ASSERT_EQ(la[k]->numel(), lb[k]->numel());
      for (int64_t j = 0; j < la[k]->numel(); ++j) {
        ASSERT_EQ(la[k]->data[j], lb[k]->data[j])
            << "block " << i << " linear " << k << " at " << j;
      }
    }
  }
}

// The procedure written out directly: per block, the linear inputs of the
// current (partly compressed) model, one Hessian per distinct input, GPTQ on
// each linear, then the block's output with the compressed weights.
LlamaModel ReferenceSequentialGptq(const LlamaModel& dense, const CalibrationSet& calib,
                                   const engine::GptqOptions& options) {
  LlamaModel model = dense;
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  absl::StatusOr<engine::LlamaForward> fwd = engine::LlamaForward::Create(&model, &backend);
  EXPECT_TRUE(fwd.ok());
  absl::StatusOr<engine::SequenceBatch> batch = engine::SequenceBatch::Pack(calib.sequences);
  const engine::LlamaConfig& c = model.config;
  const int64_t t = batch->tokens(), qd = int64_t{c.n_heads} * c.head_dim;
  std::vector<float> hidden(t * c.hidden);
  EXPECT_TRUE(fwd->Embed(*batch, hidden.data()).ok());
  engine::BlockWorkspace ws;
  for (BlockWeights& b : model.blocks) {
    std::vector<float> attn(t * c.hidden), o(t * qd), mlp(t * c.hidden), down(t * c.intermediate);
    EXPECT_TRUE(fwd->BlockLinearInputs(b, *batch, hidden.data(),
                                       {attn.data(), o.data(), mlp.data(), down.data()}, &ws)
                    .ok());
    auto hessian = [&](const std::vector<float>& x, int64_t dim) {
      engine::HessianAccumulator acc(dim);
      EXPECT_TRUE(acc.Add(x.data(), t).ok());
      return *acc.Hessian();
    };
    const std::vector<float> h_attn = hessian(attn, c.hidden), h_o = hessian(o, qd),
                             h_mlp = hessian(mlp, c.hidden), h_down = hessian(down, c.intermediate);
    auto solve = [&](Tensor* w, const std::vector<float>& h) {
      std::vector<float> v(w->data, w->data + w->numel());
      EXPECT_TRUE(engine::Gptq(v.data(), w->rows(), w->cols(), h.data(), options, "ref").ok());
      *w = Tensor::Owned(w->shape, std::move(v));
    };
    solve(&b.q_proj, h_attn);
    solve(&b.k_proj, h_attn);
    solve(&b.v_proj, h_attn);
    solve(&b.o_proj, h_o);
    solve(&b.gate_proj, h_mlp);
    solve(&b.up_proj, h_mlp);
    solve(&b.down_proj, h_down);
    EXPECT_TRUE(fwd->RunBlock(b, *batch, hidden.data(), &ws).ok());
  }
  return model;
}

constexpr char kGptqRecipe[] = R"(
stages: [{gptq: {grid: {bits: 3, group_size: 32}}}]
calibration: {path: unused}
)";

TEST(CalibratedCompressTest, MatchesTheProcedureWrittenOut) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 7);
  const CalibrationSet calib = MakeCalibration(6, 24, dense.config.vocab);
  RunResult run = Compress(dense, MakeRecipe(kGptqRecipe), calib, nullptr);
  ASSERT_TRUE(run.status.ok()) << run.status;
  engine::GptqOptions options;
  options.grid = {3, 32, true};
  options.act_order = true;  // the recipe's defaults
  options.static_groups = true;
  options.report_error = false;
  ExpectSameWeights(run.model, ReferenceSequentialGptq(dense, calib, options));
  // Every targeted layer was quantized and reported.
  EXPECT_EQ(run.result.layers.size(), 14u);
  EXPECT_EQ(run.result.quantized.size(), 14u);
  for (const auto& entry : run.result.layers) {
    EXPECT_GT(entry["relative_error"].get<double>(), 0.0) << entry.dump();
    EXPECT_LT(entry["relative_error"].get<double>(), 0.5) << entry.dump();
    EXPECT_NEAR(entry["bits"].get<double>(), 3 + 16.0 / 32, 1e-12);
  }
}

TEST(CalibratedCompressTest, SequentialInputsDifferFromDenseInputs) {
  // Block 1 must see block 0's compressed output: compressing only block 1
  // gives different block-1 weights than compressing both.
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 8);
  const CalibrationSet calib = MakeCalibration(4, 24, dense.config.vocab);
  RunResult both = Compress(dense, MakeRecipe(kGptqRecipe), calib, nullptr);
  RunResult only1 = Compress(
      dense,
      MakeRecipe(std::string(kGptqRecipe) + "targets: {include: 'model\\.layers\\.1\\..*_proj'}\n"),
      calib, nullptr);
  ASSERT_TRUE(both.status.ok() && only1.status.ok());
  int differing = 0;
  for (int64_t j = 0; j < both.model.blocks[1].q_proj.numel(); ++j) {
    differing += both.model.blocks[1].q_proj.data[j] != only1.model.blocks[1].q_proj.data[j];
  }
  EXPECT_GT(differing, 0);
  EXPECT_EQ(only1.result.layers.size(), 7u);
  EXPECT_EQ(only1.model.blocks[0].q_proj.data, dense.blocks[0].q_proj.data);  // untouched
}

TEST(CalibratedCompressTest, SparseGptHitsTheSparsityAndTrueSequentialChangesLaterLayers) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 9);
  const CalibrationSet calib = MakeCalibration(4, 32, dense.config.vocab);
  const std::string base = "stages: [{sparsegpt: {sparsity: 0.5}}]\ncalibration: {path: x";
  RunResult plain = Compress(dense, MakeRecipe(base + "}"), calib, nullptr);
  RunResult seq = Compress(dense, MakeRecipe(base + ", true_sequential: true}"), calib, nullptr);
  ASSERT_TRUE(plain.status.ok()) << plain.status;
  ASSERT_TRUE(seq.status.ok()) << seq.status;
  for (const auto& entry : plain.result.layers) {
    EXPECT_NEAR(entry["sparsity"].get<double>(), 0.5, 1e-9) << entry.dump();
  }
  // q/k/v of block 0 see the same inputs either way; o_proj does not.
  const BlockWeights &p = plain.model.blocks[0], &s = seq.model.blocks[0];
  EXPECT_TRUE(std::equal(p.q_proj.data, p.q_proj.data + p.q_proj.numel(), s.q_proj.data));
  EXPECT_FALSE(std::equal(p.o_proj.data, p.o_proj.data + p.o_proj.numel(), s.o_proj.data));
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("calib_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(CalibratedCompressTest, ResumesFromCheckpointsBitIdentically) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 10);
  const CalibrationSet calib = MakeCalibration(4, 24, dense.config.vocab);
  const v1::Recipe recipe = MakeRecipe(R"(
stages:
  - sparsegpt: {sparsity: 0.5}
  - gptq: {grid: {bits: 4, group_size: 32, asymmetric: true}}
calibration: {path: x}
)");
  RunResult uninterrupted = Compress(dense, recipe, calib, nullptr);
  ASSERT_TRUE(uninterrupted.status.ok()) << uninterrupted.status;

  TempDir dir;
  DirCheckpointStore store(dir.path());
  CancelToken cancel;
  CancelAtBlock killer(&cancel, 1);
  RunResult killed = Compress(dense, recipe, calib, &store, &killer, &cancel);
  EXPECT_EQ(killed.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(store.Get("calib/block-0000").ok());
  EXPECT_TRUE(absl::IsNotFound(store.Get("calib/block-0001").status()));

  LayerRecorder resumed_events;
  RunResult resumed = Compress(dense, recipe, calib, &store, &resumed_events);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(resumed.result.resumed_blocks, 1);
  // The restored block's layers report their metrics again (the killed
  // attempt's events may never have reached the server): every layer has one.
  const std::set<std::string>& reported = resumed_events.layers;
  EXPECT_EQ(reported.size(), 14u);
  EXPECT_TRUE(reported.count("model.layers.0.self_attn.q_proj"));
  ExpectSameWeights(resumed.model, uninterrupted.model);
  ASSERT_EQ(resumed.result.layers.size(), 14u);
  for (size_t i = 0; i < 14; ++i) {
    EXPECT_EQ(resumed.result.layers[i]["relative_error"],
              uninterrupted.result.layers[i]["relative_error"]);
  }
  ASSERT_EQ(resumed.result.quantized.size(), uninterrupted.result.quantized.size());
  for (const auto& [name, q] : uninterrupted.result.quantized) {
    EXPECT_EQ(resumed.result.quantized.at(name).codes, q.codes) << name;
    EXPECT_EQ(resumed.result.quantized.at(name).scales, q.scales) << name;
  }

  // A different recipe ignores these checkpoints.
  const v1::Recipe other = MakeRecipe(R"(
stages: [{sparsegpt: {sparsity: 0.6}}]
calibration: {path: x}
)");
  RunResult fresh = Compress(dense, other, calib, &store);
  ASSERT_TRUE(fresh.status.ok());
  EXPECT_EQ(fresh.result.resumed_blocks, 0);
}

// AWQ rescales norms and up_proj rows as well as the quantized linears (and,
// with clip, clamps the latter): a resumed run restores those from the
// checkpoint too, and the summary's AWQ entries of the restored block.
TEST(CalibratedCompressTest, AwqResumesBitIdentically) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 12);
  const CalibrationSet calib = MakeCalibration(4, 24, dense.config.vocab);
  const v1::Recipe recipe = MakeRecipe(R"(
stages: [{rtn: {grid: {bits: 3, group_size: 32}, awq: {grid_points: 8, clip: true}}}]
calibration: {path: x}
)");
  RunResult uninterrupted = Compress(dense, recipe, calib, nullptr);
  ASSERT_TRUE(uninterrupted.status.ok()) << uninterrupted.status;
  // Three groups per block (GQA: no v_proj -> o_proj group).
  ASSERT_EQ(uninterrupted.result.awq.size(), 6u) << uninterrupted.result.awq.dump();
  int folded = 0, clipped = 0;
  for (const nlohmann::json& e : uninterrupted.result.awq) {
    folded += !e["alpha"].is_null();
    clipped += e.value("clipped", 0.0) > 0;  // the MLP input groups (the attention's is q/k/v)
  }
  EXPECT_GT(folded, 0) << uninterrupted.result.awq.dump();
  EXPECT_GT(clipped, 0) << uninterrupted.result.awq.dump();

  TempDir dir;
  DirCheckpointStore store(dir.path());
  CancelToken cancel;
  CancelAtBlock killer(&cancel, 1);
  RunResult killed = Compress(dense, recipe, calib, &store, &killer, &cancel);
  EXPECT_EQ(killed.status.code(), absl::StatusCode::kCancelled);
  RunResult resumed = Compress(dense, recipe, calib, &store);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(resumed.result.resumed_blocks, 1);
  ExpectSameWeights(resumed.model, uninterrupted.model);
  for (size_t b = 0; b < dense.blocks.size(); ++b) {
    for (auto norm : {&BlockWeights::attn_norm, &BlockWeights::mlp_norm}) {
      const Tensor& x = resumed.model.blocks[b].*norm;
      const Tensor& y = uninterrupted.model.blocks[b].*norm;
      ASSERT_EQ(x.numel(), y.numel());
      for (int64_t j = 0; j < x.numel(); ++j) ASSERT_EQ(x.data[j], y.data[j]) << b << " " << j;
    }
  }
  EXPECT_EQ(resumed.result.awq, uninterrupted.result.awq);
}

TEST(BlockCheckpointTest, RoundTripAndCorruption) {
  BlockCheckpoint c;
  c.fingerprint = "abc";
  c.block = 3;
  c.weights["w"] = Tensor::Owned({2, 3}, {1, 2, 3, 4, 5, 6});
  engine::QuantizedTensor q;
  q.rows = 2;
  q.cols = 3;
  q.groups = 1;
  q.grid = {4, -1, false};
  q.codes = {1, 2, 3, 4, 5, 6};
  q.scales = {0.5f, 0.25f};
  q.zeros = {3, 4};
  q.group_index = {0, 0, 0};
  c.quantized["w"] = q;
  engine::QuantizedTensor f = q;  // an fp8 grid must come back fp8 (its codes are E4M3 bytes)
  f.grid = {8, -1, true, 0, /*fp8=*/true};
  f.zeros = {0, 0};
  c.quantized["f"] = f;
  engine::QuantizedTensor sp = q;  // SpQR's parts must come back (a resumed spqr output)
  engine::SpqrParts& parts = sp.spqr.emplace();
  parts.perm = {2, 0, 1};
  parts.scale_codes = {1, 2};
  parts.zero_codes = {3, 4};
  parts.scale_stats = {0.5f, 1.0f};
  parts.zero_stats = {0.25f, 2.0f};
  parts.outlier_rows = {0, 1, 1};
  parts.outlier_cols = {2};
  parts.outlier_values = {7.5f};
  c.quantized["s"] = sp;
  c.layers.push_back({{"name", "w"}});
  const std::string bytes = EncodeBlockCheckpoint(c);
  absl::StatusOr<BlockCheckpoint> d = DecodeBlockCheckpoint(bytes, "cp");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->fingerprint, "abc");
  EXPECT_EQ(d->block, 3);
  EXPECT_EQ(std::vector<float>(d->weights["w"].data, d->weights["w"].data + 6),
            std::vector<float>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d->quantized["w"].codes, q.codes);
  EXPECT_EQ(d->quantized["w"].zeros, q.zeros);
  EXPECT_FALSE(d->quantized["w"].grid.symmetric);
  EXPECT_FALSE(d->quantized["w"].grid.fp8);
  EXPECT_TRUE(d->quantized["f"].grid.fp8);
  EXPECT_EQ(d->quantized["f"].codes, f.codes);
  EXPECT_FALSE(d->quantized["w"].spqr.has_value());
  ASSERT_TRUE(d->quantized["s"].spqr.has_value());
  const engine::SpqrParts& back = *d->quantized["s"].spqr;
  EXPECT_EQ(back.perm, parts.perm);
  EXPECT_EQ(back.zero_codes, parts.zero_codes);
  EXPECT_EQ(back.scale_stats, parts.scale_stats);
  EXPECT_EQ(back.outlier_rows, parts.outlier_rows);
  EXPECT_EQ(back.outlier_cols, parts.outlier_cols);
  EXPECT_EQ(back.outlier_values, parts.outlier_values);
  EXPECT_EQ(back.stat_bits, parts.stat_bits);
  EXPECT_EQ(d->layers, c.layers);
  for (size_t cut : {size_t{3}, size_t{20}, bytes.size() - 1}) {
    absl::StatusOr<BlockCheckpoint> bad = DecodeBlockCheckpoint(bytes.substr(0, cut), "cp");
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << cut;
  }
}

TEST(CalibrationDataTest, OffsetsAreSeededAndInRange) {
  const std::vector<int64_t> a = CalibrationOffsets(1000, 100, 64, 0);
  EXPECT_EQ(a, CalibrationOffsets(1000, 100, 64, 0));
  EXPECT_NE(a, CalibrationOffsets(1000, 100, 64, 1));
  std::set<int64_t> distinct(a.begin(), a.end());
  EXPECT_GT(distinct.size(), 50u);
  for (int64_t o : a) {
    EXPECT_GE(o, 0);
    EXPECT_LE(o, 900);
  }
  EXPECT_EQ(CalibrationOffsets(10, 10, 3, 5), std::vector<int64_t>({0, 0, 0}));
}

TEST(CalibratedCompressTest, RejectsNonBlockTargets) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 11);
  const CalibrationSet calib = MakeCalibration(2, 8, dense.config.vocab);
  RunResult run = Compress(dense, MakeRecipe(R"(
stages: [{wanda: {sparsity: 0.5}}]
calibration: {path: x}
targets: {include: '.*'}
)"),
                           calib, nullptr);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.status.message()), ::testing::HasSubstr("model.embed_tokens"));
}

// An override that names no targeted module would silently change nothing:
// refused, naming it (with the parts to name for a fused Phi-3 module).
TEST(CalibratedCompressTest, OverridesMustMatchATarget) {
  LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 12);
  const char* base = R"(
stages: [{sparsegpt: {sparsity: 0.5}}]
calibration: {path: x}
)";
  absl::StatusOr<RecipeSpec> ok = CompileRecipe(MakeRecipe(absl::StrCat(
      base, "overrides: [{modules: 'model\\.layers\\.0\\..*', stage: 0, skip: true}]\n")));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(SelectModelTargets(dense, *ok).ok());
  absl::StatusOr<RecipeSpec> fused = CompileRecipe(MakeRecipe(absl::StrCat(
      base, "overrides: [{modules: '.*\\.qkv_proj', stage: 0, skip: true}]\n")));
  ASSERT_TRUE(fused.ok()) << fused.status();
  absl::Status s = SelectModelTargets(dense, *fused).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              ::testing::AllOf(::testing::HasSubstr("overrides[0].modules"),
                               ::testing::HasSubstr("matches none of the"),
                               ::testing::HasSubstr("compressed as its parts")));
}

// A checkpoint of a bf16 job is not one of the same job in fp32 (its blocks
// saw other activations); fp32 written out or left to the default is one.
TEST(CalibratedCompressTest, FingerprintTellsBf16FromFp32) {
  const LlamaModel dense = engine::testing::RandomModel(engine::testing::SmallConfig(), 10);
  const CalibrationSet calib = MakeCalibration(2, 16, dense.config.vocab);
  const std::string base = "stages: [{gptq: {grid: {bits: 4, group_size: 32}}}]\n"
                           "calibration: {path: x}\n";
  auto fp = [&](const std::string& extra) {
    return CalibrationFingerprint(dense, MakeRecipe(base + extra), calib, 2);
  };
  EXPECT_EQ(fp(""), fp("compute: fp32\n"));
  EXPECT_NE(fp(""), fp("compute: bf16\n"));
}

}  // namespace
}  // namespace compressd::engine
