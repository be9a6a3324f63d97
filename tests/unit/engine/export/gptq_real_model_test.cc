// The real SmolLM2 GGUF, RTN-quantized (every projection), written as a GPTQ
// checkpoint and as a float32 HF export of the same quantized model, then
// read by the independent Python consumer (tests/python/check_gptq_load.py):
// dequantized weights equal the float export up to the float16 scales and
// the perplexities agree.
//
// Environment: COMPRESSD_REAL_MODEL (skipped when unset); COMPRESSD_PYTHON
// (the Python step is skipped when unset); COMPRESSD_GPTQ_GRID =
// "bits,group_size,sym|asym[,act]" (default "4,64,sym": SmolLM2's 576 inputs
// are not a multiple of 128), COMPRESSD_GPTQ_SKIP (comma-separated
// projections left dense, e.g. "mlp.down_proj"),
// COMPRESSD_GPTQ_WINDOWS (default 2) and
// COMPRESSD_GPTQ_KEEP=DIR (write there and keep it) for runs by hand.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/quantize_testing.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? fallback : v;
}

struct GridSpec {
  engine::QuantGrid grid{4, 64, true};
  bool act_order = false;
  std::vector<std::string> skip;  // projections left dense
};

// COMPRESSD_GPTQ_GRID = "bits,group_size,sym|asym[,act]".
GridSpec GridFromEnv() {
  GridSpec spec;
  const std::vector<std::string> parts =
      absl::StrSplit(Env("COMPRESSD_GPTQ_GRID", "4,64,sym"), ',');
  if (parts.size() == 3 || parts.size() == 4) {
    EXPECT_TRUE(absl::SimpleAtoi(parts[0], &spec.grid.bits));
    EXPECT_TRUE(absl::SimpleAtoi(parts[1], &spec.grid.group_size));
    spec.grid.symmetric = parts[2] == "sym";
    spec.act_order = parts.size() == 4 && parts[3] == "act";
  } else {
    ADD_FAILURE() << "COMPRESSD_GPTQ_GRID must be bits,group_size,sym|asym[,act]";
  }
  const std::string skip = Env("COMPRESSD_GPTQ_SKIP");
  if (!skip.empty()) spec.skip = absl::StrSplit(skip, ',');
  return spec;
}

TEST(GptqRealModelTest, RtnCheckpointMatchesFloatExportInPython) {
  const std::string model_path = Env("COMPRESSD_REAL_MODEL");
  if (model_path.empty() || !fs::exists(model_path)) {
    GTEST_SKIP() << "COMPRESSD_REAL_MODEL is unset (scripts/fetch-model.sh)";
  }
  auto model = engine::LoadModel(model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  const GridSpec spec = GridFromEnv();
  const auto quantized = spec.act_order
                             ? testing::QuantizeProjectionsActOrder(&*model, spec.grid, spec.skip)
                             : testing::QuantizeProjections(&*model, spec.grid, spec.skip);
  ASSERT_EQ(quantized.size(), (7u - spec.skip.size()) * model->blocks.size());

  const std::string keep = Env("COMPRESSD_GPTQ_KEEP");
  const std::string base = keep.empty() ? testing::TempDir("real") : keep;
  const std::string gptq_dir = base + "/gptq";
  const std::string float_dir = base + "/float";
  GptqExportOptions options;
  auto stats = WriteGptqLlama(*model, testing::Pointers(quantized), gptq_dir, options);
  if (!stats.ok() && !spec.grid.symmetric) {
    // An asymmetric group whose minimum rounds to zero point 0: v1 cannot hold it.
    std::printf("checkpoint_format gptq: %s\n-> writing gptq_v2\n",
                std::string(stats.status().message()).c_str());
    options.format = GptqCheckpointFormat::kGptqV2;
    stats = WriteGptqLlama(*model, testing::Pointers(quantized), gptq_dir, options);
  }
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_TRUE(WriteHfLlama(*model, float_dir).ok());
  EXPECT_EQ(stats->quantized_tensors, static_cast<int>(quantized.size()));
  // The float16 rounding of a scale moves each weight by at most 2^-11 of it.
  double max_weight = 0.0;
  for (engine::NamedTensor& t : engine::NamedTensors(&*model)) {
    if (quantized.count(t.name) == 0) continue;
    for (int64_t i = 0; i < t.tensor->numel(); ++i) {
      max_weight = std::max(max_weight, std::fabs(static_cast<double>(t.tensor->data[i])));
    }
  }
  EXPECT_GT(stats->max_abs_diff, 0.0);
  EXPECT_LE(stats->max_abs_diff, max_weight / 2048);
  std::printf(
      "gptq: %d quantized, %d dense tensors, max |fp16-scale dequant - float| = %.3g "
      "(max |w| %.3g)\n",
      stats->quantized_tensors, stats->dense_tensors, stats->max_abs_diff, max_weight);

  const std::string python = Env("COMPRESSD_PYTHON");
  if (python.empty()) {
    if (keep.empty()) fs::remove_all(base);
    GTEST_SKIP() << "COMPRESSD_PYTHON is unset: the Python consumer check did not run";
  }
  const std::string src = Env("COMPRESSD_SOURCE_DIR", ".");
  const std::string cmd = python + " " + src + "/tests/python/check_gptq_load.py " + gptq_dir +
                          " --reference " + float_dir + " --tokens " + src +
                          "/tests/golden/fixtures/nn_ppl_persuasion_tokens.bin --windows " +
                          Env("COMPRESSD_GPTQ_WINDOWS", "2") + " 2>&1";
  std::printf("%s\n", cmd.c_str());
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "check_gptq_load.py failed (output above)";
  if (keep.empty()) fs::remove_all(base);
}

}  // namespace
}  // namespace compressd::engine
