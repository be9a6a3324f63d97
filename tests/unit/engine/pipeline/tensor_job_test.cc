#include "workers/engine/pipeline/tensor_job.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/tiny_llama.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/pipeline/job.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TinyLlamaOptions;

class RecordingSink : public EventSink {
 public:
  void Emit(const v1::JobEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
    if (cancel_on_prune_ != nullptr && event.has_progress() &&
        event.progress().stage() == "prune") {
      cancel_on_prune_->Cancel();
    }
  }
  std::vector<v1::JobEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  CancelToken* cancel_on_prune_ = nullptr;

 private:
  std::mutex mu_;
  std::vector<v1::JobEvent> events_;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

v1::Recipe SparsityRecipe(double sparsity) {
  v1::Recipe r;
  r.add_stages()->mutable_magnitude()->set_sparsity(sparsity);
  return r;  // targets and output left to ApplyRecipeDefaults
}

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("jr_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    in_ = (root_ / "in").string();
    out_ = (root_ / "out").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  absl::StatusOr<std::string> Run(const v1::Recipe& recipe) {
    // As `compress-worker run` does: defaults and validation, then the job.
    absl::StatusOr<RecipeSpec> spec = PrepareRecipe(recipe);
    if (!spec.ok()) return spec.status();
    return RunJob(in_, *spec, out_, sink_, cancel_);
  }

  // Checks every output tensor: targeted ones have >= min_zero_fraction zeros
  // (or exactly `exact_zeros` of numel) with kept values bit-identical; all
  // others byte-identical.
  void CheckOutput(const std::set<std::string>& targeted, double zero_fraction) {
    absl::StatusOr<std::unique_ptr<HfModel>> in = HfModel::Open(in_);
    absl::StatusOr<std::unique_ptr<HfModel>> out = HfModel::Open(out_);
    ASSERT_TRUE(in.ok()) << in.status();
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ((*in)->tensors().size(), (*out)->tensors().size());
    for (const auto& [name, ref] : (*in)->tensors()) {
      HfModel::TensorRef o = (*out)->Find(name);
      ASSERT_NE(o.info, nullptr) << name;
      EXPECT_EQ(o.shard->rel_path, ref.shard->rel_path) << name;
      EXPECT_EQ(o.info->dtype, ref.info->dtype) << name;
      EXPECT_EQ(o.info->shape, ref.info->shape) << name;
      const absl::string_view a = ref.shard->file->Bytes(*ref.info);
      const absl::string_view b = o.shard->file->Bytes(*o.info);
      if (!targeted.count(name)) {
        EXPECT_EQ(a, b) << name << " must be bit-identical";
        continue;
      }
      const size_t es = DTypeSize(ref.info->dtype);
      size_t zeros = 0;
      for (size_t i = 0; i < ref.info->numel; ++i) {
        const absl::string_view ob = b.substr(i * es, es);
        if (ob == std::string(es, '\0')) {
          ++zeros;
        } else {
          ASSERT_EQ(ob, a.substr(i * es, es)) << name << " kept element " << i << " changed";
        }
      }
      EXPECT_EQ(zeros, static_cast<size_t>(zero_fraction * ref.info->numel)) << name;
    }
  }

  fs::path root_;
  std::string in_, out_;
  RecordingSink sink_;
  CancelToken cancel_;
};

std::set<std::string> AllProj() {
  std::vector<std::string> v = testing::TinyLlamaProjWeights();
  return {v.begin(), v.end()};
}

TEST_F(JobRunnerTest, UnstructuredHalfSparsityOnEveryDtype) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(DTypeName(dtype));
    fs::remove_all(root_);
    TinyLlamaOptions o;
    o.dtype = dtype;
    ASSERT_TRUE(testing::WriteTinyLlama(in_, o).ok());
    absl::StatusOr<std::string> summary = Run(SparsityRecipe(0.5));
    ASSERT_TRUE(summary.ok()) << summary.status();
    CheckOutput(AllProj(), 0.5);
    EXPECT_EQ(ReadFile(fs::path(out_) / "config.json"), ReadFile(fs::path(in_) / "config.json"));
    EXPECT_FALSE(fs::exists(fs::path(out_) / "model.safetensors.index.json"));

    nlohmann::json s = nlohmann::json::parse(*summary);
    EXPECT_EQ(s["totals"]["targeted_tensors"], 14);
    EXPECT_DOUBLE_EQ(s["totals"]["sparsity"].get<double>(), 0.5);
    ASSERT_EQ(s["layers"].size(), 14u);
    EXPECT_EQ(s["layers"][0]["name"], "model.layers.0.mlp.down_proj");
    EXPECT_DOUBLE_EQ(s["layers"][0]["sparsity"].get<double>(), 0.5);
    for (const char* k : {"load", "prune", "export", "total"}) {
      EXPECT_GE(s["timing_seconds"][k].get<double>(), 0.0) << k;
    }
  }
}

TEST_F(JobRunnerTest, EmitsProgressAndPerLayerMetrics) {
  ASSERT_TRUE(testing::WriteTinyLlama(in_).ok());
  ASSERT_TRUE(Run(SparsityRecipe(0.5)).ok());
  int prune = 0, sparsity = 0, seconds = 0, last_current = 0;
  for (const v1::JobEvent& e : sink_.events()) {
    EXPECT_GT(e.time_ms(), 0);
    if (e.has_progress() && e.progress().stage() == "prune") {
      ++prune;
      EXPECT_EQ(e.progress().total(), 14);
      EXPECT_EQ(e.progress().current(), last_current + 1);
      last_current = e.progress().current();
    }
    if (e.has_metric()) {
      EXPECT_THAT(e.metric().labels().at("layer"), HasSubstr("_proj"));
      if (e.metric().name() == "sparsity") {
        ++sparsity;
        EXPECT_DOUBLE_EQ(e.metric().value(), 0.5);
      }
      seconds += e.metric().name() == "seconds";
    }
  }
  EXPECT_EQ(prune, 14);
  EXPECT_EQ(sparsity, 14);
  EXPECT_EQ(seconds, 14);
}

TEST_F(JobRunnerTest, ShardedModelKeepsLayoutAndIndex) {
  TinyLlamaOptions o;
  o.sharded = true;
  o.dtype = DType::kBF16;
  ASSERT_TRUE(testing::WriteTinyLlama(in_, o).ok());
  ASSERT_TRUE(Run(SparsityRecipe(0.5)).ok());
  CheckOutput(AllProj(), 0.5);
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    EXPECT_TRUE(fs::exists(fs::path(out_) / f)) << f;
  }
  nlohmann::json in_index = nlohmann::json::parse(ReadFile(fs::path(in_) / kWeightsIndexFile));
  nlohmann::json out_index = nlohmann::json::parse(ReadFile(fs::path(out_) / kWeightsIndexFile));
  EXPECT_EQ(in_index["weight_map"], out_index["weight_map"]);
  EXPECT_EQ(in_index["metadata"]["total_size"], out_index["metadata"]["total_size"]);
}

TEST_F(JobRunnerTest, NMPatternWithIgnore) {
  TinyLlamaOptions o;
  o.dtype = DType::kF16;
  ASSERT_TRUE(testing::WriteTinyLlama(in_, o).ok());
  v1::Recipe r;
  r.add_stages()->mutable_magnitude()->set_pattern("2:4");
  r.mutable_targets()->set_include(".*_proj");
  r.mutable_targets()->add_ignore(".*down_proj");
  ASSERT_TRUE(Run(r).ok());
  std::set<std::string> targeted = AllProj();
  for (auto it = targeted.begin(); it != targeted.end();) {
    it = it->find("down_proj") != std::string::npos ? targeted.erase(it) : std::next(it);
  }
  ASSERT_EQ(targeted.size(), 12u);
  CheckOutput(targeted, 0.5);
  // And the 2:4 structure itself.
  absl::StatusOr<std::unique_ptr<HfModel>> out = HfModel::Open(out_);
  ASSERT_TRUE(out.ok());
  HfModel::TensorRef t = (*out)->Find("model.layers.1.mlp.up_proj.weight");
  std::vector<float> w = *t.shard->file->ReadAsFloat(*t.info);
  for (size_t g = 0; g < w.size(); g += 4) {
    ASSERT_EQ(std::count(w.begin() + g, w.begin() + g + 4, 0.0f), 2) << "group " << g;
  }
}

TEST_F(JobRunnerTest, NMPatternNotDividingInputDimIsInvalidArgument) {
  TinyLlamaOptions o;
  o.hidden = 48;  // 4 heads of 12; 48 is not a multiple of 32
  ASSERT_TRUE(testing::WriteTinyLlama(in_, o).ok());
  v1::Recipe r;
  r.add_stages()->mutable_magnitude()->set_pattern("1:32");
  absl::Status st = Run(r).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("not a multiple of M=32"));
  EXPECT_THAT(st.message(), HasSubstr("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_FALSE(fs::exists(out_));  // failed before writing anything
}

TEST_F(JobRunnerTest, CancellationBetweenTensors) {
  ASSERT_TRUE(testing::WriteTinyLlama(in_).ok());
  sink_.cancel_on_prune_ = &cancel_;
  absl::Status st = Run(SparsityRecipe(0.5)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  int prune = 0;
  for (const v1::JobEvent& e : sink_.events()) {
    prune += e.has_progress() && e.progress().stage() == "prune";
  }
  EXPECT_EQ(prune, 1);
}

// GGUF input goes to the model-engine path (model_job_test.cc); a truncated
// file is a bad model, named, whether given as the file or its directory.
TEST_F(JobRunnerTest, TruncatedGgufIsInvalidArgument) {
  fs::create_directories(in_);
  std::ofstream(fs::path(in_) / "model.gguf", std::ios::binary) << "GGUF\x03";
  absl::Status st = Run(SparsityRecipe(0.5)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.gguf"));
  in_ = (fs::path(in_) / "model.gguf").string();
  EXPECT_EQ(Run(SparsityRecipe(0.5)).status().code(), absl::StatusCode::kInvalidArgument);

  in_ = (root_ / "missing").string();
  EXPECT_EQ(Run(SparsityRecipe(0.5)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobRunnerTest, BadInputsAreInvalidArgument) {
  ASSERT_TRUE(testing::WriteTinyLlama(in_).ok());
  v1::Recipe none = SparsityRecipe(0.5);
  none.mutable_targets()->set_include("nothing_matches");
  absl::Status st = Run(none).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("targets.include"));

  // A truncated shard: header length points past the end of the file.
  const fs::path shard = fs::path(in_) / "model.safetensors";
  fs::resize_file(shard, 100);
  st = Run(SparsityRecipe(0.5)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.safetensors"));

  out_ = in_;  // writing over the input is refused
  st = Run(SparsityRecipe(0.5)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("must differ from the model directory"));
  out_ = (root_ / "out").string();

  fs::remove(fs::path(in_) / "config.json");
  st = Run(SparsityRecipe(0.5)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("config.json"));
}

TEST(NaturalLessTest, NumbersCompareNumerically) {
  EXPECT_TRUE(NaturalLess("layers.2.q", "layers.10.q"));
  EXPECT_FALSE(NaturalLess("layers.10.q", "layers.2.q"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("a", "a1"));
  EXPECT_FALSE(NaturalLess("a1", "a1"));
}

}  // namespace
}  // namespace compressd::engine
