// SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth, Han, "SmoothQuant: Accurate
// and Efficient Post-Training Quantization for Large Language Models", ICML
// 2023) and the marking of a block's W8A8 linears.
//
// Idea: int8 per-token activation quantization suffers from a few input
// channels whose activations are far larger than the rest (the same channels
// in every token); weights have no such outliers. Dividing input channel j by
// s_j and multiplying the weights' column j by s_j (exact: folded into the
// RMSNorm that makes the input, block_scaling.h) moves part of the range from
// the activations into the weights.
//
// Math (the paper's eq. 4), per group of linears sharing an input X (q/k/v
// after the attention norm; gate/up, with the router and every expert, after
// the MLP norm: llm-compressor's default mappings):
//   s_j = max_t |x_tj|^alpha / max_i |w_ij|^(1 - alpha),
// the weight max over every linear of the group, s_j >= 1e-5 (and s_j =
// max_t |x_tj| where a column of weights is all zero). alpha = 0.5 balances
// the two ranges: max_t |x_tj| / s_j = max_i |w_ij| s_j.
//
// Cost per group: one pass over its calibration inputs and its weights.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/block_runner.h"

namespace compressd::engine {

// s for the group's linears (`weights`, each [rows, cols]) from the inputs'
// max |x| per channel `x_max` [cols]. Stateless.
std::vector<float> SmoothQuantScales(const std::vector<const Tensor*>& weights,
                                     const std::vector<float>& x_max, double alpha);

// Computes and folds the scales of block `layer`'s norm-fed groups (and with
// spec.down_proj, of its down_proj inputs into up_proj's rows) from its inputs
// `in`; a group none of whose linears is in `targets` is left alone.
// Changed tensors are replaced by new owned ones and appended to `changed`.
// One summary entry per group: {"block", "linears" (the first), "folded_into",
// "alpha", "x_max" / "x_max_smoothed" (the largest activation before and
// after), "w_max" / "w_max_smoothed" (the same for the weights)}.
nlohmann::json SmoothQuantBlock(const LlamaConfig& config, int layer, BlockWeights* w,
                                const LinearInputs& in, const v1::SmoothQuantSpec& spec,
                                const std::set<std::string>& targets,
                                std::vector<Tensor*>* changed);

// "smoothquant: model.layers.0.input_layernorm |x| 12.5 -> 2.1, |w| 0.31 -> 1.9; ..."
std::string SmoothQuantLogLine(const nlohmann::json& entries);

// The ActQuant bits of block `layer` (*w) whose linears are all in `w8a8`
// (the modules the W8A8 stage quantized). INVALID_ARGUMENT when only some of
// an MoE layer's experts (or of its shared expert's linears) are: the runtime
// quantizes all or none of them.
absl::StatusOr<uint32_t> ActQuantMask(const LlamaConfig& config, int layer, BlockWeights* w,
                                      const std::set<std::string>& w8a8);

// Sets w->act_quant (and act_fp8) for block `layer` once its linears hold their final
// weights: the `targets` that the recipe's activations stage quantizes (not
// skipped by an override). Nothing without such a stage.
absl::Status MarkW8A8(const v1::Recipe& recipe, const std::set<std::string>& targets,
                      const LlamaConfig& config, int layer, BlockWeights* w);

}  // namespace compressd::engine
