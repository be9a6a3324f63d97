// The tensors of a Llama-family model and where each lives: its GGUF name
// (llama.cpp), its Hugging Face name, its slot in LlamaModel, and its shape
// in HF orientation ([out_features, in_features]) derived from the config.
// Shared by the GGUF and HF loaders so both check the same shapes.
//
// Also the config sanity check both loaders apply before sizing anything.
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

// llama.cpp's rotary permutation of attention rows (see gguf_model.h).
enum class RowPermutation { kNone, kQuery, kKey };

struct BlockTensorSpec {
  const char* gguf_suffix;  // "attn_q.weight" in "blk.N.attn_q.weight"
  const char* hf_suffix;    // "self_attn.q_proj.weight" in "model.layers.N.self_attn.q_proj.weight"
  Tensor BlockWeights::*slot;
  RowPermutation permutation;  // how llama.cpp reorders its rows
  bool is_bias;                // present iff config.attention_bias
  bool is_qk_norm = false;     // present iff config.qk_norm (Qwen3, Gemma 3)
  bool is_sandwich_norm = false;         // present iff config.sandwich_norms (Gemma)
  const char* sandwich_hf_suffix = nullptr;  // its HF name under sandwich norms, if other
};

// Whether a model of `config` has the tensor (biases and q/k norms are per family).
inline bool HasTensor(const LlamaConfig& config, const BlockTensorSpec& spec) {
  return (!spec.is_bias || config.attention_bias) && (!spec.is_qk_norm || config.qk_norm) &&
         (!spec.is_sandwich_norm || config.sandwich_norms);
}

// The same for block `layer`: an MoE layer (LayerIsMoe) has experts instead
// of the dense gate/up/down_proj (MoeTensors lists them).
inline bool HasTensor(const LlamaConfig& config, const BlockTensorSpec& spec, int layer) {
  const bool dense_mlp = spec.slot == &BlockWeights::gate_proj ||
                         spec.slot == &BlockWeights::up_proj || spec.slot == &BlockWeights::down_proj;
  return HasTensor(config, spec) && !(dense_mlp && LayerIsMoe(config, layer));
}

// The tensor's HF name suffix under `config`: Gemma calls the norm before the
// MLP pre_feedforward_layernorm, and post_attention_layernorm is the one on
// the attention's output.
inline const char* HfSuffix(const LlamaConfig& config, const BlockTensorSpec& spec) {
  return config.sandwich_norms && spec.sandwich_hf_suffix != nullptr ? spec.sandwich_hf_suffix
                                                                     : spec.hf_suffix;
}

// The per-block tensors, weights first, then the q/k/v biases, the q/k norms
// and Gemma's norms after attention and the MLP.
const std::vector<BlockTensorSpec>& BlockTensorSpecs();

// Every tensor a checkpoint of `config` stores for block `layer`: the specs
// the layer has (HasTensor), then its experts (MoeTensors), each with its HF
// suffix, shape and slot in `block` (null when `block` is).
std::vector<BlockPart> LayerTensors(const LlamaConfig& config, int layer, BlockWeights* block);

// One GGUF tensor of an MoE layer (llama.cpp's names): the router
// (ffn_gate_inp), each projection of all experts stacked into one 3-D tensor
// (ffn_gate_exps / ffn_up_exps / ffn_down_exps, HF shape [n_experts, out,
// in]: the experts' matrices back to back), and Qwen2-MoE's shared expert
// (ffn_*_shexp) and its gate (ffn_gate_inp_shexp).
struct GgufMoeTensor {
  std::string gguf_suffix;       // "ffn_gate_exps.weight" in "blk.N.ffn_gate_exps.weight"
  std::vector<BlockPart> parts;  // the HF tensors it holds, in order (one unless stacked)
  // The GGUF tensor's shape in HF order: parts[0]'s, with n_experts in front when stacked.
  std::vector<int64_t> shape;
};
// Layer `layer`'s (none for a dense layer), with the slots of `block` when given.
std::vector<GgufMoeTensor> GgufMoeTensors(const LlamaConfig& config, int layer, BlockWeights* block);

// Phi-3's fused projections as llama.cpp stores them (config.fused_projections):
// attn_qkv holds q, k and v's rows, ffn_up gate's then up's.
struct GgufFusedTensor {
  const char* gguf_suffix;
  std::vector<Tensor BlockWeights::*> parts;
};
const std::vector<GgufFusedTensor>& GgufFusedTensors();
// The fused tensor holding `slot` under `config` (null when none) and the
// slot's index in it.
const GgufFusedTensor* GgufFusedOf(const LlamaConfig& config, Tensor BlockWeights::*slot,
                                   size_t* index);
// The HF shape of the fused tensor (its parts' rows stacked), and of one part.
std::vector<int64_t> GgufFusedShape(const LlamaConfig& config, const GgufFusedTensor& fused);
std::vector<int64_t> GgufFusedPartShape(const LlamaConfig& config, Tensor BlockWeights::*part);

// What llama.cpp's gemma2 / gemma3 fix rather than read: the attention
// scale's query_pre_attn_scalar (head_dim, or hidden / heads for the 27B
// models, which it tells apart by their layer count: 46 and 62) and which
// layers attend through the window (all but every pattern-th: 2 for gemma2,
// 6 for gemma3, the family's default_window_pattern).
float GgufGemmaQueryScalar(const LlamaConfig& config);
std::vector<bool> GgufGemmaSlidingLayers(const LlamaConfig& config);
// Whether `spec` is an RMSNorm weight (Gemma's are stored as w - 1 in HF
// checkpoints and as 1 + w in GGUF).
bool IsNormSpec(const BlockTensorSpec& spec);

// llama.cpp's architecture for a model of `config` (general.architecture
// and its keys' prefix): its family's gguf_arch (families.h), "llama" for a
// family without one (whose GGUF export is refused).
const char* GgufArchitecture(const LlamaConfig& config);
// How such a file orders `spec`'s rows: spec.permutation where the family's
// GGUF permutes q/k into llama.cpp's rotary layout (llama), else HF order.
RowPermutation GgufPermutation(const LlamaConfig& config, const BlockTensorSpec& spec);

// The HF shape of a block tensor under `config`.
std::vector<int64_t> ExpectedShape(const LlamaConfig& config, const BlockTensorSpec& spec);

// Checks the sizes are positive and plausible (each below 2^24, at most 4096
// layers, so shape products cannot overflow), heads divide evenly (n_kv_heads
// divides n_heads) and head_dim is even. INVALID_ARGUMENT naming `what` and
// the field.
absl::Status ValidateLlamaConfig(const LlamaConfig& config, const std::string& what);

// "[576, 192]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace compressd::engine
