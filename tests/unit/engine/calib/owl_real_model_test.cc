// OWL's outlier ratios and allocation on the real SmolLM2-135M-Instruct
// against the independent PyTorch computation of tests/golden/owl_fixtures.py
// (transformers' forward of the dense model, hooks on every nn.Linear). Needs
// COMPRESSD_REAL_MODEL (set by ctest from the CMake cache variable); fails
// without it.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "tests/testing/golden_files.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/calib/owl.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {
namespace {

// R is a percentage of 3.5M scores per block: float32 (ours) and float64
// (the reference's scores) differ only for scores within rounding of the
// threshold, a handful of weights: 2e-3 points is 70 weights.
constexpr double kPercentTol = 2e-3;
constexpr double kSparsityTol = 1e-4;

std::string Fixture(const std::string& name) { return compressd::testing::GoldenFixture(name); }
std::string ReadAll(const std::string& path) { return compressd::testing::ReadFileBytes(path); }

class NoEvents : public EventSink {
 public:
  void Emit(const v1::JobEvent&) override {}
};

TEST(OwlRealModelTest, OutlierRatiosAndAllocationMatchPyTorch) {
  const char* path = std::getenv("COMPRESSD_REAL_MODEL");
  ASSERT_TRUE(path != nullptr && *path != '\0' && std::ifstream(path).good())
      << "COMPRESSD_REAL_MODEL is unset or missing: run scripts/fetch-model.sh and configure "
         "with -DCOMPRESSD_REAL_MODEL=<the path it prints>";
  absl::StatusOr<LlamaModel> model = LoadGgufModel(std::string(path));
  ASSERT_TRUE(model.ok()) << model.status();
  const nlohmann::json fix =
      nlohmann::json::parse(ReadAll(Fixture("owl_smollm2.json")), nullptr, false);
  ASSERT_FALSE(fix.is_discarded()) << "bad fixture owl_smollm2.json";
  const std::string tok = ReadAll(Fixture(fix["tokens"].get<std::string>()));
  std::vector<int32_t> tokens(tok.size() / 4);
  std::memcpy(tokens.data(), tok.data(), tokens.size() * 4);

  CalibrationSet calibration;
  const int64_t len = fix["seq_len"];
  for (int64_t off : fix["offsets"].get<std::vector<int64_t>>()) {
    calibration.sequences.emplace_back(tokens.begin() + off, tokens.begin() + off + len);
  }
  std::set<std::string> targets;
  for (int b = 0; b < model->config.n_layers; ++b) {
    for (const BlockLinear& l : BlockLinearsOf(model->config, b, nullptr)) targets.insert(l.module);
  }
  std::vector<double> ms;
  std::vector<std::string> keys;  // the fixture's key of each m
  for (const auto& [m, _] : fix["outlier_percent"].items()) {
    keys.push_back(m);
    ms.push_back(std::stod(m));
  }
  CpuBackend backend;
  NoEvents events;
  CancelToken cancel;
  absl::StatusOr<OwlScores> scores = OwlOutlierPercents(*model, backend, targets, calibration, ms,
                                                        nullptr, {}, events, cancel);
  ASSERT_TRUE(scores.ok()) << scores.status();
  const std::vector<std::vector<double>>* percent = &scores->percent;
  std::map<double, std::vector<double>> ours;
  for (size_t k = 0; k < ms.size(); ++k) {
    const std::vector<double> want = fix["outlier_percent"][keys[k]];
    ASSERT_EQ((*percent)[k].size(), want.size());
    for (size_t b = 0; b < want.size(); ++b) {
      EXPECT_NEAR((*percent)[k][b], want[b], kPercentTol) << "m " << ms[k] << " block " << b;
    }
    ours[ms[k]] = (*percent)[k];
  }
  for (const nlohmann::json& a : fix["allocations"]) {
    const std::vector<double> want = a["block_sparsity"];
    const std::vector<double> got = OwlSparsities(ours.at(a["m"].get<double>()), a["sparsity"],
                                                  a["lambda"], scores->weights);
    ASSERT_EQ(got.size(), want.size());
    for (size_t b = 0; b < want.size(); ++b) {
      EXPECT_NEAR(got[b], want[b], kSparsityTol) << "allocation " << a.dump() << " block " << b;
    }
  }
}

}  // namespace
}  // namespace compressd::engine
