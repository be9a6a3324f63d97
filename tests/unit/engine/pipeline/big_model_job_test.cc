// The model path for models larger than memory: the block-at-a-time path
// against the whole-model path, spilled calibration activations, the memory
// estimate and budget (model_job_fixture.h's tiny model).
#include "tests/unit/engine/pipeline/model_job_fixture.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/nn/bf16_gemm.h"

namespace compressd::engine {
namespace {

using namespace model_job_testing;  // NOLINT: the fixture
namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;


// Every file under `dir` by relative path, with its bytes.
std::map<std::string, std::string> DirFiles(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// The summary without what differs between any two runs.
json Comparable(json summary) {
  summary.erase("timing_seconds");
  summary.erase("peak_rss_bytes");
  for (json& layer : summary["layers"]) layer.erase("seconds");
  return summary;
}

// The block-at-a-time path (job_plan.h: HF in and out, calibrated) against
// the whole-model path on the same input and recipe: the same bytes out and
// the same summary (perplexities, KL and top-1 included: the evaluation
// windows advance block by block), for F32 and sharded BF16 inputs; and a
// block-stream run resumes from the whole-model run's checkpoints.
// long: one scenario (whole, stream, resumed) over three dtype/evaluation variants.
TEST_F(ModelJobTest, BlockStreamMatchesTheWholeModelPathByteForByte) {
  // (input dtype, output dtype): F32 -> F32, sharded BF16 -> F32, BF16 -> BF16,
  // F32 -> GPTQ-packed.
  for (const auto& [dtype, out_dtype] : std::vector<std::pair<DType, std::string>>{
           {DType::kF32, ""}, {DType::kBF16, ""}, {DType::kBF16, "bf16"}, {DType::kF32, "gptq"}}) {
    SCOPED_TRACE(absl::StrCat(DTypeName(dtype), " -> ", out_dtype));
    fs::remove_all(in_);
    compressd::testing::TinyLlamaOptions options;
    options.weight_std = 0.15;
    options.dtype = dtype;
    options.sharded = dtype == DType::kBF16;
    ASSERT_TRUE(compressd::testing::WriteTinyLlama(in_, options).ok());
    std::ofstream(fs::path(in_) / "tokenizer.json") << compressd::testing::ByteLevelTokenizerJson();
    v1::Recipe recipe;
    recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
    v1::QuantGridSpec* grid = recipe.add_stages()->mutable_gptq()->mutable_grid();
    grid->set_bits(4);
    grid->set_group_size(32);
    recipe.mutable_calibration()->set_path(text_);
    recipe.mutable_calibration()->set_samples(4);
    recipe.mutable_calibration()->set_seq_len(16);
    recipe.mutable_calibration()->set_threads(1);
    recipe.mutable_calibration()->set_true_sequential(true);
    const bool gptq = out_dtype == "gptq";
    gptq ? recipe.mutable_output()->set_format("gptq") : recipe.mutable_output()->set_dtype(out_dtype);
    // Evaluation: none; dense + compressed + KL; compressed only.
    if (dtype == DType::kBF16) {
      *recipe.mutable_evaluation() = EvalRecipe(/*kl=*/out_dtype.empty()).evaluation();
      recipe.mutable_evaluation()->set_skip_dense(!out_dtype.empty());
    }

    const fs::path whole_dir = root_ / "whole", stream_dir = root_ / "stream",
                   resumed_dir = root_ / "resumed", checkpoint_dir = root_ / "checkpoints";
    fs::remove_all(whole_dir);
    fs::remove_all(stream_dir);
    fs::remove_all(resumed_dir);
    fs::remove_all(checkpoint_dir);
    DirCheckpointStore checkpoints(checkpoint_dir.string());
    RunOptions whole;
    whole.whole_model = true;
    whole.checkpoints = &checkpoints;
    out_ = whole_dir.string();
    absl::StatusOr<json> a = Run(recipe, whole);
    ASSERT_TRUE(a.ok()) << a.status();
    out_ = stream_dir.string();
    absl::StatusOr<json> b = Run(recipe);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(sink_.HasLog("block by block"));

    const std::map<std::string, std::string> fa = DirFiles(whole_dir), fb = DirFiles(stream_dir);
    ASSERT_GE(fa.size(), 3u);  // weights, config.json, tokenizer.json
    ASSERT_EQ(fa.size(), fb.size());
    for (const auto& [path, bytes] : fa) {
      ASSERT_TRUE(fb.count(path)) << path;
      EXPECT_TRUE(fb.at(path) == bytes) << path << " differs";
    }
    EXPECT_EQ(Comparable(*a), Comparable(*b));
    EXPECT_EQ((*b)["calibration"]["resumed_blocks"], 0);
    if (recipe.has_evaluation()) {
      const json& set = (*b)["evaluation"]["datasets"][0];
      EXPECT_GT(set["perplexity"]["compressed"].get<double>(), 1.0);
      EXPECT_EQ(set["perplexity"].contains("dense"), out_dtype.empty());
      EXPECT_EQ((*b)["evaluation"].contains("kl"), out_dtype.empty());
    }
    auto out_model = HfModel::Open(stream_dir.string());
    ASSERT_TRUE(out_model.ok()) << out_model.status();
    for (const auto& [name, ref] : (*out_model)->tensors()) {
      if (gptq) continue;
      EXPECT_EQ(ref.info->dtype, out_dtype.empty() ? DType::kF32 : DType::kBF16) << name;
    }
    if (gptq) {
      EXPECT_EQ((*b)["export"]["quantized_tensors"], 14);  // 2 blocks x 7 projections
      EXPECT_TRUE(fb.count("config.json") && fb.at("config.json").find("\"quant_method\": \"gptq\"") !=
                                                   std::string::npos);
    }

    // Resumed on the stream path from the whole-model run's checkpoints.
    RunOptions resume;
    resume.checkpoints = &checkpoints;
    out_ = resumed_dir.string();
    absl::StatusOr<json> c = Run(recipe, resume);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)["calibration"]["resumed_blocks"], 2);
    const std::map<std::string, std::string> fc = DirFiles(resumed_dir);
    for (const auto& [path, bytes] : fa) EXPECT_TRUE(fc.at(path) == bytes) << path << " differs";
    json ca = Comparable(*a), cc = Comparable(*c);
    ca["calibration"].erase("resumed_blocks");
    cc["calibration"].erase("resumed_blocks");
    EXPECT_EQ(ca, cc);
  }
}

// An evaluate-only job on an HF model advances its windows block by block
// too: the same summary as with the whole model loaded.
TEST_F(ModelJobTest, EvaluateOnlyStreamsBlockByBlockWithTheSameSummary) {
  RunOptions whole;
  whole.whole_model = true;
  out_ = (root_ / "whole").string();
  absl::StatusOr<json> a = Run(EvalRecipe(/*kl=*/false), whole);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(sink_.HasLog("block by block"));
  out_ = (root_ / "stream").string();
  absl::StatusOr<json> b = Run(EvalRecipe(/*kl=*/false));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(sink_.HasLog("block by block"));
  EXPECT_EQ(Comparable(*a), Comparable(*b));
  EXPECT_GT((*b)["evaluation"]["datasets"][0]["perplexity"]["dense"].get<double>(), 1.0);
  EXPECT_TRUE(fs::exists(root_ / "stream" / "summary.json"));
}

// Uncalibrated stages (magnitude, RTN) on the decoder blocks stream block by
// block too, with the whole-model path's bytes and summary (evaluation and KL
// included); one that targets the (tied) embedding takes the whole-model path.
TEST_F(ModelJobTest, UncalibratedStagesStreamUnlessTheyTargetTheLmHead) {
  v1::Recipe recipe = EvalRecipe(/*kl=*/true);
  recipe.add_stages()->mutable_magnitude()->set_sparsity(0.25);
  v1::QuantGridSpec* grid = recipe.add_stages()->mutable_rtn()->mutable_grid();
  grid->set_bits(4);
  grid->set_group_size(32);
  v1::Recipe head = recipe;
  head.mutable_targets()->set_include(".*(_proj|embed_tokens)$");  // tied: the LM head
  out_ = (root_ / "head").string();
  absl::StatusOr<json> h = Run(head);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_FALSE(sink_.HasLog("block by block"));
  EXPECT_EQ((*h)["layers"].size(), 15u);  // 2 blocks x 7 projections + the embedding

  RunOptions whole;
  whole.whole_model = true;
  out_ = (root_ / "whole").string();
  absl::StatusOr<json> a = Run(recipe, whole);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(sink_.HasLog("block by block"));
  out_ = (root_ / "stream").string();
  absl::StatusOr<json> b = Run(recipe);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(sink_.HasLog("block by block"));
  const std::map<std::string, std::string> fa = DirFiles(root_ / "whole"),
                                           fb = DirFiles(root_ / "stream");
  ASSERT_GE(fa.size(), 3u);
  ASSERT_EQ(fa.size(), fb.size());
  for (const auto& [path, bytes] : fa) EXPECT_TRUE(fb.count(path) && fb.at(path) == bytes) << path;
  EXPECT_EQ(Comparable(*a), Comparable(*b));
  EXPECT_EQ((*b)["layers"].size(), 14u);
  EXPECT_TRUE((*b)["evaluation"].contains("kl"));
}

// Calibration activations that do not fit the budget go to scratch files
// beside the output: the job runs under a budget the in-memory estimate is
// over, with the same bytes and summary, and leaves no scratch file.
TEST_F(ModelJobTest, ActivationsOverTheBudgetGoToScratchFilesWithIdenticalOutputs) {
  const std::string calib = (root_ / "calib.txt").string();
  std::string text(20000, 'a');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + (i * 7919 % 26));
  std::ofstream(calib, std::ios::binary) << text;
  v1::Recipe recipe;
  recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
  recipe.mutable_calibration()->set_path(calib);
  recipe.mutable_calibration()->set_samples(12);
  recipe.mutable_calibration()->set_seq_len(512);  // 6144 tokens: more than one micro-batch
  const fs::path dir_a = root_ / "in_memory", dir_b = root_ / "spilled";
  out_ = dir_a.string();
  absl::StatusOr<json> a = Run(recipe);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(sink_.HasLog("scratch files"));
  const std::vector<double> estimates = sink_.Metric("memory_estimate_bytes", "", "");
  ASSERT_FALSE(estimates.empty());
  // Spilling saves (T - micro-batch) tokens of activations.
  const LlamaConfig c = engine::LoadModel(in_)->config;
  const double per_token = (3.0 * c.hidden + c.n_heads * c.head_dim + c.intermediate) * 4;
  RunOptions options;
  options.memory_budget_bytes = static_cast<uint64_t>(estimates.back() - per_token * 1000);
  out_ = dir_b.string();
  absl::StatusOr<json> b = Run(recipe, options);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(sink_.HasLog("calibration activations in scratch files under " + out_));
  const std::map<std::string, std::string> fa = DirFiles(dir_a), fb = DirFiles(dir_b);
  ASSERT_EQ(fa.size(), fb.size());
  for (const auto& [path, bytes] : fa) EXPECT_TRUE(fb.at(path) == bytes) << path << " differs";
  EXPECT_EQ(Comparable(*a), Comparable(*b));
}


// A job over the worker's memory budget is refused before any weight is
// read, saying what it needs and why; within the budget it runs, and the
// estimate is an event either way.
TEST_F(ModelJobTest, AJobOverTheMemoryBudgetIsRefusedUpFront) {
  v1::Recipe recipe;
  recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
  recipe.mutable_calibration()->set_path(text_);
  recipe.mutable_calibration()->set_samples(4);
  recipe.mutable_calibration()->set_seq_len(16);
  RunOptions options;
  options.memory_budget_bytes = 32ull << 20;  // under the process alone
  absl::StatusOr<json> refused = Run(recipe, options);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("--memory-budget"));
  EXPECT_THAT(refused.status().message(), HasSubstr("solve"));
  EXPECT_GT(MemoryNeeded(refused.status()), options.memory_budget_bytes);
  EXPECT_FALSE(fs::exists(fs::path(out_) / "model.safetensors"));
  EXPECT_TRUE(sink_.HasLog("memory estimate: peak"));

  options.memory_budget_bytes = 4ull << 30;
  ASSERT_TRUE(Run(recipe, options).ok());
  EXPECT_FALSE(sink_.HasLog("bf16 packed weights"));
}

// compute: bf16 counts the backend's packed copies of the weights.
TEST_F(ModelJobTest, ABf16JobCountsItsPackedWeights) {
  if (!Bf16GemmAvailable().ok()) GTEST_SKIP() << Bf16GemmAvailable().message();
  v1::Recipe recipe;
  recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
  recipe.mutable_calibration()->set_path(text_);
  recipe.mutable_calibration()->set_samples(4);
  recipe.mutable_calibration()->set_seq_len(16);
  recipe.set_compute("bf16");
  ASSERT_TRUE(Run(recipe, RunOptions{}).ok());
  EXPECT_TRUE(sink_.HasLog("bf16 packed weights"));
}

// A solver on a device (here a stand-in: the CPU's solves, a device of
// `free_bytes`) whose memory cannot hold the largest layer's solve is refused
// up front, naming the device; with enough it runs, on that solver.
class SmallDeviceSolver final : public SolverBackend {
 public:
  explicit SmallDeviceSolver(uint64_t free_bytes) : free_(free_bytes) {}
  std::string name() const override { return "cuda:7"; }
  std::unique_ptr<HessianSum> NewHessian(int64_t dim, int threads) override {
    ++hessians_;
    return cpu_.NewHessian(dim, threads);
  }
  absl::Status FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                              absl::string_view tensor, const SweepOptions& o,
                              SweepState* s) override {
    ++solves_;
    return cpu_.FactorAndSweep(h, perm, percdamp, tensor, o, s);
  }
  absl::StatusOr<double> RelativeError(const float* w, const float* w_new, const float* h,
                                       int64_t rows, int64_t cols, int threads) override {
    return cpu_.RelativeError(w, w_new, h, rows, cols, threads);
  }
  uint64_t DeviceBytes(int64_t rows, int64_t cols, int64_t) const override {
    return 16 * static_cast<uint64_t>(cols * cols) + 6 * static_cast<uint64_t>(rows * cols);
  }
  uint64_t DeviceMemoryBytes() const override { return free_; }
  int hessians_ = 0, solves_ = 0;

 private:
  CpuSolver cpu_;
  uint64_t free_;
};

TEST_F(ModelJobTest, AJobOverTheDeviceMemoryIsRefusedUpFront) {
  v1::Recipe recipe;
  recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
  recipe.mutable_calibration()->set_path(text_);
  recipe.mutable_calibration()->set_samples(4);
  recipe.mutable_calibration()->set_seq_len(16);
  SmallDeviceSolver small(1024);
  RunOptions options;
  options.solver = &small;
  absl::StatusOr<json> refused = Run(recipe, options);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("of device memory"));
  EXPECT_THAT(refused.status().message(), HasSubstr("cuda:7"));
  EXPECT_EQ(small.solves_, 0);
  EXPECT_FALSE(fs::exists(fs::path(out_) / "model.safetensors"));

  SmallDeviceSolver big(1ull << 40);
  options.solver = &big;
  ASSERT_TRUE(Run(recipe, options).ok());
  EXPECT_TRUE(sink_.HasLog("device memory estimate"));
  EXPECT_GT(big.hessians_, 0);  // every group's H and every solve went through it
  EXPECT_GT(big.solves_, big.hessians_);
}

// A GGUF output of an HF input takes its tokenizer from tokenizer.json,
// converted (export/gguf_tokenizer_source.h). One that llama.cpp has no
// pre-tokenizer name for, or none at all, is refused before anything is
// read, not after the compression; a GPT-2 one gives a GGUF with it.
TEST_F(ModelJobTest, AGgufOutputOfAnHfInputConvertsItsTokenizerOrIsRefusedUpFront) {
  v1::Recipe recipe;
  recipe.add_stages()->mutable_sparsegpt()->set_sparsity(0.5);
  recipe.mutable_calibration()->set_path(text_);
  recipe.mutable_calibration()->set_samples(4);
  recipe.mutable_calibration()->set_seq_len(16);
  recipe.mutable_output()->set_format("gguf");
  // The fixture's tokenizer: ByteLevel without its regex, which llama.cpp does not name.
  absl::StatusOr<json> refused = Run(recipe);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kUnimplemented) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("tokenizer.json"));
  EXPECT_THAT(refused.status().message(), HasSubstr("tokenizer.ggml.pre"));
  EXPECT_FALSE(sink_.HasLog("memory estimate"));
  EXPECT_FALSE(fs::exists(fs::path(out_) / "model.gguf"));

  fs::remove(fs::path(in_) / "tokenizer.json");
  refused = Run(recipe);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kNotFound) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("no tokenizer.json"));

  // GPT-2's pre-tokenizer (ByteLevel with its regex): "gpt-2".
  json tokenizer = json::parse(compressd::testing::ByteLevelTokenizerJson());
  tokenizer["pre_tokenizer"]["use_regex"] = true;
  std::ofstream(fs::path(in_) / "tokenizer.json") << tokenizer.dump();
  absl::StatusOr<json> summary = Run(recipe);
  ASSERT_TRUE(summary.ok()) << summary.status();
  absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open((fs::path(out_) / "model.gguf").string());
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  EXPECT_EQ(*(*gguf)->GetString("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(*(*gguf)->GetString("general.architecture"), "llama");
  absl::StatusOr<std::vector<std::string>> tokens = (*gguf)->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  // One token per embedding row: past the tokenizer's 256, unused "[PAD<id>]" ones.
  ASSERT_EQ(tokens->size(), *(*gguf)->GetU32("llama.vocab_size"));
  if (tokens->size() > 256u) {
    EXPECT_EQ(tokens->back(), absl::StrCat("[PAD", tokens->size() - 1, "]"));
  }
  EXPECT_TRUE(summary->contains("export")) << summary->dump();
  EXPECT_TRUE((*summary)["export"]["reload_check"]["passed"].get<bool>());
}

}  // namespace
}  // namespace compressd::engine
