#include "workers/engine/model/families.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace compressd::engine {
namespace {

// A Llama-shaped row; the table below states each family's differences.
constexpr Family Llama(const char* model_type, const char* hf_class, const char* export_type) {
  return Family{model_type, hf_class, export_type, "llama", true, false, QkvBias::kNever,
                false, false, false, false, false, WindowKind::kNone, MoeKind::kDense,
                0, 2048, 0, 0, 0, false};
}

void AddMoeFamilies(std::vector<Family>* out);

std::vector<Family> MakeFamilies() {
  std::vector<Family> f;
  // Llama 2/3/3.1/3.2 (rope scalings llama3, linear), SmolLM.
  f.push_back(Llama("llama", "LlamaForCausalLM", "llama"));
  f.push_back(Llama("smollm", "LlamaForCausalLM", "llama"));
  // Mistral: one sliding window for every layer. llama.cpp reads it as llama
  // without the window, so a windowed Mistral is not written as GGUF.
  Family mistral = Llama("mistral", "MistralForCausalLM", "mistral");
  mistral.window = WindowKind::kAllLayers;
  f.push_back(mistral);
  // Qwen2 / Qwen2.5: q/k/v biases; llama.cpp's qwen2 keeps HF's row order.
  Family qwen2 = Llama("qwen2", "Qwen2ForCausalLM", "qwen2");
  qwen2.gguf_arch = "qwen2";
  qwen2.gguf_permutes_qk = false;
  qwen2.qkv_bias = QkvBias::kAlways;
  f.push_back(qwen2);
  // Qwen3: RMSNorm of each head's q and k before RoPE.
  Family qwen3 = Llama("qwen3", "Qwen3ForCausalLM", "qwen3");
  qwen3.gguf_arch = "qwen3";
  qwen3.gguf_permutes_qk = false;
  qwen3.qk_norm = true;
  f.push_back(qwen3);
  // Phi-3 / 3.5 / 4: fused qkv_proj and gate_up_proj, longrope, partial rotary.
  Family phi3 = Llama("phi3", "Phi3ForCausalLM", "phi3");
  phi3.gguf_arch = "phi3";
  phi3.gguf_permutes_qk = false;
  phi3.fused_projections = true;  // its rope type "su" / "yarn" is longrope
  phi3.window = WindowKind::kAllLayers;
  f.push_back(phi3);
  // Gemma 2: (1 + w) norms, GeGLU, sandwich norms, scaled embeddings,
  // attention and logit soft-capping, every other layer windowed.
  Family gemma2 = Llama("gemma2", "Gemma2ForCausalLM", "gemma2");
  gemma2.gguf_arch = "gemma2";
  gemma2.gguf_permutes_qk = false;
  gemma2.gemma = true;
  gemma2.window = WindowKind::kPattern;
  gemma2.default_head_dim = 256;
  gemma2.default_max_position = 8192;
  gemma2.default_window_pattern = 2;
  gemma2.default_attn_softcap = 50;
  gemma2.default_final_softcap = 30;
  gemma2.default_tied = true;
  f.push_back(gemma2);
  // Gemma 3 (text): Gemma 2 plus per-head q/k norms, no soft-capping by
  // default, five windowed layers in six, a local rope theta.
  Family gemma3 = gemma2;
  gemma3.model_type = gemma3.export_type = "gemma3_text";
  gemma3.hf_class = "Gemma3ForCausalLM";
  gemma3.gguf_arch = "gemma3";
  gemma3.qk_norm = gemma3.gemma3 = true;
  gemma3.default_window_pattern = 6;
  gemma3.default_attn_softcap = gemma3.default_final_softcap = 0;
  f.push_back(gemma3);
  AddMoeFamilies(&f);
  return f;
}

// The mixtures of experts.
void AddMoeFamilies(std::vector<Family>* out) {
  std::vector<Family>& f = *out;
  // Mixtral: 8 experts named block_sparse_moe.experts.N.w1/w3/w2, Mistral's window.
  // llama.cpp reads it as llama with experts (llama.expert_count).
  Family mixtral = Llama("mixtral", "MixtralForCausalLM", "mixtral");
  mixtral.gguf_norm_topk = true;
  mixtral.moe = MoeKind::kMixtral;
  mixtral.window = WindowKind::kAllLayers;
  f.push_back(mixtral);
  // Qwen2-MoE: Qwen2 plus experts and a gated shared expert.
  Family qwen2_moe = Llama("qwen2_moe", "Qwen2MoeForCausalLM", "qwen2_moe");
  qwen2_moe.gguf_arch = "qwen2moe";
  qwen2_moe.gguf_permutes_qk = false;
  qwen2_moe.qkv_bias = QkvBias::kOptional;
  qwen2_moe.moe = MoeKind::kQwenShared;
  f.push_back(qwen2_moe);
  // Qwen3-MoE: Qwen3 plus experts.
  Family qwen3_moe = Llama("qwen3_moe", "Qwen3MoeForCausalLM", "qwen3_moe");
  qwen3_moe.gguf_arch = "qwen3moe";
  qwen3_moe.gguf_permutes_qk = false;
  qwen3_moe.gguf_norm_topk = true;
  qwen3_moe.qk_norm = true;
  qwen3_moe.moe = MoeKind::kQwen;
  f.push_back(qwen3_moe);
  // OLMoE: experts, q/k norms over the whole projection.
  Family olmoe = Llama("olmoe", "OlmoeForCausalLM", "olmoe");
  olmoe.gguf_arch = "olmoe";
  olmoe.gguf_permutes_qk = false;
  olmoe.qk_norm = olmoe.qk_norm_whole = true;
  olmoe.moe = MoeKind::kOlmoe;
  f.push_back(olmoe);
}

}  // namespace

const std::vector<Family>& Families() {
  static const std::vector<Family>* families = new std::vector<Family>(MakeFamilies());
  return *families;
}

const Family* FindFamily(absl::string_view model_type) {
  for (const Family& f : Families()) {
    if (model_type == f.model_type) return &f;
  }
  return nullptr;
}

const Family* FindGgufFamily(absl::string_view arch) {
  for (const Family& f : Families()) {  // the first row of an arch is its family (llama)
    if (f.gguf_arch != nullptr && arch == f.gguf_arch) return &f;
  }
  return nullptr;
}

std::string SupportedModelTypes() {
  std::vector<std::string> names;
  for (const Family& f : Families()) names.emplace_back(f.model_type);
  std::sort(names.begin(), names.end());
  return absl::StrJoin(names, ", ");
}

void ApplyFamily(const Family& f, LlamaConfig* c) {
  c->attention_bias = f.qkv_bias != QkvBias::kNever;
  c->qk_norm = f.qk_norm;
  c->qk_norm_whole = f.qk_norm_whole;
  c->fused_projections = f.fused_projections;
  c->norm_offset = c->gelu_gate = c->sandwich_norms = c->scale_embeddings = f.gemma;
  c->mixtral_names = f.moe == MoeKind::kMixtral;
}

absl::StatusOr<const Family*> FamilyOf(const LlamaConfig& c) {
  const Family* f = FindFamily(c.model_type);
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model_type \"", c.model_type,
                                                   "\" is not a supported family (supported: ",
                                                   SupportedModelTypes(), ")"));
  }
  std::vector<std::string> differ;
  auto expect = [&](bool has, bool want, const char* what) {
    if (has != want) differ.push_back(absl::StrCat(what, has ? " (the model has them)" : " (missing)"));
  };
  if (f->qkv_bias != QkvBias::kOptional)
    expect(c.attention_bias, f->qkv_bias == QkvBias::kAlways, "q/k/v biases");
  expect(c.qk_norm, f->qk_norm, "q/k norms");
  expect(c.qk_norm_whole, f->qk_norm_whole, "whole-projection q/k norms");
  expect(c.fused_projections, f->fused_projections, "fused projections");
  expect(c.sandwich_norms, f->gemma, "Gemma's norms");
  expect(c.n_experts > 0, f->moe != MoeKind::kDense, "experts");
  if (!differ.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model_type \"", c.model_type, "\" does not have this model's structure: ",
                     absl::StrJoin(differ, ", ")));
  }
  return f;
}

}  // namespace compressd::engine
