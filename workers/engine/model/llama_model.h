// The in-memory form of a Llama-family decoder that every engine component
// shares (forward pass, calibration, compression, export). Loaders
// (HF safetensors, GGUF) produce it; weights are float32, row-major, in
// Hugging Face orientation: a linear layer's weight is [out_features,
// in_features] and computes y = W x (+ b). Q/K rows are in HF order (the
// loader undoes llama.cpp's rotary permutation).
//
// A Tensor either points into a memory-mapped file (F32 on disk: no copy) or
// owns a buffer (dequantized or converted data, or compressed weights); the
// `owner` keeps either alive. Tensors are immutable once built: compression
// replaces a block's tensor with a new owned one. Not thread-safe to mutate;
// safe to read from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace compressd::engine {

struct RopeScaling {
  std::string type;  // "" (none), "llama3" or "longrope" (Phi-3)
  float factor = 1.0f;
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_max_position_embeddings = 8192;
  // longrope: per-frequency divisors of inv_freq (rotary_dims / 2 each): the
  // short ones while a sequence fits original_max_position_embeddings, the
  // long ones past it; cos and sin are scaled by attention_factor.
  std::vector<float> short_factor, long_factor;
  float attention_factor = 1.0f;
};

struct LlamaConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", ...
  int n_layers = 0;
  int hidden = 0;
  int intermediate = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;  // hidden / n_heads unless the config says otherwise
  int vocab = 0;
  int max_position = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2)
  bool qk_norm = false;         // RMSNorm of each head's q and k before RoPE (Qwen3)
  int sliding_window = 0;       // every layer attends to this many positions (Mistral); 0: all
  int rotary_dims = 0;          // leading dims of a head that RoPE rotates; 0: all (head_dim)
  // Phi-3 stores q/k/v as one qkv_proj and gate/up as one gate_up_proj; the
  // model keeps them apart (loaders split, exporters fuse them again).
  bool fused_projections = false;
  // Gemma 2 / 3 (docs/families.md).
  bool norm_offset = false;       // RMSNorm weights are stored as w - 1: y = norm(x) * (1 + w)
  bool gelu_gate = false;         // MLP gate is GELU (tanh approximation), not SiLU
  bool sandwich_norms = false;    // also a norm on the attention and on the MLP output
  bool scale_embeddings = false;  // hidden = embedding * sqrt(hidden)
  float query_pre_attn_scalar = 0;  // attention scale is its -1/2 power; 0: head_dim
  float attn_softcap = 0;           // scores = cap * tanh(scores / cap); 0: none
  float final_softcap = 0;          // the same on the logits
  // Per layer: whether it attends through sliding_window (Gemma's alternating
  // layers). Empty: every layer does when sliding_window > 0 (Mistral).
  std::vector<bool> sliding_layers;
  float local_rope_theta = 0;  // Gemma 3: windowed layers' theta, unscaled; 0: as the others
  // OLMoE: q_norm / k_norm normalise the whole q / k projection ([n_heads *
  // head_dim], [n_kv_heads * head_dim]) rather than each head (with qk_norm).
  bool qk_norm_whole = false;
  // Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE; docs/families.md).
  // In an MoE layer the MLP is a router [n_experts, hidden] and n_experts
  // SwiGLU experts of width expert_intermediate; each token goes to the
  // experts_per_token experts with the highest softmax(router) probabilities,
  // weighted by those probabilities (renormalised to sum 1 if norm_topk_prob).
  int n_experts = 0;  // 0: a dense model
  int experts_per_token = 0;
  int expert_intermediate = 0;
  bool norm_topk_prob = false;
  // Qwen2-MoE: a shared expert of this width every token goes through, its
  // output scaled by sigmoid(shared_expert_gate(x)); 0: none.
  int shared_expert_intermediate = 0;
  // Per layer: whether its MLP is the experts (Qwen-MoE's mlp_only_layers /
  // decoder_sparse_step); empty: every layer when n_experts > 0.
  std::vector<bool> moe_layers;
  // Mixtral names its experts "block_sparse_moe.experts.N.w1/w3/w2" (gate, up,
  // down) and its router "block_sparse_moe.gate"; the others
  // "mlp.experts.N.gate_proj/up_proj/down_proj" and "mlp.gate".
  bool mixtral_names = false;
  int bos_token_id = -1;
  int eos_token_id = -1;
};

// Whether layer `layer` attends through the sliding window.
inline bool LayerIsWindowed(const LlamaConfig& c, int layer) {
  if (c.sliding_window <= 0) return false;
  if (c.sliding_layers.empty()) return true;
  return layer >= 0 && layer < static_cast<int>(c.sliding_layers.size()) &&
         c.sliding_layers[static_cast<size_t>(layer)];
}

// Whether layer `layer`'s MLP is a mixture of experts.
inline bool LayerIsMoe(const LlamaConfig& c, int layer) {
  if (c.n_experts <= 0) return false;
  if (c.moe_layers.empty()) return true;
  return layer >= 0 && layer < static_cast<int>(c.moe_layers.size()) &&
         c.moe_layers[static_cast<size_t>(layer)];
}

// The dims RoPE rotates in each head.
inline int RotaryDims(const LlamaConfig& c) { return c.rotary_dims > 0 ? c.rotary_dims : c.head_dim; }

struct Tensor {
  std::vector<int64_t> shape;
  const float* data = nullptr;
  std::shared_ptr<const void> owner;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
  }
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t cols() const { return shape.size() < 2 ? 1 : shape[1]; }

  // A tensor owning `values` (moved in).
  static Tensor Owned(std::vector<int64_t> shape, std::vector<float> values) {
    auto buf = std::make_shared<std::vector<float>>(std::move(values));
    Tensor t;
    t.shape = std::move(shape);
    t.data = buf->data();
    t.owner = buf;
    return t;
  }
};

// One SwiGLU (GeGLU for Gemma) MLP: an expert, or Qwen2-MoE's shared expert.
struct ExpertWeights {
  Tensor gate_proj, up_proj;  // [width, hidden]
  Tensor down_proj;           // [hidden, width]
};

// W8A8 (recipe ActivationQuantSpec): which linears of a block quantize their
// input per token to int8 (or fp8) at run time (Backend::QuantizeActivations).
enum ActQuant : uint32_t {
  kActQProj = 1u << 0,
  kActKProj = 1u << 1,
  kActVProj = 1u << 2,
  kActOProj = 1u << 3,
  kActGateProj = 1u << 4,
  kActUpProj = 1u << 5,
  kActDownProj = 1u << 6,
  kActRouter = 1u << 7,
  kActExperts = 1u << 8,       // every routed expert's gate/up/down_proj
  kActSharedExpert = 1u << 9,  // the shared expert's gate/up/down_proj
  kActSharedExpertGate = 1u << 10,
};

// One decoder block. Biases are empty unless config.attention_bias.
struct BlockWeights {
  Tensor attn_norm;                       // [hidden]
  Tensor q_proj, k_proj, v_proj, o_proj;  // [n_heads*hd, hidden], [n_kv*hd, hidden] x2, [hidden, n_heads*hd]
  Tensor q_bias, k_bias, v_bias;
  Tensor q_norm, k_norm;                  // [head_dim], only with config.qk_norm
  Tensor mlp_norm;                        // [hidden]
  Tensor gate_proj, up_proj;              // [intermediate, hidden]
  Tensor down_proj;                       // [hidden, intermediate]
  Tensor attn_post_norm, mlp_post_norm;   // [hidden], only with config.sandwich_norms
  // An MoE layer (LayerIsMoe) has these instead of gate/up/down_proj.
  Tensor router;                          // [n_experts, hidden]
  std::vector<ExpertWeights> experts;     // n_experts of width expert_intermediate
  ExpertWeights shared_expert;            // width shared_expert_intermediate, if any
  Tensor shared_expert_gate;              // [1, hidden], with the shared expert
  // Which layer this is (loaders set it): the per-layer attention of Gemma
  // and the per-layer MLPs of Qwen-MoE depend on it; -1 where no config needs it.
  int layer = -1;
  // ActQuant bits: set once the block's linears are W8A8 (0: none).
  uint32_t act_quant = 0;
  // Their inputs are quantized to FP8 E4M3 instead of int8 (fp8 W8A8).
  bool act_fp8 = false;
};

struct LlamaModel {
  LlamaConfig config;
  Tensor embed_tokens;  // [vocab, hidden]
  std::vector<BlockWeights> blocks;
  Tensor final_norm;    // [hidden]
  Tensor lm_head;       // [vocab, hidden]; shares embed_tokens' data when tied
};

}  // namespace compressd::engine
