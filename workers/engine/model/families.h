// The decoder families the engine runs: one description each (docs/families.md).
//
// Every family is a Llama decoder plus a few differences, and each row of
// Families() states them: the names it has in config.json, transformers and
// llama.cpp, the fixed structure (biases, q/k norms, fused projections,
// Gemma's ops, experts), which groups of config.json fields it reads and
// writes, and its class defaults. The reader (ReadHfLlamaConfig), the
// exporters (HfLlamaConfigJson, GGUF) and the supported-type checks all read
// this table, so adding a family is a row here plus, when it brings a new
// op, that op in nn/ (see "Adding a family" in docs/families.md).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

// How a family's sliding window applies.
enum class WindowKind {
  kNone,       // none; Qwen's per-layer use_sliding_window is refused
  kAllLayers,  // sliding_window (null: none) in every layer (Mistral, Phi-3, Mixtral)
  kPattern,    // Gemma's alternating layers (layer_types or sliding_window_pattern)
};

// Which mixture-of-experts fields a family has.
enum class MoeKind {
  kDense,
  kMixtral,    // num_local_experts, block_sparse_moe.* names, always renormalised
  kQwen,       // num_experts, moe_intermediate_size, mlp_only_layers / decoder_sparse_step
  kQwenShared, // kQwen plus a shared expert (Qwen2-MoE)
  kOlmoe,      // num_experts, experts as wide as intermediate_size
};

// Whether a family's q/k/v projections carry biases.
enum class QkvBias { kNever, kAlways, kOptional /* config.json's qkv_bias, default true */ };

struct Family {
  const char* model_type;   // config.json's model_type
  const char* hf_class;     // transformers' *ForCausalLM written on export
  const char* export_type;  // model_type written on export (SmolLM's is Llama's)
  // llama.cpp's general.architecture, or nullptr (no GGUF in or out), and
  // whether llama.cpp stores its q/k rows in its rotary order (llama only).
  const char* gguf_arch;
  bool gguf_permutes_qk;
  // llama.cpp's arch renormalises the top-k routing weights (norm_topk_prob
  // must then be true, else false, for its GGUF to give the model's output).
  bool gguf_norm_topk;
  QkvBias qkv_bias;
  bool qk_norm;            // per-head q/k RMSNorm (Qwen3, Gemma 3)
  bool qk_norm_whole;      // q/k RMSNorm over the whole projection (OLMoE)
  bool fused_projections;  // Phi-3's qkv_proj and gate_up_proj
  bool gemma;              // (1 + w) norms, GeGLU, sandwich norms, scaled embeddings, soft-capping
  bool gemma3;             // Gemma 3: local and global rope thetas
  WindowKind window;
  MoeKind moe;
  // Class defaults where config.json is silent.
  int default_head_dim;            // 0: hidden_size / num_attention_heads
  int default_max_position;
  int default_window_pattern;      // kPattern: every n-th layer is global
  float default_attn_softcap;      // gemma: 0 none
  float default_final_softcap;
  bool default_tied;               // tie_word_embeddings when absent
};

// Every supported family, in model_type order.
const std::vector<Family>& Families();
// The row of `model_type`, or nullptr.
const Family* FindFamily(absl::string_view model_type);
// The row for llama.cpp's `arch`, or nullptr.
const Family* FindGgufFamily(absl::string_view arch);
// "gemma2, gemma3_text, ..." for error messages.
std::string SupportedModelTypes();

// The row of `c.model_type`, after checking that the config has exactly the
// structure that family fixes (an exporter would otherwise write a class
// without, say, its q/k norms): INVALID_ARGUMENT naming what differs.
absl::StatusOr<const Family*> FamilyOf(const LlamaConfig& c);

// Sets the structure `f` fixes on `c` (the flags FamilyOf checks).
void ApplyFamily(const Family& f, LlamaConfig* c);

}  // namespace compressd::engine
