// The post-export reload gate: an export that reproduces the in-memory model
// passes with its figure; an artifact that is another model fails the job
// with INTERNAL naming both perplexities; a rounded (BF16) export passes
// within its tolerance; a format without a reader is reported as not checked.
#include "workers/engine/pipeline/reload_gate.h"

#include <cmath>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/export/llama_export.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class NullSink : public EventSink {
 public:
  void Emit(const v1::JobEvent&) override {}
};

std::string Dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  return dir.string();
}

TEST(ReloadGate, PassesOnTheExportAndFailsOnAnotherModel) {
  const LlamaModel model = testing::RandomModel(testing::SmallConfig(), 1);
  const LlamaModel other = testing::RandomModel(testing::SmallConfig(), 2);
  const std::string good = Dir("gate_good"), bad = Dir("gate_bad");
  LlamaModel writable = model, writable_other = other;
  ASSERT_TRUE(WriteHfLlama(writable, good).ok());
  ASSERT_TRUE(WriteHfLlama(writable_other, bad).ok());
  RecipeSpec spec;  // hf_safetensors, F32
  NullSink sink;
  CancelToken cancel;
  ReloadGate gate = PlanReloadGate(spec, nullptr, {}, model.config.vocab, good);
  EXPECT_EQ(gate.tolerance, 1e-4);
  EXPECT_EQ(gate.set.source, "fixed pseudo-random tokens");  // no calibration, no evaluation
  auto passed = VerifyModelExport(model, gate, "cpu", 1, sink, cancel);
  ASSERT_TRUE(passed.ok()) << passed.status();
  EXPECT_EQ((*passed)["passed"], true);
  EXPECT_EQ((*passed)["relative_difference"], 0.0);  // the same bits, the same forward

  gate.path = bad;
  absl::Status s = VerifyModelExport(model, gate, "cpu", 1, sink, cancel).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("reload check failed"));
  EXPECT_THAT(s.message(), HasSubstr("reloaded from " + bad));
}

TEST(ReloadGate, RoundedExportsPassWithinTheirTolerance) {
  const LlamaModel model = testing::RandomModel(testing::SmallConfig(), 3);
  LlamaModel writable = model;
  const std::string dir = Dir("gate_bf16");
  ASSERT_TRUE(WriteHfLlama(writable, dir, DType::kBF16).ok());
  RecipeSpec spec;
  spec.hf_dtype = "BF16";
  CalibrationSet calibration;
  calibration.source = "calib";
  calibration.sequences = {std::vector<int32_t>(40, 3), std::vector<int32_t>(50, 5)};
  ReloadGate gate = PlanReloadGate(spec, &calibration, {}, model.config.vocab, dir);
  EXPECT_EQ(gate.tolerance, 1e-2);
  EXPECT_EQ(gate.set.windows.window, 40);  // the shorter sample
  EXPECT_EQ(gate.set.tokens.size(), 80u);
  NullSink sink;
  CancelToken cancel;
  auto passed = VerifyModelExport(model, gate, "cpu", 1, sink, cancel);
  ASSERT_TRUE(passed.ok()) << passed.status();
  EXPECT_GT((*passed)["relative_difference"].get<double>(), 0.0);  // rounded, not equal

  spec.format = OutputFormat::kGguf;  // re-encoding onto 3- and 2-bit grids asked for
  EXPECT_EQ(PlanReloadGate(spec, &calibration, {}, model.config.vocab, dir).tolerance, 2e-2);
  spec.gguf.target = 11;  // Q3_K
  EXPECT_EQ(PlanReloadGate(spec, &calibration, {}, model.config.vocab, dir).tolerance, 1.0);
  spec.gguf.target = 10;  // Q2_K: only a non-finite perplexity fails
  gate = PlanReloadGate(spec, &calibration, {}, model.config.vocab, dir);
  EXPECT_TRUE(std::isinf(gate.tolerance));
  spec.gguf.target.reset();

  spec.format = OutputFormat::kGptq;  // read back by GptqStream (export_test)
  gate = PlanReloadGate(spec, &calibration, {}, model.config.vocab, dir);
  EXPECT_EQ(gate.tolerance, 1e-2);
  EXPECT_TRUE(gate.skipped.empty());
  gate.skipped = "no reader";  // a format without one is reported, not failed
  auto skipped = VerifyModelExport(model, gate, "cpu", 1, sink, cancel);
  ASSERT_TRUE(skipped.ok());
  EXPECT_TRUE((*skipped)["passed"].is_null());
  EXPECT_EQ((*skipped)["skipped"], "no reader");
}

}  // namespace
}  // namespace compressd::engine
