// The model path of RunJob (workers/engine/pipeline/model_job.h) on tiny
// models (model_job_fixture.h): an HF directory and a llama.cpp-style GGUF.
#include "tests/unit/engine/pipeline/model_job_fixture.h"

namespace compressd::engine {
namespace {

using namespace model_job_testing;  // NOLINT: the fixture
namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

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
