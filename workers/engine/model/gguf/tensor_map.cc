#include "workers/engine/model/gguf/tensor_map.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace compressd::engine {

const std::vector<BlockTensorSpec>& BlockTensorSpecs() {
  static const std::vector<BlockTensorSpec>* specs = new std::vector<BlockTensorSpec>{
      {"attn_norm.weight", "input_layernorm.weight", &BlockWeights::attn_norm,
       RowPermutation::kNone, false},
      {"attn_q.weight", "self_attn.q_proj.weight", &BlockWeights::q_proj, RowPermutation::kQuery,
       false},
      {"attn_k.weight", "self_attn.k_proj.weight", &BlockWeights::k_proj, RowPermutation::kKey,
       false},
      {"attn_v.weight", "self_attn.v_proj.weight", &BlockWeights::v_proj, RowPermutation::kNone,
       false},
      {"attn_output.weight", "self_attn.o_proj.weight", &BlockWeights::o_proj,
       RowPermutation::kNone, false},
      {"ffn_norm.weight", "post_attention_layernorm.weight", &BlockWeights::mlp_norm,
       RowPermutation::kNone, false, false, false, "pre_feedforward_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight", &BlockWeights::gate_proj, RowPermutation::kNone,
       false},
      {"ffn_up.weight", "mlp.up_proj.weight", &BlockWeights::up_proj, RowPermutation::kNone, false},
      {"ffn_down.weight", "mlp.down_proj.weight", &BlockWeights::down_proj, RowPermutation::kNone,
       false},
      {"attn_q.bias", "self_attn.q_proj.bias", &BlockWeights::q_bias, RowPermutation::kQuery, true},
      {"attn_k.bias", "self_attn.k_proj.bias", &BlockWeights::k_bias, RowPermutation::kKey, true},
      {"attn_v.bias", "self_attn.v_proj.bias", &BlockWeights::v_bias, RowPermutation::kNone, true},
      {"attn_q_norm.weight", "self_attn.q_norm.weight", &BlockWeights::q_norm,
       RowPermutation::kNone, false, true},
      {"attn_k_norm.weight", "self_attn.k_norm.weight", &BlockWeights::k_norm,
       RowPermutation::kNone, false, true},
      {"post_attention_norm.weight", "post_attention_layernorm.weight",
       &BlockWeights::attn_post_norm, RowPermutation::kNone, false, false, true},
      {"post_ffw_norm.weight", "post_feedforward_layernorm.weight", &BlockWeights::mlp_post_norm,
       RowPermutation::kNone, false, false, true},
  };
  return *specs;
}

const char* GgufArchitecture(const LlamaConfig& c) {
  if (c.model_type == "qwen2") return "qwen2";
  if (c.model_type == "qwen3") return "qwen3";
  return "llama";
}

std::vector<BlockPart> LayerTensors(const LlamaConfig& c, int layer, BlockWeights* block) {
  std::vector<BlockPart> out;
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (!HasTensor(c, spec, layer)) continue;
    out.push_back({HfSuffix(c, spec), ExpectedShape(c, spec),
                   block != nullptr ? &(block->*spec.slot) : nullptr});
  }
  for (BlockPart& m : MoeTensors(c, layer, block)) out.push_back(std::move(m));
  return out;
}

std::vector<int64_t> ExpectedShape(const LlamaConfig& c, const BlockTensorSpec& spec) {
  const int64_t hidden = c.hidden, inter = c.intermediate;
  const int64_t q_out = int64_t{c.n_heads} * c.head_dim,
                kv_out = int64_t{c.n_kv_heads} * c.head_dim;
  const Tensor BlockWeights::*slot = spec.slot;
  if (slot == &BlockWeights::attn_norm || slot == &BlockWeights::mlp_norm ||
      slot == &BlockWeights::attn_post_norm || slot == &BlockWeights::mlp_post_norm) {
    return {hidden};
  }
  if (slot == &BlockWeights::q_proj) return {q_out, hidden};
  if (slot == &BlockWeights::k_proj || slot == &BlockWeights::v_proj) return {kv_out, hidden};
  if (slot == &BlockWeights::o_proj) return {hidden, q_out};
  if (slot == &BlockWeights::gate_proj || slot == &BlockWeights::up_proj) return {inter, hidden};
  if (slot == &BlockWeights::down_proj) return {hidden, inter};
  if (slot == &BlockWeights::q_bias) return {q_out};
  if (slot == &BlockWeights::q_norm || slot == &BlockWeights::k_norm) {
    if (!c.qk_norm_whole) return {c.head_dim};
    return {slot == &BlockWeights::q_norm ? q_out : kv_out};  // OLMoE: the whole projection
  }
  return {kv_out};  // k_bias, v_bias
}

absl::Status ValidateLlamaConfig(const LlamaConfig& c, const std::string& what) {
  constexpr int kMaxDim = 1 << 24;
  constexpr int kMaxLayers = 4096;
  const struct {
    const char* name;
    int value;
    int max;
  } fields[] = {
      {"n_layers", c.n_layers, kMaxLayers},
      {"hidden", c.hidden, kMaxDim},
      {"intermediate", c.intermediate, kMaxDim},
      {"n_heads", c.n_heads, kMaxDim},
      {"n_kv_heads", c.n_kv_heads, kMaxDim},
      {"head_dim", c.head_dim, kMaxDim},
      {"vocab", c.vocab, kMaxDim},
  };
  for (const auto& f : fields) {
    if (f.value <= 0 || f.value > f.max) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": config ", f.name, " = ", f.value, " outside [1, ", f.max, "]"));
    }
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": config n_kv_heads = ", c.n_kv_heads,
                                                   " does not divide n_heads = ", c.n_heads));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": config head_dim = ", c.head_dim, " is odd"));
  }
  if (!(c.rms_norm_eps > 0.0f) || !(c.rope_theta > 0.0f)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": config rms_norm_eps = ", c.rms_norm_eps,
                                                   " and rope_theta = ", c.rope_theta,
                                                   " must be positive"));
  }
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace compressd::engine
