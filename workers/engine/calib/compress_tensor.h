// The bookkeeping of compressing one tensor, shared by the calibrated
// (calibrated_compress.cc) and uncalibrated (uncalibrated_compress.cc) paths:
// the solve, its summary entry, metric events, totals and checkpoint record.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/calib/block_checkpoint.h"
#include "workers/engine/calib/calibrated_compress.h"

namespace compressd::engine {

// A layer's metric events (reconstruction_error when measured, sparsity,
// bits, seconds) from its summary entry: sent as it is solved, and again
// for the layers of blocks restored from checkpoints on a resumed attempt,
// whose first events may have been lost with the attempt (the latest wins).
void EmitLayerMetrics(const nlohmann::json& entry, EventSink& events);

// Adds a layer's summary entry to the totals and the layer list.
void AddTotals(const nlohmann::json& entry, CompressionResult* result);

// Compresses one tensor in place (a new owned tensor) with the recipe's
// stages for `module` (h: its input Hessian, or null), recording the outcome
// in `result` and, when given, `checkpoint`.
absl::Status CompressTensor(const v1::Recipe& recipe, const std::string& module, Tensor* t,
                            const float* h, int threads, SolverBackend* solver, EventSink& events,
                            CompressionResult* result, BlockCheckpoint* checkpoint,
                            const nlohmann::json& extra = nlohmann::json::object());

// The module names of `targets`.
std::set<std::string> TargetModules(const std::vector<ModelTarget>& targets);

}  // namespace compressd::engine
