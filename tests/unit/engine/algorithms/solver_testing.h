// Test helpers for the layer solvers: random correlated layers, an unblocked
// float64-free reference of the OBS sweep, and the golden fixtures of
// tests/golden/algo_fixtures.py.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/obs_sweep.h"

namespace compressd::engine::testing {

struct Layer {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> w;  // [rows, cols]
  std::vector<float> h;  // [cols, cols]
};

// W ~ N(0, 1); X = Z A with Z ~ N(0, 1) [tokens, cols] and A = I + N(0, 0.1^2)
// (correlated inputs), plus a few large-scale inputs; H = 2 X^T X / tokens.
Layer RandomLayer(int64_t rows, int64_t cols, int64_t tokens, uint32_t seed);

// The OBS sweep of obs_sweep.h without lazy blocks or threads: every column's
// error goes to all later columns at once, selections by std::stable_sort.
// Same decisions and grids as ObsSweep, the arithmetic in another order.
void ObsSweepRef(const SweepOptions& options, SweepState* state);

// Fraction of equal entries.
template <typename T>
double Agreement(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size() || a.empty()) return 0.0;
  int64_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

// One golden layer: inputs and the reference outputs of every configuration.
struct GoldenLayer {
  std::string name;
  Layer layer;
  nlohmann::json configs;  // the "configs" array of algo_<name>_expected.json
  std::string blob;        // algo_<name>_expected.bin
};

// The source tree (COMPRESSD_SOURCE_DIR, which ctest sets; else ".").
std::string SourceDir();
// A whole file; NOT_FOUND naming it.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Reads tests/golden/fixtures/algo_<name>{,_expected}.{json,bin} (the source
// tree is found through COMPRESSD_SOURCE_DIR, which ctest sets).
absl::StatusOr<GoldenLayer> LoadGoldenLayer(const std::string& name);

// An array of a configuration (`what` in its "arrays"), converted to T.
// Bit-packed masks (dtype "bits", numpy.packbits order) unpack to 0/1.
template <typename T>
absl::StatusOr<std::vector<T>> GoldenArray(const GoldenLayer& g, const nlohmann::json& config,
                                           const std::string& what);

}  // namespace compressd::engine::testing
