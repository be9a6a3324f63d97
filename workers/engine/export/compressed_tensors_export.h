// compressed-tensors "pack-quantized": the checkpoint llm-compressor writes
// and vLLM loads first ("quant_method": "compressed-tensors"), and that
// transformers reads through its compressed-tensors integration.
//
// Layout of one quantized linear layer `<m>` (weight [out, in], codes c[o][i]
// in [0, 2^bits), per-(o, group) scale s and integer zero z; value =
// s * (c - z)). compressed-tensors holds signed values q = c - 2^(bits-1) and
// zero points zp = z - 2^(bits-1) (0 for a symmetric grid) and dequantizes
// (q - zp) * s, the same value; it stores each with 2^(bits-1) added back:
//   <m>.weight_packed      I32 [out, ceil(in * bits / 32)]  row o is the bit
//                          stream c[o][0], c[o][1], ... of `bits` bits each,
//                          lowest bits first, cut into 32-bit words (dense:
//                          a field may straddle two words), zero-padded.
//   <m>.weight_scale       F16 [out, groups]  s rounded to float16 (per
//                          channel: groups = 1).
//   <m>.weight_zero_point  I32 [ceil(out * bits / 32), groups]  asymmetric
//                          grids only: column g is the bit stream z[0][g],
//                          z[1][g], ... packed the same way along the outputs.
//   <m>.weight_shape       I64 [2]  {out, in}.
// Groups must be contiguous runs of group_size inputs (act-order with static
// groups, the default, or no act-order): the format's g_idx is not written.
//
// W8A8 ("int-quantized", the format of a stage with activations: int8 per
// channel symmetric weights, activations quantized per token at run time):
//   <m>.weight             I8  [out, in]  q = c - 128
//   <m>.weight_scale       F16 [out, 1]
// and the config group's input_activations {num_bits 8, type int, symmetric,
// strategy token, dynamic true}.
//
// FP8 ("float-quantized", any fp8 grid: E4M3 per channel, symmetric):
//   <m>.weight             F8_E4M3 [out, in]  the codes (model/fp8.h)
//   <m>.weight_scale       F16 [out, 1]  (the grid's scales are float16 already)
// with weights {type float} and, for fp8 W8A8, input_activations {num_bits 8,
// type float, symmetric, strategy token, dynamic true}.
//
// config.json's quantization_config has one config group targeting every
// Linear, with weights {num_bits, type int, symmetric, strategy group (with
// group_size) or channel}, and `ignore` naming the Linear modules left dense
// (lm_head, and any block projection the job did not quantize).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

// One layer in the pack-quantized layout (see the file comment).
struct CtPackedTensor {
  int64_t in = 0;
  int64_t out = 0;
  int64_t groups = 0;
  int bits = 0;
  bool symmetric = true;
  std::vector<int32_t> weight_packed;  // [out, ceil(in * bits / 32)]
  std::vector<uint16_t> scale;         // float16 bits, [out, groups]
  std::vector<int32_t> zero_point;     // [ceil(out * bits / 32), groups]; asymmetric only
  std::vector<int64_t> shape;          // {out, in}
  bool int_quantized = false;          // W8A8 or fp8: `weight` below instead of weight_packed
  bool fp8 = false;                    // `weight` holds E4M3 bytes (float-quantized)
  std::vector<int8_t> weight;          // [out, in], int_quantized only
};

// Packs one quantized weight. INVALID_ARGUMENT naming `name` (and the row,
// group or input where it applies) for an invalid grid, inconsistent sizes,
// in not a multiple of group_size, groups that are not contiguous (act-order
// without static groups), a code above 2^bits - 1, a zero that is not an
// integer in [0, 2^bits - 1] (or not 2^(bits-1) for a symmetric grid), or a
// scale that is not finite or overflows/underflows float16.
// `int_quantized`: the W8A8 layout (q on int8 per channel symmetric, else
// INVALID_ARGUMENT). An fp8 grid is always float-quantized (a NaN code is
// INVALID_ARGUMENT).
absl::StatusOr<CtPackedTensor> PackCompressedTensor(const QuantizedTensor& q,
                                                    absl::string_view name,
                                                    bool int_quantized = false);

// The tensors of packed layer `module`, viewing p's bytes. With empty
// vectors in p (only in, out, groups, bits, symmetric set): the names, dtypes
// and shapes, for a writer that lays out its shards first.
std::vector<TensorToWrite> CompressedTensors(const std::string& module, const CtPackedTensor& p);

// A shape-only CtPackedTensor of an [out, in] layer on `grid`.
CtPackedTensor CtShape(int64_t out, int64_t in, const QuantGrid& grid, bool int_quantized = false);

// config.json: HfLlamaConfigJson with "torch_dtype": "float16" and the
// quantization_config of the file comment; `ignore` lists the module names
// (or "re:" patterns) of the Linear layers left dense. activation_bits 8:
// the W8A8 config (format int-quantized, input_activations per token); an
// fp8 grid: format float-quantized, type float (activations too).
std::string CompressedTensorsConfigJson(const LlamaConfig& model_config, bool tied,
                                        const QuantGrid& grid,
                                        const std::vector<std::string>& ignore,
                                        int activation_bits = 0);

}  // namespace compressd::engine
