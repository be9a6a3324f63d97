// The model path of RunJob (workers/engine/pipeline/model_job.h) on tiny
// models: an HF directory with a byte-level tokenizer.json (so any text is one
// token per byte) and a llama.cpp-style GGUF. The evaluation text is written
// greedily by the dense model itself, so the dense model is the one that
// predicts it best and pruning must make its perplexity worse.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/tiny_llama.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/job.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr int kWindow = 32;
constexpr int kWindows = 4;

class RecordingSink : public EventSink {
 public:
  void Emit(const v1::JobEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
  }
  // Values of metric `name` whose labels include `key`=`value` (any labels
  // for an empty key).
  std::vector<double> Metric(const std::string& name, const std::string& key,
                             const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<double> out;
    for (const v1::JobEvent& e : events_) {
      if (!e.has_metric() || e.metric().name() != name) continue;
      auto it = e.metric().labels().find(key);
      if (key.empty() || (it != e.metric().labels().end() && it->second == value)) {
        out.push_back(e.metric().value());
      }
    }
    return out;
  }
  bool HasLog(const std::string& part) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::JobEvent& e : events_) {
      if (e.has_log() && absl::StrContains(e.log().message(), part)) return true;
    }
    return false;
  }
  int ProgressCount(const std::string& stage) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const v1::JobEvent& e : events_) n += e.has_progress() && e.progress().stage() == stage;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<v1::JobEvent> events_;
};

// Greedy continuation of `first` to kWindow tokens, one window per start byte.
std::vector<int32_t> GreedyText(const engine::LlamaModel& model) {
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  auto forward = engine::LlamaForward::Create(&model, &backend);
  EXPECT_TRUE(forward.ok()) << forward.status();
  std::vector<int32_t> text;
  for (int w = 0; w < kWindows; ++w) {
    std::vector<int32_t> seq = {'a' + w};
    while (static_cast<int>(seq.size()) < kWindow) {
      auto batch = engine::SequenceBatch::Pack({seq});
      auto logits = forward->Logits(*batch);
      EXPECT_TRUE(logits.ok()) << logits.status();
      const int vocab = model.config.vocab;
      const float* last = logits->data() + (seq.size() - 1) * vocab;
      seq.push_back(static_cast<int32_t>(std::max_element(last, last + vocab) - last));
    }
    text.insert(text.end(), seq.begin(), seq.end());
  }
  return text;
}

class ModelJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("mj_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    in_ = (root_ / "in").string();
    out_ = (root_ / "out").string();
    compressd::testing::TinyLlamaOptions options;
    options.weight_std = 0.15;  // large enough for the blocks to shape the predictions
    ASSERT_TRUE(compressd::testing::WriteTinyLlama(in_, options).ok());
    std::ofstream(fs::path(in_) / "tokenizer.json") << compressd::testing::ByteLevelTokenizerJson();
    auto model = engine::LoadModel(in_);
    ASSERT_TRUE(model.ok()) << model.status();
    tokens_ = GreedyText(*model);
    text_ = (root_ / "text.txt").string();
    std::ofstream(text_, std::ios::binary) << std::string(tokens_.begin(), tokens_.end());
  }
  void TearDown() override { fs::remove_all(root_); }

  v1::Recipe EvalRecipe(bool kl) const {
    v1::Recipe r;
    v1::EvalDataset* set = r.mutable_evaluation()->add_perplexity();
    set->set_name("greedy");
    set->set_path(text_);
    set->set_window(kWindow);
    set->set_windows(kWindows);
    r.mutable_evaluation()->set_kl(kl);
    r.mutable_evaluation()->set_threads(1);
    return r;
  }

  absl::StatusOr<json> Run(const v1::Recipe& recipe, const RunOptions& options = {}) {
    absl::StatusOr<RecipeSpec> spec = PrepareRecipe(recipe);
    if (!spec.ok()) return spec.status();
    absl::StatusOr<std::string> summary = RunJob(in_, *spec, out_, sink_, cancel_, options);
    if (!summary.ok()) return summary.status();
    return json::parse(*summary);
  }

  // Perplexity of the model at `path` on the text, computed here directly.
  double DirectPerplexity(const std::string& path) {
    auto model = engine::LoadModel(path);
    EXPECT_TRUE(model.ok()) << model.status();
    engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
    auto forward = engine::LlamaForward::Create(&*model, &backend);
    auto r = engine::Perplexity(*forward, tokens_, {kWindow, kWindows, kWindows});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->perplexity : 0;
  }

  fs::path root_;
  std::string in_, out_, text_;
  std::vector<int32_t> tokens_;
  RecordingSink sink_;
  CancelToken cancel_;
};

TEST_F(ModelJobTest, TokenizerMapsEachByteToItsId) {
  // The premise of the other tests: the text file tokenizes back to tokens_.
  auto tokenizer = engine::Tokenizer::FromHfJson(compressd::testing::ByteLevelTokenizerJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  const std::vector<int32_t> ids = tokenizer->Encode(all_bytes, false, false);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(tokenizer->Encode(std::string(tokens_.begin(), tokens_.end()), false, false), tokens_);
}

TEST_F(ModelJobTest, EvaluateOnlyMatchesDirectPerplexityAndWritesOnlyASummary) {
  absl::StatusOr<json> s = Run(EvalRecipe(false));
  ASSERT_TRUE(s.ok()) << s.status();
  const json& set = (*s)["evaluation"]["datasets"][0];
  EXPECT_EQ(set["name"], "greedy");
  EXPECT_EQ(set["predicted_tokens"], kWindows * (kWindow - 1));
  const double dense = set["perplexity"]["dense"];
  EXPECT_DOUBLE_EQ(dense, DirectPerplexity(in_));
  EXPECT_GT(dense, 1.0);
  EXPECT_LT(dense, 256.0);  // the model predicts its own greedy text better than uniform
  EXPECT_FALSE(set["perplexity"].contains("compressed"));
  EXPECT_EQ((*s)["format"], "none");
  EXPECT_GT((*s)["peak_rss_bytes"].get<uint64_t>(), 0u);
  for (const char* key : {"load", "evaluate", "forward", "hessian", "solve", "export", "total"}) {
    EXPECT_TRUE((*s)["timing_seconds"].contains(key)) << key;
  }
  EXPECT_THAT(sink_.Metric("perplexity", "dataset", "greedy"), ::testing::ElementsAre(dense));
  EXPECT_GT(sink_.ProgressCount("evaluate dense"), 0);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out_)) files.push_back(e.path().filename().string());
  EXPECT_THAT(files, ::testing::ElementsAre("summary.json"));
}

TEST_F(ModelJobTest, NoWeightPrunedKeepsPerplexityAndKlZero) {
  v1::Recipe r = EvalRecipe(true);
  r.add_stages()->mutable_magnitude()->set_sparsity(1e-9);  // rounds to 0 zeros per tensor
  absl::StatusOr<json> s = Run(r);
  ASSERT_TRUE(s.ok()) << s.status();
  const json& set = (*s)["evaluation"]["datasets"][0];
  EXPECT_EQ(set["perplexity"]["compressed"].get<double>(),
            set["perplexity"]["dense"].get<double>());
  EXPECT_EQ((*s)["totals"]["zeros"], 0);
  EXPECT_NEAR((*s)["evaluation"]["kl"]["mean_kl"].get<double>(), 0.0, 1e-9);
  EXPECT_EQ((*s)["evaluation"]["kl"]["top1_agreement"].get<double>(), 1.0);
}

TEST_F(ModelJobTest, PruningRaisesPerplexityAndTheExportReloadsAsPruned) {
  v1::Recipe r = EvalRecipe(true);
  r.add_stages()->mutable_magnitude()->set_sparsity(0.5);
  absl::StatusOr<json> s = Run(r);
  ASSERT_TRUE(s.ok()) << s.status();
  const json& set = (*s)["evaluation"]["datasets"][0];
  const double dense = set["perplexity"]["dense"], pruned = set["perplexity"]["compressed"];
  EXPECT_GT(pruned, dense * 1.1);
  EXPECT_GT((*s)["evaluation"]["kl"]["mean_kl"].get<double>(), 1e-4);
  EXPECT_EQ((*s)["format"], "hf_safetensors");
  EXPECT_EQ((*s)["totals"]["targeted_tensors"], 14);
  EXPECT_THAT(sink_.Metric("perplexity", "model", "compressed"), ::testing::ElementsAre(pruned));
  EXPECT_EQ(sink_.Metric("kl", "dataset", "greedy").size(), 1u);
  EXPECT_EQ(sink_.ProgressCount("prune"), 14);

  // The exported model is exactly the evaluated one: same perplexity, and
  // every tensor equals the input's, pruned here with the same kernel.
  EXPECT_DOUBLE_EQ(DirectPerplexity(out_), pruned);
  auto original = engine::LoadModel(in_);
  auto exported = engine::LoadModel(out_);
  ASSERT_TRUE(original.ok() && exported.ok()) << exported.status();
  auto a = engine::NamedTensors(&*original), b = engine::NamedTensors(&*exported);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name, b[i].name);
    ASSERT_EQ(a[i].tensor->shape, b[i].tensor->shape) << a[i].name;
    std::vector<float> want(a[i].tensor->data, a[i].tensor->data + a[i].tensor->numel());
    if (absl::EndsWith(a[i].name, "_proj.weight")) {
      ASSERT_TRUE(PruneUnstructured(want.data(), want.size(), 0.5, a[i].name).ok());
    }
    EXPECT_TRUE(std::equal(want.begin(), want.end(), b[i].tensor->data)) << a[i].name;
  }
  EXPECT_TRUE(fs::exists(fs::path(out_) / "tokenizer.json"));
  std::ifstream config(fs::path(out_) / "config.json");
  const json c = json::parse(config);
  EXPECT_EQ(c["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(c["torch_dtype"], "float32");
  EXPECT_EQ(c["tie_word_embeddings"], false);
}

TEST_F(ModelJobTest, EvaluationNeedsTokenizerJsonAndEnoughText) {
  fs::remove(fs::path(in_) / "tokenizer.json");
  absl::Status st = Run(EvalRecipe(false)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tokenizer.json"));

  std::ofstream(fs::path(in_) / "tokenizer.json") << compressd::testing::ByteLevelTokenizerJson();
  v1::Recipe r = EvalRecipe(false);
  r.mutable_evaluation()->mutable_perplexity(0)->set_windows(kWindows + 1);
  st = Run(r).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("evaluation.perplexity[0] (greedy)"));
  EXPECT_THAT(st.message(), HasSubstr("has 128 tokens, fewer than 5 windows of 32"));
}

TEST_F(ModelJobTest, DatasetSourcesResolveAndLocalPathsCanBeRefused) {
  RunOptions worker;
  worker.allow_local_paths = false;
  absl::Status st = Run(EvalRecipe(false), worker).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("evaluation.perplexity[0].path"));

  v1::Recipe r = EvalRecipe(false);
  v1::EvalDataset* set = r.mutable_evaluation()->mutable_perplexity(0);
  set->clear_path();
  set->set_dataset_id("ds-1");
  set->set_file("text.txt");
  worker.dataset_file = [&](const std::string& id, const std::string& file) {
    EXPECT_EQ(id, "ds-1");
    EXPECT_EQ(file, "text.txt");
    return absl::StatusOr<std::string>(text_);
  };
  absl::StatusOr<json> s = Run(r, worker);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)["evaluation"]["datasets"][0]["source"], "ds-1/text.txt");
  EXPECT_DOUBLE_EQ((*s)["evaluation"]["datasets"][0]["perplexity"]["dense"].get<double>(),
                   DirectPerplexity(in_));
}

TEST_F(ModelJobTest, GgufInputIsPrunedAndExportedAsHf) {
  engine::testing::TinyLlamaSpec spec;
  spec.quantize = true;  // Q8_0 matrices, dequantized on load
  const std::string gguf_dir = (root_ / "gguf").string();
  fs::create_directories(gguf_dir);
  const std::string gguf = gguf_dir + "/tiny.gguf";
  std::ofstream(gguf, std::ios::binary) << engine::testing::BuildTinyLlama(spec).bytes;
  in_ = gguf_dir;  // a directory holding one .gguf, as the worker lays out an upload
  v1::Recipe r;
  r.add_stages()->mutable_magnitude()->set_pattern("2:4");
  absl::StatusOr<json> s = Run(r);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)["model"]["input_format"], "gguf");
  EXPECT_EQ((*s)["model"]["tied_embeddings"], true);
  EXPECT_DOUBLE_EQ((*s)["totals"]["sparsity"].get<double>(), 0.5);
  // The tiny GGUF has no tokenizer: the weights are exported without one.
  EXPECT_FALSE(fs::exists(fs::path(out_) / "tokenizer.json"));

  auto original = engine::LoadModel(gguf);
  auto exported = engine::LoadModel(out_);
  ASSERT_TRUE(original.ok() && exported.ok()) << exported.status();
  EXPECT_EQ(exported->lm_head.data, exported->embed_tokens.data);  // tied, lm_head not stored
  auto a = engine::NamedTensors(&*original), b = engine::NamedTensors(&*exported);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].name, b[i].name);
    std::vector<float> want(a[i].tensor->data, a[i].tensor->data + a[i].tensor->numel());
    if (absl::EndsWith(a[i].name, "_proj.weight")) {
      ASSERT_TRUE(
          PruneNM(want.data(), a[i].tensor->rows(), a[i].tensor->cols(), 2, 4, a[i].name).ok());
    }
    EXPECT_TRUE(std::equal(want.begin(), want.end(), b[i].tensor->data)) << a[i].name;
  }

  // The tiny GGUF has no tokenizer: evaluation says which key is missing.
  absl::Status st = Run(EvalRecipe(false)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tokenizer"));
}

}  // namespace
}  // namespace compressd::engine

namespace compressd::engine {
namespace {

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

// The block-at-a-time path (job_plan.h: HF in and out, calibrated, no
// evaluation) against the whole-model path on the same input and recipe:
// the same bytes out and the same summary, for F32 and sharded BF16 inputs;
// and a block-stream run resumes from the whole-model run's checkpoints.
TEST_F(ModelJobTest, BlockStreamMatchesTheWholeModelPathByteForByte) {
  // (input dtype, output dtype): F32 -> F32, sharded BF16 -> F32, BF16 -> BF16.
  for (const auto& [dtype, out_dtype] : std::vector<std::pair<DType, std::string>>{
           {DType::kF32, ""}, {DType::kBF16, ""}, {DType::kBF16, "bf16"}}) {
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
    recipe.mutable_output()->set_dtype(out_dtype);

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
    auto out_model = HfModel::Open(stream_dir.string());
    ASSERT_TRUE(out_model.ok()) << out_model.status();
    for (const auto& [name, ref] : (*out_model)->tensors()) {
      EXPECT_EQ(ref.info->dtype, out_dtype.empty() ? DType::kF32 : DType::kBF16) << name;
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

}  // namespace
}  // namespace compressd::engine

namespace compressd::engine {
namespace {

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
  options.memory_budget_bytes = 64ull << 20;  // under the process alone
  absl::StatusOr<json> refused = Run(recipe, options);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("--memory-budget"));
  EXPECT_THAT(refused.status().message(), HasSubstr("solve"));
  EXPECT_GT(MemoryNeeded(refused.status()), options.memory_budget_bytes);
  EXPECT_FALSE(fs::exists(fs::path(out_) / "model.safetensors"));
  EXPECT_TRUE(sink_.HasLog("memory estimate: peak"));

  options.memory_budget_bytes = 4ull << 30;
  ASSERT_TRUE(Run(recipe, options).ok());
}

}  // namespace
}  // namespace compressd::engine
