// The fixture of the model-path tests (model_job_test.cc,
// big_model_job_test.cc): a tiny HF Llama with a byte-level tokenizer.json
// (so any text is one token per byte) and an evaluation text written greedily
// by the dense model itself, so the dense model is the one that predicts it
// best and pruning must make its perplexity worse.
#pragma once

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

namespace compressd::engine::model_job_testing {

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
inline std::vector<int32_t> GreedyText(const engine::LlamaModel& model) {
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

}  // namespace compressd::engine::model_job_testing
