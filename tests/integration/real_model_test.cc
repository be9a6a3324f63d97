// The model-engine service path on the real model (SmolLM2-135M-Instruct
// GGUF, $COMPRESSD_REAL_MODEL from scripts/fetch-model.sh) and the real text
// (ppl-persuasion, ../shared/data): upload the GGUF and the text with
// compressctl, run an evaluate-only job and a 50% magnitude job with
// evaluation on compressd + compress-worker, and check
//  * the service's perplexity equals `compress-worker run` on the same
//    recipe with a local path (one code path, same threads: bit-equal);
//  * it is within 0.1% of transformers' number for the same windows (the
//    golden fixture of tests/golden/nn_real_model_fixtures.py);
//  * pruning raises perplexity and KL, and the job exports an HF model.
// Fails (does not skip) without the model.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/harness.h"

namespace compressd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kWindows = 4;  // of 512 tokens: keeps the test near a minute on two cores
constexpr int kWindow = 512;

std::string SourceDir() {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \n\r\t"), e = s.find_last_not_of(" \n\r\t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// "evaluation: ..." with one ppl-persuasion set from `source` (YAML flow fields).
std::string EvalYaml(const std::string& source, bool kl) {
  return "evaluation:\n  perplexity:\n    - {name: ppl-persuasion, " + source +
         ", window: " + std::to_string(kWindow) + ", windows: " + std::to_string(kWindows) +
         "}\n  kl: " + (kl ? "true" : "false") + "\n  threads: 2\n";
}

class RealModelServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* model = std::getenv("COMPRESSD_REAL_MODEL");
    ASSERT_TRUE(model != nullptr && *model != '\0' && fs::exists(model))
        << "COMPRESSD_REAL_MODEL is unset or missing: run scripts/fetch-model.sh and configure "
           "with -DCOMPRESSD_REAL_MODEL=<the path it prints>";
    model_ = model;
    text_ = fs::absolute(SourceDir() + "/../shared/data/text/austen/persuasion.txt").string();
    ASSERT_TRUE(fs::exists(text_)) << text_ << ": the shared text is missing";
    root_ = MakeTempDir("real");
    ASSERT_TRUE(server_.Start(root_ + "/data", {"--local-workers", "1"}))
        << ReadFile(root_ + "/compressd.stderr.log");
  }

  CliResult Cli(const std::vector<std::string>& args) { return RunCli(server_, args); }

  std::string Upload(const std::vector<std::string>& args) {
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }

  // Submits, watches to the end, returns the finished job as JSON.
  json RunJob(const std::string& model_id, const std::string& recipe_text) {
    const std::string recipe = root_ + "/recipe-" + std::to_string(++jobs_) + ".yaml";
    std::ofstream(recipe) << recipe_text;
    const std::string job_id = Upload({"jobs", "submit", "--model", model_id, "--recipe", recipe});
    CliResult watch = Cli({"jobs", "watch", job_id});
    EXPECT_EQ(watch.exit_code, 0) << watch.out << watch.err;
    CliResult get = Cli({"jobs", "get", job_id, "--json"});
    EXPECT_EQ(get.exit_code, 0) << get.err;
    return json::parse(get.out, nullptr, false);
  }

  static json Summary(const json& job) {
    return json::parse(job.value("summaryJson", job.value("summary_json", "")), nullptr, false);
  }

  std::string model_, text_, root_;
  Server server_;
  int jobs_ = 0;
};

// exp(mean NLL) of the first kWindows windows, as transformers computed them.
double TransformersPerplexity() {
  std::ifstream in(SourceDir() + "/tests/golden/fixtures/nn_real_smollm2.json");
  const json meta = json::parse(in, nullptr, false);
  EXPECT_FALSE(meta.is_discarded());
  const json& ref = meta["ppl_persuasion"];
  EXPECT_EQ(ref["window"], kWindow);
  double sum = 0;
  for (int i = 0; i < kWindows; ++i) sum += ref["window_nll_sums"][i].get<double>();
  return std::exp(sum / (kWindows * (kWindow - 1)));
}

TEST_F(RealModelServiceTest, EvaluateOnlyMatchesLocalRunAndTransformers) {
  const std::string model_id = Upload({"models", "upload", model_, "--name", "smollm2"});
  const std::string dataset_id = Upload({"datasets", "upload", text_, "--name", "persuasion"});
  ASSERT_FALSE(dataset_id.empty());
  const json job =
      RunJob(model_id, EvalYaml("dataset_id: " + dataset_id + ", file: persuasion.txt", false));
  ASSERT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump();
  const json summary = Summary(job);
  const double service = summary["evaluation"]["datasets"][0]["perplexity"]["dense"];
  EXPECT_EQ(summary["format"], "none");
  ASSERT_EQ(job["artifacts"].size(), 1u);  // only summary.json
  EXPECT_EQ(job["artifacts"][0]["path"], "summary.json");

  const std::string recipe = root_ + "/local.yaml";
  std::ofstream(recipe) << EvalYaml("path: " + text_, false);
  CliResult local = RunBinary({BinDir() + "/compress-worker", "run", "--model", model_, "--recipe",
                               recipe, "--out", root_ + "/local-out"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  const json local_summary = json::parse(local.out, nullptr, false);
  ASSERT_FALSE(local_summary.is_discarded()) << local.out;
  EXPECT_EQ(local_summary["evaluation"]["datasets"][0]["perplexity"]["dense"].get<double>(), service);

  const double reference = TransformersPerplexity();
  EXPECT_NEAR(service, reference, 1e-3 * reference) << "transformers: " << reference;
  std::printf("ppl-persuasion (%d windows): compressd %.6f, transformers %.6f\n", kWindows, service,
              reference);
}

TEST_F(RealModelServiceTest, MagnitudeWithEvaluationRaisesPerplexityAndExportsHf) {
  const std::string model_id = Upload({"models", "upload", model_, "--name", "smollm2"});
  const std::string dataset_id = Upload({"datasets", "upload", text_, "--name", "persuasion"});
  const json job = RunJob(model_id, "stages: [{magnitude: {sparsity: 0.5}}]\n" +
                                        EvalYaml("dataset_id: " + dataset_id +
                                                     ", file: persuasion.txt", true));
  ASSERT_EQ(job.value("state", ""), "SUCCEEDED") << job.dump();
  const json summary = Summary(job);
  const json& set = summary["evaluation"]["datasets"][0];
  const double dense = set["perplexity"]["dense"], pruned = set["perplexity"]["compressed"];
  EXPECT_NEAR(dense, TransformersPerplexity(), 1e-3 * dense);
  EXPECT_GT(pruned, dense * 1.05);
  EXPECT_GT(summary["evaluation"]["kl"]["mean_kl"].get<double>(), 0.01);
  EXPECT_LT(summary["evaluation"]["kl"]["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(summary["totals"]["targeted_tensors"], 30 * 7);
  EXPECT_NEAR(summary["totals"]["sparsity"].get<double>(), 0.5, 1e-6);
  std::vector<std::string> paths;
  for (const json& a : job["artifacts"]) paths.push_back(a["path"]);
  // The weights, and the GGUF's tokenizer as HF files.
  EXPECT_THAT(paths, ::testing::UnorderedElementsAre("config.json", "model.safetensors",
                                                     "tokenizer.json", "tokenizer_config.json"));
  std::printf("ppl-persuasion (%d windows): dense %.4f, 50%% magnitude %.4f, KL %.4f, top1 %.4f\n",
              kWindows, dense, pruned, summary["evaluation"]["kl"]["mean_kl"].get<double>(),
              summary["evaluation"]["kl"]["top1_agreement"].get<double>());
}

}  // namespace
}  // namespace compressd::testing
