// The linear layers of a decoder block that calibrated stages (wanda,
// sparsegpt, gptq) compress, the calibration input that feeds each, and for
// a mixture-of-experts layer which tokens give each expert its Hessian.
//
// A block is compressed in four steps (q/k/v; o; gate/up with the router and
// the experts' gate/up; down with the experts' down), "true sequential"
// recomputing the inputs between steps. Inside a step, linears sharing an
// input share its Hessian; an expert's Hessian comes from the tokens routed
// to it only (its gate/up: those tokens' MLP inputs; its down: its own
// down_proj inputs on them). An expert routed fewer than min_expert_tokens
// tokens gets the layer's pooled Hessian instead (all tokens' MLP inputs, or
// all the experts' down_proj inputs): the summary says which (docs/moe.md).
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/block_runner.h"

namespace compressd::engine {

struct BlockLinear {
  std::string module;        // "model.layers.3.mlp.experts.5.up_proj"
  Tensor* tensor = nullptr;  // its slot in the block (null when listed without one)
  int input = 0;             // LinearInputs::input index that feeds it
  int step = 0;              // 0 q/k/v, 1 o, 2 gate/up (router, experts), 3 down
  int expert = -1;           // the routed expert it belongs to; -1: every token feeds it
};

// Block `layer`'s linears in step order (`block` may be null).
std::vector<BlockLinear> BlockLinearsOf(const LlamaConfig& config, int layer, BlockWeights* block);

// Calibration tokens routed to each expert of an MoE layer's `in` [n_experts].
std::vector<int64_t> ExpertTokenCounts(const LinearInputs& in, int n_experts);

// The rows of input `input` (2: MLP inputs, by token; 4: expert down_proj
// inputs, by token * k + slot) that `expert` saw.
std::vector<int64_t> ExpertRows(const LinearInputs& in, int input, int expert);

// H of input `input` of width `dim` over all its rows; or, with `rows`, over
// those rows only (gathered in the accumulator's chunks), on `threads` host
// threads. The accumulator is gone on return, so a step's peak is the
// solver's, not the two added.
absl::StatusOr<std::vector<float>> InputHessian(const LinearInputs& in, int input, int64_t dim,
                                                const std::vector<int64_t>* rows,
                                                SolverBackend& solver, int threads);

}  // namespace compressd::engine
