// Writes a quantized LlamaModel as a Hugging Face GPTQ checkpoint: the layout
// that transformers (through optimum + GPTQModel), GPTQModel itself and vLLM
// load ("quant_method": "gptq").
//
// Layout of one quantized linear layer `<m>` (weight [out, in], codes c[o][i],
// per-(o, group) scale s and integer zero z; value = s * (c - z)):
//   <m>.qweight  I32 [in * bits / 32, out]  codes packed along the INPUT
//                dimension: column o is the bit stream c[o][0], c[o][1], ...
//                of `bits` bits each, lowest bits first, cut into 32-bit
//                words (word k holds stream bits [32k, 32k + 32)). For 2, 4
//                and 8 bits a word holds 32 / bits whole codes; for 3 bits
//                one code in every 32 / 3 straddles two words, exactly as
//                AutoGPTQ packs 32 inputs into 3 words.
//   <m>.qzeros   I32 [groups, out * bits / 32]  zero points, packed the same
//                way along the OUTPUT dimension. checkpoint_format "gptq" (v1,
//                the default, AutoGPTQ's format) stores z - 1 and readers add
//                1 back (vLLM: zero_offset 1; GPTQModel: adds 0x11111111 to
//                the packed words for 4 bits); a zero point of 0 cannot be
//                stored (it would wrap and carry into its neighbour) and is
//                INVALID_ARGUMENT. "gptq_v2" stores z itself.
//   <m>.scales   F16 [groups, out]  s rounded to float16 (nearest even).
//   <m>.g_idx    I32 [in]  group of each input column (act-order permutes
//                them; per-channel: all 0, the group size being `in`).
// Readers dequantize w[o][i] = scales[g][o] * (c[o][i] - z[g][o]) with
// g = g_idx[i]: exactly the engine's scale * (code - zero) except that the
// scale is the float16 rounding of ours (relative error <= 2^-11, so each
// weight moves by at most |code - zero| * s * 2^-11); Stats reports the max.
//
// Everything else (embeddings, norms, biases, lm_head unless tied, and
// linear layers that are not quantized) is written dense as F16 under its HF
// name; config.json is HfLlamaConfigJson with "torch_dtype": "float16" and
// one "quantization_config" {quant_method, bits, group_size, desc_act, sym,
// checkpoint_format/format, true_sequential, damp_percent, static_groups,
// lm_head: false, pack_dtype: "int32", modules_in_block_to_quantize}. So:
//   - every quantized tensor must share bits, group_size and symmetric;
//   - only decoder-block projections (model.layers.N.{self_attn,mlp}.*_proj)
//     can be quantized (GPTQ's loaders replace Linear modules inside blocks);
//   - modules_in_block_to_quantize (honoured by optimum and vLLM) names the
//     quantized projections relative to a block and applies to EVERY block,
//     so each block must quantize the same set; per-layer differences would
//     need GPTQModel's "dynamic" rules, which transformers' loader ignores,
//     and are rejected. (vLLM additionally fuses q/k/v and gate/up and wants
//     those shards all quantized or all dense.)
//   - sym=true readers (e.g. Marlin) assume zero 2^(bits-1): a symmetric grid
//     must have exactly that zero everywhere.
// in * bits and out * bits must be multiples of 32 (whole int32 words), and
// in a multiple of group_size: the format could hold a partial last group,
// but GPTQModel's CPU kernel, vLLM, ExLlama and Marlin refuse one (e.g.
// SmolLM2's 576 inputs with group 128), so it is rejected here.
//
// Stateless; thread-safe for distinct output directories.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

enum class GptqCheckpointFormat {
  kGptq,    // "gptq" (v1): qzeros hold zero - 1
  kGptqV2,  // "gptq_v2": qzeros hold zero
};

// Which packed checkpoint: GPTQ's (this file's layout) or compressed-tensors'
// pack-quantized (compressed_tensors_export.h).
enum class PackedLayout {
  kGptq,
  kCompressedTensors,
};

struct GptqExportOptions {
  PackedLayout layout = PackedLayout::kGptq;
  GptqCheckpointFormat format = GptqCheckpointFormat::kGptq;  // kGptq layout only
  // Recorded in quantization_config only (they describe how the solver ran).
  double damp_percent = 0.01;
  bool true_sequential = true;
  // kCompressedTensors: 8 for W8A8 (activations quantized per token at run
  // time; the int-quantized layout); 0: weight-only.
  int activation_bits = 0;
};

// One layer in the GPTQ layout (see the file comment).
struct GptqPackedTensor {
  int64_t in = 0;
  int64_t out = 0;
  int64_t groups = 0;
  int bits = 0;
  std::vector<int32_t> qweight;  // [in * bits / 32, out]
  std::vector<int32_t> qzeros;   // [groups, out * bits / 32]
  std::vector<uint16_t> scales;  // float16 bits, [groups, out]
  std::vector<int32_t> g_idx;    // [in]
  bool act_order = false;        // g_idx differs from i / group_size
};

// Packs one quantized weight. INVALID_ARGUMENT naming `name` (and the row or
// group where it applies) for bits other than 2, 3, 4, 8, inconsistent sizes,
// in/out not filling whole words, in not a multiple of group_size, a code
// above 2^bits - 1, a group index out of range, a zero that is not an integer
// in [0, 2^bits - 1] (or 0 for v1, or not 2^(bits-1) for a symmetric grid),
// or a scale that is not finite or overflows/underflows float16.
absl::StatusOr<GptqPackedTensor> PackGptqTensor(const engine::QuantizedTensor& q,
                                                GptqCheckpointFormat format,
                                                absl::string_view name);

struct GptqExportStats {
  int quantized_tensors = 0;
  int dense_tensors = 0;
  bool desc_act = false;
  // max over quantized weights of |float16(scale) * (code - zero) - w| where
  // w is the model's float weight (0 up to the float16 scale rounding when
  // the model holds the dequantized values).
  double max_abs_diff = 0.0;
};

// Creates `out_dir` and writes config.json and model.safetensors. `quantized`
// maps HF weight names ("model.layers.0.self_attn.q_proj.weight") to their
// quantized form; the model supplies every other tensor (and the reference
// weights for Stats). INVALID_ARGUMENT for an empty map, a name that is not
// a decoder-block projection of the model, a shape that differs from the
// model's, mixed grids (naming the first tensor that differs), blocks that
// quantize different projection sets, a model value that overflows float16,
// or any PackGptqTensor error; UNIMPLEMENTED as WriteHfLlama; INTERNAL for
// I/O errors.
absl::StatusOr<GptqExportStats> WriteGptqLlama(
    engine::LlamaModel& model,
    const std::map<std::string, const engine::QuantizedTensor*>& quantized,
    const std::string& out_dir, const GptqExportOptions& options = {});

}  // namespace compressd::engine
