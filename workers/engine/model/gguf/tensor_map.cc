#include "workers/engine/model/gguf/tensor_map.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "workers/engine/model/families.h"

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

std::vector<GgufMoeTensor> GgufMoeTensors(const LlamaConfig& c, int layer, BlockWeights* block) {
  std::vector<BlockPart> parts = MoeTensors(c, layer, block);
  std::vector<GgufMoeTensor> out;
  if (parts.empty()) return out;
  // MoeTensors' order: the router, each expert's gate, up, down, then the
  // shared expert's gate, up, down and its gate.
  out.push_back({"ffn_gate_inp.weight", {parts[0]}, parts[0].shape});
  const char* const kinds[] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
  for (int k = 0; k < 3; ++k) {
    GgufMoeTensor t{kinds[k], {}, {}};
    for (int e = 0; e < c.n_experts; ++e) t.parts.push_back(parts[static_cast<size_t>(1 + 3 * e + k)]);
    t.shape = t.parts[0].shape;
    t.shape.insert(t.shape.begin(), c.n_experts);
    out.push_back(std::move(t));
  }
  const size_t shared = 1 + 3 * static_cast<size_t>(c.n_experts);
  const char* const shexp[] = {"ffn_gate_shexp.weight", "ffn_up_shexp.weight",
                               "ffn_down_shexp.weight", "ffn_gate_inp_shexp.weight"};
  for (size_t k = 0; shared + k < parts.size(); ++k) {
    const BlockPart& part = parts[shared + k];
    // The shared expert's gate [1, hidden] is a vector to llama.cpp.
    std::vector<int64_t> shape = k == 3 ? std::vector<int64_t>{c.hidden} : part.shape;
    out.push_back({shexp[k], {part}, std::move(shape)});
  }
  return out;
}

const std::vector<GgufFusedTensor>& GgufFusedTensors() {
  static const std::vector<GgufFusedTensor>* fused = new std::vector<GgufFusedTensor>{
      {"attn_qkv.weight", {&BlockWeights::q_proj, &BlockWeights::k_proj, &BlockWeights::v_proj}},
      {"ffn_up.weight", {&BlockWeights::gate_proj, &BlockWeights::up_proj}},
  };
  return *fused;
}

const GgufFusedTensor* GgufFusedOf(const LlamaConfig& c, Tensor BlockWeights::*slot,
                                   size_t* index) {
  if (!c.fused_projections) return nullptr;
  for (const GgufFusedTensor& f : GgufFusedTensors()) {
    for (size_t i = 0; i < f.parts.size(); ++i) {
      if (f.parts[i] != slot) continue;
      if (index != nullptr) *index = i;
      return &f;
    }
  }
  return nullptr;
}

std::vector<int64_t> GgufFusedPartShape(const LlamaConfig& c, Tensor BlockWeights::*part) {
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (spec.slot == part) return ExpectedShape(c, spec);
  }
  return {};
}

std::vector<int64_t> GgufFusedShape(const LlamaConfig& c, const GgufFusedTensor& fused) {
  std::vector<int64_t> shape = {0, c.hidden};
  for (Tensor BlockWeights::*part : fused.parts) shape[0] += GgufFusedPartShape(c, part)[0];
  return shape;
}

float GgufGemmaQueryScalar(const LlamaConfig& c) {
  const bool is_27b = (c.model_type == "gemma2" && c.n_layers == 46) ||
                      (c.model_type == "gemma3_text" && c.n_layers == 62);
  return static_cast<float>(is_27b ? c.hidden / c.n_heads : c.head_dim);
}

std::vector<bool> GgufGemmaSlidingLayers(const LlamaConfig& c) {
  const Family* f = FindFamily(c.model_type);
  const int pattern = f != nullptr && f->default_window_pattern > 0 ? f->default_window_pattern : 1;
  std::vector<bool> out(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) out[static_cast<size_t>(l)] = l % pattern < pattern - 1;
  return out;
}

bool IsNormSpec(const BlockTensorSpec& spec) {
  return spec.slot == &BlockWeights::attn_norm || spec.slot == &BlockWeights::mlp_norm ||
         spec.slot == &BlockWeights::q_norm || spec.slot == &BlockWeights::k_norm ||
         spec.slot == &BlockWeights::attn_post_norm || spec.slot == &BlockWeights::mlp_post_norm;
}

const char* GgufArchitecture(const LlamaConfig& c) {
  const Family* f = FindFamily(c.model_type);
  return f != nullptr && f->gguf_arch != nullptr ? f->gguf_arch : "llama";
}

RowPermutation GgufPermutation(const LlamaConfig& c, const BlockTensorSpec& spec) {
  const Family* f = FindFamily(c.model_type);
  return f == nullptr || f->gguf_permutes_qk ? spec.permutation : RowPermutation::kNone;
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
