#include "workers/engine/export/llama_export.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/fused_export.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The shortest decimal that reads back as the same float, as a double: so
// 1e-5f is written as 1e-05, not 9.999999747378752e-06.
double ShortestDouble(float v) {
  for (int precision = 1; precision <= 9; ++precision) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.*g", precision, static_cast<double>(v));
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(d) == v) return d;
  }
  return v;
}

json Shortest(const std::vector<float>& v) {
  json out = json::array();
  for (float x : v) out.push_back(ShortestDouble(x));
  return out;
}

// Phi3Config's own fields: partial rotary, the pretraining context (longrope
// reads it from here too), no pad token (its default 32000 may not be in a
// smaller vocabulary).
void AddPhi3Fields(const LlamaConfig& c, json* j) {
  (*j)["partial_rotary_factor"] =
      ShortestDouble(static_cast<float>(RotaryDims(c)) / static_cast<float>(c.head_dim));
  (*j)["original_max_position_embeddings"] = c.rope_scaling.type == "longrope"
                                                 ? c.rope_scaling.original_max_position_embeddings
                                                 : c.max_position;
  (*j)["pad_token_id"] = nullptr;
}

json NullIfZero(float v) { return v > 0 ? json(ShortestDouble(v)) : json(nullptr); }

// Gemma2Config / Gemma3TextConfig (transformers 4 spelling, which 5 reads too).
json GemmaConfig(const LlamaConfig& c, bool tied) {
  const bool gemma3 = c.qk_norm;
  json layer_types = json::array();
  for (int i = 0; i < c.n_layers; ++i)
    layer_types.push_back(LayerIsWindowed(c, i) ? "sliding_attention" : "full_attention");
  json j = {
      {"architectures", {gemma3 ? "Gemma3ForCausalLM" : "Gemma2ForCausalLM"}},
      {"model_type", gemma3 ? "gemma3_text" : "gemma2"},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"hidden_act", "gelu_pytorch_tanh"},
      // transformers' field is an int (Gemma 2 27B: 144); a fraction stays one.
      {"query_pre_attn_scalar",
       c.query_pre_attn_scalar == std::floor(c.query_pre_attn_scalar)
           ? json(static_cast<int64_t>(c.query_pre_attn_scalar))
           : json(ShortestDouble(c.query_pre_attn_scalar))},
      {"attn_logit_softcapping", NullIfZero(c.attn_softcap)},
      {"final_logit_softcapping", NullIfZero(c.final_softcap)},
      {"sliding_window", c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr)},
      {"layer_types", layer_types},
      {"attention_bias", false},
      {"tie_word_embeddings", tied},
  };
  if (gemma3) j["rope_local_base_freq"] = ShortestDouble(c.local_rope_theta);
  return j;
}

// A mixture-of-experts family's class and fields (the model keeps its family).
json MoeConfig(const engine::LlamaConfig& c) {
  const std::string& t = c.model_type;
  const char* architecture = t == "mixtral"     ? "MixtralForCausalLM"
                             : t == "qwen2_moe" ? "Qwen2MoeForCausalLM"
                             : t == "qwen3_moe" ? "Qwen3MoeForCausalLM"
                                                : "OlmoeForCausalLM";
  json j = {{"architectures", {architecture}},
            {"model_type", t},
            {"num_experts_per_tok", c.experts_per_token},
            {"norm_topk_prob", c.norm_topk_prob},
            {"output_router_logits", false}};
  j[t == "mixtral" ? "num_local_experts" : "num_experts"] = c.n_experts;
  if (t == "mixtral") j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json();
  if (t == "qwen2_moe" || t == "qwen3_moe") {
    j["moe_intermediate_size"] = c.expert_intermediate;
    j["decoder_sparse_step"] = 1;
    json dense = json::array();
    for (int l = 0; l < c.n_layers; ++l) {
      if (!engine::LayerIsMoe(c, l)) dense.push_back(l);
    }
    j["mlp_only_layers"] = dense;
    j["use_sliding_window"] = false;
  }
  if (t == "qwen2_moe") {
    j["shared_expert_intermediate_size"] = c.shared_expert_intermediate;
    j["qkv_bias"] = c.attention_bias;
  }
  if (t == "olmoe") j["clip_qkv"] = nullptr;
  return j;
}

}  // namespace

std::string HfLlamaConfigJson(const engine::LlamaConfig& c, bool tied) {
  // The transformers class whose tensors and config fields the model has:
  // Qwen2 (q/k/v biases), Qwen3 (per-head q/k norms), else Llama.
  // Mistral when it has a sliding window (without one it is Llama).
  // Phi-3 (fused projections, longrope, partial rotary) before them all.
  const bool phi3 = c.fused_projections;
  const bool qwen2 = c.model_type == "qwen2";
  const bool qwen3 = c.qk_norm && !c.sandwich_norms && c.n_experts == 0;
  const bool mistral = c.sliding_window > 0 && !phi3 && !c.sandwich_norms;
  const char* architecture =
      phi3 ? "Phi3ForCausalLM"
           : qwen2 ? "Qwen2ForCausalLM"
                   : (qwen3 ? "Qwen3ForCausalLM"
                            : (mistral ? "MistralForCausalLM" : "LlamaForCausalLM"));
  const char* model_type =
      phi3 ? "phi3" : qwen2 ? "qwen2" : (qwen3 ? "qwen3" : (mistral ? "mistral" : "llama"));
  json j = {
      {"architectures", {architecture}},
      {"model_type", model_type},
      {"hidden_size", c.hidden},
      {"intermediate_size", c.intermediate},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab},
      {"max_position_embeddings", c.max_position},
      {"rms_norm_eps", ShortestDouble(c.rms_norm_eps)},
      {"rope_theta", ShortestDouble(c.rope_theta)},
      {"hidden_act", "silu"},  // Gemma: replaced below
      {"tie_word_embeddings", tied},
      {"torch_dtype", "float32"},
      {"initializer_range", 0.02},
      {"use_cache", true},
  };
  if (!qwen2 && !phi3 && !c.sandwich_norms) {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  if (c.n_experts > 0) j.update(MoeConfig(c));
  if (mistral || (phi3 && c.sliding_window > 0)) j["sliding_window"] = c.sliding_window;
  if (c.sandwich_norms) j.update(GemmaConfig(c, tied));
  if (phi3) AddPhi3Fields(c, &j);
  j["rope_scaling"] = nullptr;
  if (c.rope_scaling.type == "llama3") {
    j["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", ShortestDouble(c.rope_scaling.factor)},
        {"low_freq_factor", ShortestDouble(c.rope_scaling.low_freq_factor)},
        {"high_freq_factor", ShortestDouble(c.rope_scaling.high_freq_factor)},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  if (c.rope_scaling.type == "linear") {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", ShortestDouble(c.rope_scaling.factor)}};
  }
  if (c.rope_scaling.type == "longrope") {
    const RopeScaling& s = c.rope_scaling;
    j["rope_scaling"] = {{"rope_type", "longrope"},
                         {"short_factor", Shortest(s.short_factor)},
                         {"long_factor", Shortest(s.long_factor)},
                         {"factor", ShortestDouble(s.factor)},
                         {"attention_factor", ShortestDouble(s.attention_factor)},
                         {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  return j.dump(2) + "\n";
}

absl::Status WriteHfLlama(engine::LlamaModel& model, const std::string& out_dir, DType dtype) {
  const engine::LlamaConfig& c = model.config;
  if (c.attention_bias && c.model_type != "qwen2" && c.model_type != "qwen2_moe") {
    return absl::UnimplementedError(absl::StrCat(
        "export: model_type \"", c.model_type,
        "\" with q/k/v biases has no Hugging Face class to export to (only qwen2 has them)"));
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": mkdir: ", ec.message()));
  const bool tied = engine::LmHeadIsTied(model);
  std::vector<TensorToWrite> tensors;
  std::deque<std::string> converted;  // a non-F32 output's bytes (stable under push_back)
  ASSIGN_OR_RETURN(const StoredTensors stored, FuseForExport(c, NamedTensors(&model), {}));
  for (const engine::NamedTensor& t : stored.tensors) {
    TensorToWrite w;
    w.name = t.name;
    w.dtype = dtype;
    w.shape = t.tensor->shape;
    w.bytes = absl::string_view(reinterpret_cast<const char*>(t.tensor->data),
                                static_cast<size_t>(t.tensor->numel()) * sizeof(float));
    if (dtype != DType::kF32) {
      ASSIGN_OR_RETURN(std::string bytes, FloatsToBytes(dtype, t.tensor->data,
                                                        static_cast<size_t>(t.tensor->numel())));
      converted.push_back(std::move(bytes));
      w.bytes = converted.back();
    }
    tensors.push_back(std::move(w));
  }
  RETURN_IF_ERROR(WriteSafetensors((fs::path(out_dir) / "model.safetensors").string(),
                                   std::move(tensors), {{"format", "pt"}}));
  return WriteFileAtomically((fs::path(out_dir) / "config.json").string(),
                             HfLlamaConfigJson(c, tied));
}

}  // namespace compressd::engine
