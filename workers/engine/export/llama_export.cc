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
#include "workers/engine/model/families.h"
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
void AddGemmaFields(const LlamaConfig& c, const Family& f, json* j) {
  json layer_types = json::array();
  for (int i = 0; i < c.n_layers; ++i)
    layer_types.push_back(LayerIsWindowed(c, i) ? "sliding_attention" : "full_attention");
  j->update({
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"hidden_act", "gelu_pytorch_tanh"},
      // transformers' field is an int (Gemma 2 27B: 144); a fraction stays one.
      {"query_pre_attn_scalar",
       c.query_pre_attn_scalar == std::floor(c.query_pre_attn_scalar)
           ? json(static_cast<int64_t>(c.query_pre_attn_scalar))
           : json(ShortestDouble(c.query_pre_attn_scalar))},
      {"attn_logit_softcapping", NullIfZero(c.attn_softcap)},
      {"final_logit_softcapping", NullIfZero(c.final_softcap)},
      {"layer_types", layer_types},
  });
  if (f.gemma3) (*j)["rope_local_base_freq"] = ShortestDouble(c.local_rope_theta);
}

// A mixture-of-experts family's fields.
void AddMoeFields(const LlamaConfig& c, const Family& f, json* j) {
  j->update({{"num_experts_per_tok", c.experts_per_token},
             {"norm_topk_prob", c.norm_topk_prob},
             {"output_router_logits", false}});
  (*j)[f.moe == MoeKind::kMixtral ? "num_local_experts" : "num_experts"] = c.n_experts;
  if (f.moe == MoeKind::kQwen || f.moe == MoeKind::kQwenShared) {
    (*j)["moe_intermediate_size"] = c.expert_intermediate;
    (*j)["decoder_sparse_step"] = 1;
    json dense = json::array();
    for (int l = 0; l < c.n_layers; ++l) {
      if (!LayerIsMoe(c, l)) dense.push_back(l);
    }
    (*j)["mlp_only_layers"] = dense;
  }
  if (f.moe == MoeKind::kQwenShared)
    (*j)["shared_expert_intermediate_size"] = c.shared_expert_intermediate;
  if (f.moe == MoeKind::kOlmoe) (*j)["clip_qkv"] = nullptr;
}

json RopeScalingJson(const RopeScaling& s) {
  if (s.type == "llama3") {
    return {{"rope_type", "llama3"},
            {"factor", ShortestDouble(s.factor)},
            {"low_freq_factor", ShortestDouble(s.low_freq_factor)},
            {"high_freq_factor", ShortestDouble(s.high_freq_factor)},
            {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  if (s.type == "linear") return {{"rope_type", "linear"}, {"factor", ShortestDouble(s.factor)}};
  if (s.type == "longrope") {
    return {{"rope_type", "longrope"},
            {"short_factor", Shortest(s.short_factor)},
            {"long_factor", Shortest(s.long_factor)},
            {"factor", ShortestDouble(s.factor)},
            {"attention_factor", ShortestDouble(s.attention_factor)},
            {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  return nullptr;
}

}  // namespace

absl::Status CheckHfExportable(const LlamaConfig& c) { return FamilyOf(c).status(); }

std::string HfLlamaConfigJson(const engine::LlamaConfig& c, bool tied) {
  // The family's own transformers class and fields (families.h); callers
  // checked the config against it (CheckHfExportable).
  const Family* found = FindFamily(c.model_type);
  const Family& f = found != nullptr ? *found : Families().front();
  json j = {
      {"architectures", {f.hf_class}},
      {"model_type", f.export_type},
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
      {"hidden_act", "silu"},
      {"tie_word_embeddings", tied},
      {"torch_dtype", "float32"},
      {"initializer_range", 0.02},
      {"use_cache", true},
  };
  // Llama's bias switches (Qwen2's biases and Phi-3's lack of them are implied).
  if (f.qkv_bias != QkvBias::kAlways && !f.fused_projections) j["attention_bias"] = false;
  if (f.qkv_bias != QkvBias::kAlways && !f.fused_projections && !f.gemma) j["mlp_bias"] = false;
  if (f.qkv_bias == QkvBias::kOptional) j["qkv_bias"] = c.attention_bias;
  if (f.window != WindowKind::kNone)
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  if (f.moe == MoeKind::kQwen || f.moe == MoeKind::kQwenShared) j["use_sliding_window"] = false;
  if (f.gemma) AddGemmaFields(c, f, &j);
  if (f.moe != MoeKind::kDense) AddMoeFields(c, f, &j);
  if (f.fused_projections) AddPhi3Fields(c, &j);
  j["rope_scaling"] = RopeScalingJson(c.rope_scaling);
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = c.eos_token_id;
  return j.dump(2) + "\n";
}

absl::Status WriteHfLlama(engine::LlamaModel& model, const std::string& out_dir, DType dtype) {
  const engine::LlamaConfig& c = model.config;
  RETURN_IF_ERROR(CheckHfExportable(c));
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
