// Writes a LlamaModel as a GGUF v3 file that llama.cpp loads and runs
// (general.architecture: the family's, engine::Family::gguf_arch), and that
// workers/engine/model/gguf reads back to the same model (up to the chosen
// quantization).
//
// Per family (docs/families.md, "GGUF of the dense families" and "Mixture of
// experts"): qwen2 / qwen3 / qwen2moe / qwen3moe / olmoe / gemma2 / gemma3 /
// phi3 keep HF's q/k row order; Gemma's norms are written as 1 + w; Phi-3's
// q/k/v and gate/up are fused into attn_qkv / ffn_up and an MoE layer's
// experts stacked into ffn_{gate,up,down}_exps (TensorPlan stacks: one GGUF
// tensor from several HF ones, one type); a model llama.cpp's architecture
// would run differently is refused with UNIMPLEMENTED naming why.
//
// Tensors, in llama.cpp's names (the inverse of gguf/tensor_map.h):
// token_embd.weight, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
// ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, blk.N.attn_{q,k,v}.bias when
// the model has attention biases, output_norm.weight, output.weight (left out
// when lm_head is the embedding: LmHeadIsTied), and rope_freqs.weight for
// llama3 rope scaling. Dims are ggml's (ne[0] = in_features). The rows of
// attn_q / attn_k (and their biases) are put back in llama.cpp's rotary
// order: GGUF row g holds HF row UnpermutedRow(g, head_dim), the inverse of
// what the loader does, so GGUF -> LlamaModel -> GGUF -> LlamaModel gives the
// same floats (exactly with F32, and for grids encoded exactly).
//
// Tensor types:
//   - 1-D tensors (norms, biases, rope_freqs): F32.
//   - Targets (options.targets, plus every tensor in `quantized`): with
//     target_type "auto", a tensor in `quantized` whose grid has an exact
//     ggml type (ggml_grid_encode.h) is written from its codes; otherwise it
//     is re-quantized from the model's floats by bits (<= 4: Q4_K, 5: Q5_K,
//     6: Q6_K, else Q8_0); a target without a grid (pruned only) is F16.
//     With a named target_type, a grid that fits that type exactly is
//     encoded from its codes, anything else is quantized to it.
//   - Other 2-D weights (token_embd, an untied output): other_type ("auto":
//     Q8_0).
//   - Fallback when the type's block size does not divide the row length
//     (e.g. the k-quants' 256 on SmolLM2's 576-wide attention), as
//     llama.cpp's quantizer does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
//     and any 32-element type -> F16. The report records each fallback.
//
// Metadata: general.architecture, general.name (options.name, else the
// source's, else "compressd"), the source's other general.* keys,
// llama.{context_length, embedding_length, block_count, feed_forward_length,
// attention.head_count, attention.head_count_kv,
// attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
// vocab_size} from the LlamaConfig (plus attention.key_length/value_length
// when head_dim != hidden / n_heads), general.file_type (the llama_ftype of
// the type holding most weights), general.quantization_version = 2, and every
// tokenizer.* key of the source copied with its type. Source keys outside
// general.* and tokenizer.* (its llama.* hyperparameters, imatrix notes,
// split info) are not copied and are listed in the report.
//
// The tokenizer must come from a source GGUF: the one the model was read
// from, or for a Hugging Face model its tokenizer.json converted
// (gguf_tokenizer_source.h); without a source, UNIMPLEMENTED.
//
// The file is streamed tensor by tensor (memory: one tensor's quantized
// bytes) to a temporary file beside `out_path`, then renamed into place.
// Errors: INVALID_ARGUMENT for bad options, a model whose tensors do not
// match its config, unknown target names, a quantized tensor that does not
// match its weight (shape, or values other than its grid's), or a source
// tokenizer whose size differs from the model's vocabulary; INTERNAL naming
// the path for I/O errors. Thread-safe for distinct output paths.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/gguf/ggml_types.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

struct GgufExportOptions {
  std::string name;                  // general.name; "" keeps the source's
  // The targets' type; nullopt: "auto" (from each tensor's grid, above).
  std::optional<engine::GgmlType> target_type;
  engine::GgmlType other_type = engine::GgmlType::kQ8_0;  // other 2-D weights
  std::set<std::string> targets;     // HF names of the targeted linear weights
};

struct GgufTensorReport {
  std::string gguf_name;
  std::string hf_name;  // "" for rope_freqs.weight
  engine::GgmlType type = engine::GgmlType::kF32;
  engine::GgmlType requested = engine::GgmlType::kF32;  // before any block-size fallback
  bool exact_from_grid = false;                         // encoded from a QuantizedTensor's codes
  std::string note;  // why the type differs from the request, if it does
  uint64_t bytes = 0;
};

struct GgufExportReport {
  std::string path;
  uint64_t file_size = 0;
  uint32_t file_type = 0;  // general.file_type written (llama_ftype)
  std::vector<GgufTensorReport> tensors;
  std::vector<std::string> dropped_keys;  // source metadata keys not copied
};

// See above. `source` may be null (then UNIMPLEMENTED); `quantized` maps HF
// weight names to the grids their current floats came from.
// Whether a model of `config` can be written as a GGUF (the architectures
// and rope scalings WriteGgufLlama writes): UNIMPLEMENTED naming what is
// not, before any work.
absl::Status CheckGgufExportable(const engine::LlamaConfig& config);

absl::StatusOr<GgufExportReport> WriteGgufLlama(
    const engine::LlamaModel& model, const engine::GgufFile* source,
    const std::map<std::string, const engine::QuantizedTensor*>& quantized,
    const GgufExportOptions& options, const std::string& out_path);

}  // namespace compressd::engine
