// ReadHfLlamaConfig: LlamaConfig from a Hugging Face config.json. See hf_llama.h.
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/families.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& what, absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, ": ", why));
}

// `j[field]` as a number (or `fallback` when absent or null).
absl::StatusOr<double> Number(const json& j, const std::string& what, const char* field,
                              double fallback) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number())
    return FieldError(what, field, absl::StrCat("must be a number, got ", it->dump()));
  return it->get<double>();
}

absl::StatusOr<int> Int(const json& j, const std::string& what, const char* field, int fallback) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  const json* v = &*it;
  if (v->is_array()) {  // e.g. Llama 3.1's eos_token_id list: use the first
    if (v->empty()) return fallback;
    v = &(*v)[0];
  }
  if (!v->is_number_integer() ||
      (v->is_number_unsigned() &&
       v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int>::max())) ||
      (!v->is_number_unsigned() && (v->get<int64_t>() > std::numeric_limits<int>::max() ||
                                    v->get<int64_t>() < std::numeric_limits<int>::min()))) {
    return FieldError(what, field, absl::StrCat("must be a 32-bit integer, got ", it->dump()));
  }
  return v->get<int>();
}

absl::StatusOr<bool> Bool(const json& j, const std::string& what, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean()) return FieldError(what, field, "must be true or false");
  return it->get<bool>();
}

// Mistral, Phi-3 and Mixtral attend to the last sliding_window positions in
// every layer (null: all). Qwen2/Qwen3 with use_sliding_window choose per layer
// (layer_types), which the engine does not do: refused rather than run as full
// attention. Gemma's pattern is ReadLayerTypes'.
absl::Status ReadSlidingWindow(const json& j, const std::string& what, const Family& f,
                               LlamaConfig* c) {
  if (f.window == WindowKind::kPattern) return absl::OkStatus();
  if (f.window == WindowKind::kAllLayers) {
    ASSIGN_OR_RETURN(c->sliding_window, Int(j, what, "sliding_window", 0));
    if (c->sliding_window < 0) return FieldError(what, "sliding_window", "must be positive");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(bool per_layer, Bool(j, what, "use_sliding_window"));
  if (per_layer) {
    return FieldError(what, "use_sliding_window",
                      "true is not supported (per-layer sliding windows); full attention would "
                      "give other logits than the model's");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SizeField(int64_t v, const std::string& what, const char* field) {
  if (v <= 0 || v > (1 << 24))
    return FieldError(what, field, absl::StrCat(v, " outside [1, 2^24]"));
  return static_cast<int>(v);
}

absl::Status ReadRope(const json& j, const std::string& what, LlamaConfig* c);

// `field` of `rs`: a list of `n` positive numbers.
absl::StatusOr<std::vector<float>> Factors(const json& rs, const std::string& where,
                                           const char* field, int n) {
  auto it = rs.find(field);
  if (it == rs.end() || !it->is_array() || it->size() != static_cast<size_t>(n)) {
    return FieldError(where, field, absl::StrCat("must be a list of ", n, " numbers (rotary dims / 2)"));
  }
  std::vector<float> out;
  for (const json& v : *it) {
    if (!v.is_number() || !(v.get<double>() > 0))
      return FieldError(where, field, absl::StrCat("entries must be positive numbers, got ", v.dump()));
    out.push_back(v.get<float>());
  }
  return out;
}

// Phi-3's longrope, as transformers' _compute_longrope_parameters reads it:
// original_max_position_embeddings from the scaling dict or the config,
// factor (default max_position / original) and attention_factor (default
// sqrt(1 + ln factor / ln original), 1 when factor <= 1).
absl::Status ReadLongRope(const json& j, const json& rs, const std::string& where,
                          LlamaConfig* c) {
  RopeScaling& s = c->rope_scaling;
  s.type = "longrope";
  const int half = RotaryDims(*c) / 2;
  ASSIGN_OR_RETURN(s.short_factor, Factors(rs, where, "short_factor", half));
  ASSIGN_OR_RETURN(s.long_factor, Factors(rs, where, "long_factor", half));
  ASSIGN_OR_RETURN(int top, Int(j, where, "original_max_position_embeddings", c->max_position));
  ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                   Int(rs, where, "original_max_position_embeddings", top));
  if (s.original_max_position_embeddings <= 1)
    return FieldError(where, "original_max_position_embeddings", "must be > 1");
  ASSIGN_OR_RETURN(double factor, Number(rs, where, "factor",
                                         static_cast<double>(c->max_position) /
                                             s.original_max_position_embeddings));
  const double fallback =
      factor <= 1.0 ? 1.0
                    : std::sqrt(1 + std::log(factor) / std::log(s.original_max_position_embeddings));
  ASSIGN_OR_RETURN(double attention, Number(rs, where, "attention_factor", fallback));
  if (!(factor > 0) || !(attention > 0))
    return FieldError(where, "factor", "factor and attention_factor must be > 0");
  s.factor = static_cast<float>(factor);
  s.attention_factor = static_cast<float>(attention);
  return absl::OkStatus();
}

// partial_rotary_factor (Phi-4-mini: 0.75), in the config or its rope dict.
absl::Status ReadRotaryDims(const json& j, const std::string& what, LlamaConfig* c) {
  ASSIGN_OR_RETURN(double f, Number(j, what, "partial_rotary_factor", 1.0));
  for (const char* field : {"rope_scaling", "rope_parameters"}) {
    auto rs = j.find(field);
    if (rs == j.end() || !rs->is_object()) continue;
    ASSIGN_OR_RETURN(f, Number(*rs, absl::StrCat(what, ": ", field), "partial_rotary_factor", f));
  }
  if (!(f > 0.0 && f <= 1.0))
    return FieldError(what, "partial_rotary_factor", absl::StrCat("must be in (0, 1], got ", f));
  const int dims = static_cast<int>(c->head_dim * f);  // int(), as transformers
  if (dims <= 0 || dims % 2 != 0) {
    return FieldError(what, "partial_rotary_factor",
                      absl::StrCat("gives ", dims, " rotary dims of ", c->head_dim,
                                   "; they must be positive and even"));
  }
  c->rotary_dims = dims == c->head_dim ? 0 : dims;
  return absl::OkStatus();
}

// The MLP activation: SiLU, or GELU (tanh approximation) for Gemma; another
// one would silently change the model's output.
absl::Status CheckActivation(const json& j, const std::string& what, const LlamaConfig& c) {
  const std::string want = c.gelu_gate ? "gelu_pytorch_tanh" : "silu";
  for (const char* field : {"hidden_act", "hidden_activation"}) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string() || it->get<std::string>() != want) {
      return FieldError(what, field,
                        absl::StrCat(it->dump(), " is not supported (", c.model_type,
                                     "'s MLP gate is ", want, ")"));
    }
  }
  return absl::OkStatus();
}

// `field` of `j`: `absent` when missing, 0 when null (Gemma's "no soft-capping").
absl::StatusOr<float> OptionalPositive(const json& j, const std::string& what, const char* field,
                                       double absent) {
  auto it = j.find(field);
  if (it == j.end()) return static_cast<float>(absent);
  if (it->is_null()) return 0.0f;
  if (!it->is_number() || !(it->get<double>() > 0))
    return FieldError(what, field, absl::StrCat("must be a positive number or null, got ", it->dump()));
  return it->get<float>();
}

// Which layers attend through the window: layer_types, else every
// sliding_window_pattern-th layer is full (Gemma 2: 2, Gemma 3: 6).
absl::Status ReadLayerTypes(const json& j, const std::string& what, const Family& f,
                            LlamaConfig* c) {
  c->sliding_layers.assign(static_cast<size_t>(c->n_layers), false);
  auto it = j.find("layer_types");
  if (it == j.end() || it->is_null()) {
    ASSIGN_OR_RETURN(int pattern, Int(j, what, "sliding_window_pattern", f.default_window_pattern));
    if (pattern <= 0) return FieldError(what, "sliding_window_pattern", "must be positive");
    for (int i = 0; i < c->n_layers; ++i) c->sliding_layers[static_cast<size_t>(i)] = (i + 1) % pattern != 0;
    return absl::OkStatus();
  }
  if (!it->is_array() || it->size() != static_cast<size_t>(c->n_layers))
    return FieldError(what, "layer_types", absl::StrCat("must list ", c->n_layers, " layers"));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    if (t != "sliding_attention" && t != "full_attention") {
      return FieldError(what, absl::StrCat("layer_types[", i, "]"),
                        absl::StrCat(t.dump(), " is not sliding_attention or full_attention"));
    }
    c->sliding_layers[i] = t == "sliding_attention";
  }
  return absl::OkStatus();
}

// Gemma 3's two ropes: transformers 5 nests them in rope_parameters by layer
// type; transformers 4 configs say rope_theta, rope_scaling (global layers)
// and rope_local_base_freq.
absl::Status ReadGemma3Rope(const json& j, const std::string& what, LlamaConfig* c) {
  auto rp = j.find("rope_parameters");
  if (rp != j.end() && rp->is_object() && rp->contains("full_attention")) {
    RETURN_IF_ERROR(ReadRope(json{{"rope_theta", 1e6}, {"rope_parameters", (*rp)["full_attention"]}},
                             absl::StrCat(what, ": rope_parameters.full_attention"), c));
    const json local = rp->value("sliding_attention", json::object());
    const std::string where = absl::StrCat(what, ": rope_parameters.sliding_attention");
    if (local.value("rope_type", std::string("default")) != "default")
      return FieldError(where, "rope_type", "only default is supported for sliding layers");
    ASSIGN_OR_RETURN(double theta, Number(local, where, "rope_theta", 10000.0));
    c->local_rope_theta = static_cast<float>(theta);
    return absl::OkStatus();
  }
  json global = j;
  if (!global.contains("rope_theta")) global["rope_theta"] = 1e6;
  RETURN_IF_ERROR(ReadRope(global, what, c));
  ASSIGN_OR_RETURN(double local, Number(j, what, "rope_local_base_freq", 10000.0));
  c->local_rope_theta = static_cast<float>(local);
  return absl::OkStatus();
}

// Gemma 2 and Gemma 3 (text): transformers' class defaults where config.json
// is silent.
absl::Status ReadGemma(const json& j, const std::string& what, const Family& f, LlamaConfig* c) {
  ASSIGN_OR_RETURN(c->query_pre_attn_scalar, OptionalPositive(j, what, "query_pre_attn_scalar", 256));
  if (c->query_pre_attn_scalar == 0)
    return FieldError(what, "query_pre_attn_scalar", "must be a positive number");
  ASSIGN_OR_RETURN(c->attn_softcap,
                   OptionalPositive(j, what, "attn_logit_softcapping", f.default_attn_softcap));
  ASSIGN_OR_RETURN(c->final_softcap,
                   OptionalPositive(j, what, "final_logit_softcapping", f.default_final_softcap));
  ASSIGN_OR_RETURN(float window, OptionalPositive(j, what, "sliding_window", 4096));
  c->sliding_window = static_cast<int>(window);
  RETURN_IF_ERROR(ReadLayerTypes(j, what, f, c));
  ASSIGN_OR_RETURN(bool bidirectional, Bool(j, what, "use_bidirectional_attention"));
  if (bidirectional) return FieldError(what, "use_bidirectional_attention", "true is not supported");
  return f.gemma3 ? ReadGemma3Rope(j, what, c) : ReadRope(j, what, c);
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5).
absl::Status ReadRope(const json& j, const std::string& what, LlamaConfig* c) {
  ASSIGN_OR_RETURN(double theta, Number(j, what, "rope_theta", 10000.0));
  const char* field = "rope_scaling";
  auto rs = j.find(field);
  if (rs == j.end() || rs->is_null()) rs = j.find(field = "rope_parameters");
  if (rs == j.end() || rs->is_null()) {
    c->rope_theta = static_cast<float>(theta);
    return absl::OkStatus();
  }
  if (!rs->is_object()) return FieldError(what, field, "must be an object");
  ASSIGN_OR_RETURN(theta, Number(*rs, absl::StrCat(what, ": ", field), "rope_theta", theta));
  c->rope_theta = static_cast<float>(theta);
  std::string type = "default";
  for (const char* key : {"type", "rope_type"}) {  // rope_type wins
    if (auto t = rs->find(key); t != rs->end() && t->is_string()) type = t->get<std::string>();
  }
  if (type == "default") return absl::OkStatus();
  // Phi-3's configs call longrope "su" (and once "yarn"); transformers maps both.
  if (c->fused_projections && (type == "su" || type == "yarn")) type = "longrope";
  if (type == "longrope") return ReadLongRope(j, *rs, absl::StrCat(what, ": ", field), c);
  if (type == "linear") {  // Gemma 3's global layers: every frequency divided by factor
    ASSIGN_OR_RETURN(double factor, Number(*rs, absl::StrCat(what, ": ", field), "factor", 1.0));
    if (!(factor >= 1.0)) return FieldError(what, field, "linear needs factor >= 1");
    c->rope_scaling.type = "linear";
    c->rope_scaling.factor = static_cast<float>(factor);
    return absl::OkStatus();
  }
  if (type != "llama3") {
    return FieldError(what, field,
                      absl::StrCat("unsupported rope type \"", type,
                                   "\" (supported: llama3, longrope, linear)"));
  }
  const std::string where = absl::StrCat(what, ": ", field);
  RopeScaling& s = c->rope_scaling;
  s.type = "llama3";
  ASSIGN_OR_RETURN(double factor, Number(*rs, where, "factor", 8.0));
  ASSIGN_OR_RETURN(double low, Number(*rs, where, "low_freq_factor", 1.0));
  ASSIGN_OR_RETURN(double high, Number(*rs, where, "high_freq_factor", 4.0));
  ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                   Int(*rs, where, "original_max_position_embeddings", 8192));
  if (!(factor >= 1.0) || !(low > 0.0) || !(high > low) ||
      s.original_max_position_embeddings <= 0) {
    return FieldError(what, field,
                      "llama3 needs factor >= 1, 0 < low_freq_factor < high_freq_factor, "
                      "original_max_position_embeddings > 0");
  }
  s.factor = static_cast<float>(factor);
  s.low_freq_factor = static_cast<float>(low);
  s.high_freq_factor = static_cast<float>(high);
  return absl::OkStatus();
}

// The mixture of experts of Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE: the
// expert count and width, top-k and its normalisation, Qwen2-MoE's shared
// expert and Qwen-MoE's dense layers (mlp_only_layers, decoder_sparse_step).
absl::Status ReadMoe(const json& j, const std::string& what, const Family& f, LlamaConfig* c) {
  if (f.moe == MoeKind::kDense) return absl::OkStatus();
  const bool qwen = f.moe == MoeKind::kQwen || f.moe == MoeKind::kQwenShared;
  const char* count_field = j.contains("num_experts") ? "num_experts" : "num_local_experts";
  ASSIGN_OR_RETURN(c->n_experts, Int(j, what, count_field, f.moe == MoeKind::kMixtral ? 8 : 0));
  ASSIGN_OR_RETURN(c->experts_per_token, Int(j, what, "num_experts_per_tok", 2));
  if (c->n_experts <= 0 || c->n_experts > 4096)
    return FieldError(what, count_field, absl::StrCat(c->n_experts, " outside [1, 4096]"));
  if (c->experts_per_token <= 0 || c->experts_per_token > c->n_experts) {
    return FieldError(what, "num_experts_per_tok",
                      absl::StrCat(c->experts_per_token, " outside [1, ", c->n_experts, "]"));
  }
  c->expert_intermediate = c->intermediate;  // Mixtral, OLMoE
  if (qwen) {
    ASSIGN_OR_RETURN(int width, Int(j, what, "moe_intermediate_size", 0));
    ASSIGN_OR_RETURN(c->expert_intermediate, SizeField(width, what, "moe_intermediate_size"));
  }
  // Mixtral always renormalises the top-k probabilities; the others when told.
  if (f.moe == MoeKind::kMixtral) {
    c->norm_topk_prob = true;
  } else {
    ASSIGN_OR_RETURN(c->norm_topk_prob, Bool(j, what, "norm_topk_prob"));
  }
  if (f.moe == MoeKind::kQwenShared) {
    ASSIGN_OR_RETURN(int width, Int(j, what, "shared_expert_intermediate_size", 0));
    if (width != 0) {
      ASSIGN_OR_RETURN(c->shared_expert_intermediate,
                       SizeField(width, what, "shared_expert_intermediate_size"));
    }
  }
  if (qwen) {
    ASSIGN_OR_RETURN(int step, Int(j, what, "decoder_sparse_step", 1));
    if (step <= 0) return FieldError(what, "decoder_sparse_step", "must be positive");
    std::vector<bool> moe(static_cast<size_t>(c->n_layers));
    for (int l = 0; l < c->n_layers; ++l) moe[static_cast<size_t>(l)] = (l + 1) % step == 0;
    if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) return FieldError(what, "mlp_only_layers", "must be a list of layers");
      for (const json& l : *it) {
        if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= c->n_layers)
          return FieldError(what, "mlp_only_layers", absl::StrCat(l.dump(), " is not a layer"));
        moe[static_cast<size_t>(l.get<int64_t>())] = false;
      }
    }
    bool all = true;
    for (bool m : moe) all = all && m;
    if (!all) c->moe_layers = std::move(moe);
  }
  if (f.moe == MoeKind::kOlmoe) {
    auto clip = j.find("clip_qkv");
    if (clip != j.end() && !clip->is_null()) {
      return FieldError(what, "clip_qkv",
                        "is not supported (q/k/v clamping); the model's output would differ");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaConfig> ReadHfLlamaConfig(const HfConfig& base, absl::string_view config_json,
                                              const std::string& what) {
  json j;
  try {
    j = json::parse(config_json.begin(), config_json.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  const Family* f = FindFamily(base.model_type);
  if (f == nullptr) {
    return FieldError(what, "model_type",
                      absl::StrCat("unsupported \"", base.model_type,
                                   "\" (supported: ", SupportedModelTypes(), ")"));
  }
  LlamaConfig c;
  c.model_type = base.model_type;
  ApplyFamily(*f, &c);
  ASSIGN_OR_RETURN(c.n_layers, SizeField(base.num_hidden_layers, what, "num_hidden_layers"));
  ASSIGN_OR_RETURN(c.hidden, SizeField(base.hidden_size, what, "hidden_size"));
  ASSIGN_OR_RETURN(c.intermediate, SizeField(base.intermediate_size, what, "intermediate_size"));
  ASSIGN_OR_RETURN(c.n_heads, SizeField(base.num_attention_heads, what, "num_attention_heads"));
  ASSIGN_OR_RETURN(c.n_kv_heads, SizeField(base.num_key_value_heads, what, "num_key_value_heads"));
  ASSIGN_OR_RETURN(c.vocab, SizeField(base.vocab_size, what, "vocab_size"));
  ASSIGN_OR_RETURN(c.head_dim, Int(j, what, "head_dim",
                                   f->default_head_dim > 0 ? f->default_head_dim
                                                           : c.hidden / c.n_heads));
  ASSIGN_OR_RETURN(c.max_position,
                   Int(j, what, "max_position_embeddings", f->default_max_position));
  ASSIGN_OR_RETURN(double eps, Number(j, what, "rms_norm_eps", 1e-6));
  c.rms_norm_eps = static_cast<float>(eps);
  RETURN_IF_ERROR(ReadRotaryDims(j, what, &c));
  if (f->gemma) {
    RETURN_IF_ERROR(ReadGemma(j, what, *f, &c));
  } else {
    RETURN_IF_ERROR(ReadRope(j, what, &c));
  }
  RETURN_IF_ERROR(CheckActivation(j, what, c));
  c.tie_word_embeddings =
      j.contains("tie_word_embeddings") ? base.tie_word_embeddings : f->default_tied;
  ASSIGN_OR_RETURN(c.bos_token_id, Int(j, what, "bos_token_id", -1));
  ASSIGN_OR_RETURN(c.eos_token_id, Int(j, what, "eos_token_id", -1));
  if (f->qkv_bias == QkvBias::kOptional && j.contains("qkv_bias")) {  // Qwen2-MoE: default on
    ASSIGN_OR_RETURN(c.attention_bias, Bool(j, what, "qkv_bias"));
  }
  RETURN_IF_ERROR(ReadSlidingWindow(j, what, *f, &c));
  RETURN_IF_ERROR(ReadMoe(j, what, *f, &c));
  if (!c.attention_bias) {
    for (const char* field : {"attention_bias", "mlp_bias"}) {
      ASSIGN_OR_RETURN(bool set, Bool(j, what, field));
      if (set)
        return FieldError(what, field,
                          "true is not supported (no o_proj / MLP biases in LlamaModel)");
    }
  }
  RETURN_IF_ERROR(ValidateLlamaConfig(c, what));
  return c;
}

}  // namespace compressd::engine
