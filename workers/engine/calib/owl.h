// OWL (Yin et al. 2024, "Outlier Weighed Layerwise Sparsity: A Missing Secret
// Sauce for Pruning LLMs to High Sparsity"): a non-uniform sparsity per
// decoder block for Wanda or SparseGPT (recipe.proto OwlSpec).
//
// Before the pruning run, one dense calibration pass (the blocks run with
// their original weights; nothing is changed) scores every targeted weight of
// block l as Wanda does, A_ij = |W_ij| * ||X_j||_2 over the calibration tokens
// (an expert's over the tokens routed to it), and takes the block's outlier
// ratio R_l = 100 * #{A_ij > m * mean(A)} / #A over the block's targeted
// weights together. Then
//   D_l = 2 * lambda * (R_l - min R) / (max R - min R)   (0 when all R are equal)
//   s_l = S - (D_l - mean D)
// (min, max and mean over the blocks with targets, the mean weighted by
// their targeted weights), so blocks with more outliers keep more weights,
// the model's sparsity is S
// and the s_l span a window of width 2 lambda that contains S (the recipe
// keeps S +- 2 lambda inside (0, 1)). The run then prunes block l
// at s_l (a module override's sparsity still wins for its modules).
//
// Cost: one dense forward over the calibration set, plus O(T * width) per
// distinct linear input and O(#weights) per block for the scores; memory as
// the pruning run's (block_runner.h), one block at a time.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/nn/block_runner.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

// s_l from R_l (the formula above). With `weights` (each block's number of
// targeted weights), min, max and mean run over the blocks with weights only,
// the mean weighted, so the whole model's sparsity is S when blocks differ in
// size; a block without any gets S. Empty weights: all blocks equal. Empty
// for no blocks.
std::vector<double> OwlSparsities(const std::vector<double>& outlier_percent, double sparsity,
                                  double lambda, const std::vector<uint64_t>& weights = {});

// R for each threshold of `ms` over `linears` (their tensors set), on their
// inputs `in`; *count gets their number of weights when not null.
std::vector<double> BlockOutlierPercent(const std::vector<const BlockLinear*>& linears,
                                        const LinearInputs& in, const std::vector<double>& ms,
                                        uint64_t* count = nullptr);

struct OwlScores {
  std::vector<std::vector<double>> percent;  // [k][block]: R for threshold ms[k]
  std::vector<uint64_t> weights;             // [block]: targeted weights
};

// The dense pass: R for each threshold of `ms` over the targeted linears
// (`targets`: module names) of every block. With a `stream` (block 0 already
// in the model), blocks 1.. are read with BlockStream::Peek and freed after.
// CANCELLED between blocks when `cancel` is set.
absl::StatusOr<OwlScores> OwlOutlierPercents(
    LlamaModel& model, Backend& backend, const std::set<std::string>& targets,
    const CalibrationSet& calibration, const std::vector<double>& ms, BlockStream* stream,
    const BlockRunnerOptions& options, EventSink& events, const CancelToken& cancel);

// The recipe each block runs: empty when no stage has OWL (every block runs
// `recipe`); else one per block, each OWL stage's sparsity replaced by the
// block's s_l. *report gets the allocation (per OWL stage: m, lambda and per
// block R and s), which is also logged and sent as "owl_sparsity" metrics.
absl::StatusOr<std::vector<v1::Recipe>> OwlBlockRecipes(
    LlamaModel& model, Backend& backend, const v1::Recipe& recipe,
    const std::set<std::string>& targets, const CalibrationSet& calibration, BlockStream* stream,
    const BlockRunnerOptions& options, EventSink& events, const CancelToken& cancel,
    nlohmann::json* report);

}  // namespace compressd::engine
