// AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han, "AWQ: Activation-aware Weight
// Quantization for LLM Compression and Acceleration", MLSys 2024).
//
// Idea: a few input channels carry large activations; their weights matter
// most. Scaling input channel j of a linear by s_j > 1 before quantizing
// (W' = Q(W diag(s)) diag(s)^-1, the input divided by s) shrinks the relative
// rounding error of the salient weights. The inverse scale is folded exactly
// into whatever produces the input: the RMSNorm before q/k/v (g <- g / s;
// Gemma's 1 + w likewise), v_proj's rows before o_proj (only when they have
// the same width: no GQA), up_proj's rows before down_proj. The router and
// every expert after the MLP norm share its scales.
//
// Math (the paper's eq. 4-5): per group of linears sharing an input X,
//   s(a) = mean_t|x_tj|^a                          (duo_scaling off, the paper)
//   s(a) = mean_t|x_tj|^a / mean_i(|w_ij| / max_group|w|)^(1-a)   (AutoAWQ's default)
//   normalised s <- s / sqrt(max s * min s), a in {0, 1/n, ..., (n-1)/n},
// and the a minimising sum_linears ||W X - Q(W diag(s)) diag(s)^-1 X||^2,
// computed as tr(E H E^T) with H = X X^T (Q: round to nearest on the stage's
// grid). The unscaled weights (s = 1) are a candidate too, so the search never
// picks scales that do worse on its objective than plain RTN.
//
// Cost per group: n + 1 candidates, each one RTN and an [rows, cols] x
// [cols, cols] product; memory one group weight copy and H.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/block_runner.h"

namespace compressd::engine {

struct AwqOptions {
  QuantGrid grid;
  int grid_points = 20;
  bool duo_scaling = false;
  // The unscaled weights compete too (always, in a job); false: the best a
  // even when it does worse (AutoAWQ's behaviour).
  bool unscaled_candidate = true;
  int threads = 1;  // candidates scored at once
  // Then AutoAWQ's per-group clipping search (awq_clip.h) on every searched
  // linear but q/k (whose errors the attention scores amplify).
  bool clip = false;
};

struct AwqWeight {
  const float* w = nullptr;  // [rows, cols] row-major
  int64_t rows = 0;
};

struct AwqSearchResult {
  std::vector<float> scales;   // [cols]; all 1 when the unscaled weights won
  double alpha = -1;           // the chosen exponent; -1: unscaled
  double error_unscaled = 0;   // relative output error of RTN without scales
  double error = 0;            // ... with the chosen scales (<= error_unscaled)
  std::vector<double> errors;  // every candidate's: unscaled, then a = k / n
};

// The search over `linears` (all of width `cols`) with input Hessian h
// [cols, cols] and mean |x| per input `x_mean` [cols]. Errors are relative:
// sum tr(E H E^T) / sum tr(W H W^T). INVALID_ARGUMENT naming `name` for a bad
// grid or non-finite weights. Stateless, thread-safe.
absl::StatusOr<AwqSearchResult> AwqSearch(const std::vector<AwqWeight>& linears, const float* h,
                                          const float* x_mean, int64_t cols,
                                          const AwqOptions& options, absl::string_view name);

// Searches and folds every group of block `layer` (*w, dense) from its
// inputs `in`, in the order attention input, o input, MLP input, down
// inputs; a group none of whose linears is in `targets` is left alone. Each
// changed tensor is replaced by a new owned one; `changed` gets them. Returns
// one summary entry per group: {"block", "input", "scaled" (the previous
// op), "alpha", "error_unscaled", "error"}, with clipping also "clipped"
// (the fraction of (row, group) pairs shrunk) and "clip_error_unclipped" /
// "clip_error" (awq_clip.h's errors, averaged over the clipped linears).
absl::StatusOr<nlohmann::json> AwqBlock(const LlamaConfig& config, int layer, BlockWeights* w,
                                        const LinearInputs& in, const AwqOptions& options,
                                        const std::set<std::string>& targets, SolverBackend& solver,
                                        std::vector<Tensor*>* changed);

// "awq: <folded_into> a=0.45 (error 0.0123 -> 0.0101); ..." for a block's entries.
std::string AwqLogLine(const nlohmann::json& entries);

}  // namespace compressd::engine
