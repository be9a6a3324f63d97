// ReadGgufLlamaConfig: the LlamaConfig of a GGUF file from its metadata (and
// the shapes of token_embd and rope_freqs). See gguf_model.h.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "workers/engine/model/families.h"
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

constexpr double kPi = 3.14159265358979323846;

// A required key: its absence makes the file malformed (INVALID_ARGUMENT).
template <typename T>
absl::StatusOr<T> Required(absl::StatusOr<T> v) {
  if (absl::IsNotFound(v.status())) return absl::InvalidArgumentError(v.status().message());
  return v;
}

template <typename T>
absl::StatusOr<T> Optional(absl::StatusOr<T> v, T fallback) {
  if (absl::IsNotFound(v.status())) return fallback;
  return v;
}

absl::Status Unsupported(const GgufFile& f, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(f.path(), ": unsupported: ", what));
}

// The per-frequency factors convert_hf_to_gguf.py writes to rope_freqs for
// llama3 rope scaling (1 for high frequencies, `factor` for low ones, a
// smooth blend between).
std::vector<double> Llama3RopeFactors(const LlamaConfig& c, const RopeScaling& s) {
  std::vector<double> out;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  for (int i = 0; i < c.head_dim; i += 2) {
    const double freq =
        1.0 / std::pow(static_cast<double>(c.rope_theta), static_cast<double>(i) / c.head_dim);
    const double wavelen = 2.0 * kPi / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0);
    } else if (wavelen > low_wavelen) {
      out.push_back(s.factor);
    } else {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      out.push_back(1.0 / ((1.0 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

// Phi-3's longrope: rope_factors_long / _short ([rotary dims / 2] each), the
// pretraining context and the attention factor from the metadata.
absl::Status ReadLongRope(const GgufFile& f, const std::string& arch, LlamaConfig* c) {
  RopeScaling s;
  s.type = "longrope";
  const int64_t half = RotaryDims(*c) / 2;
  for (const auto& [name, out] : {std::pair{"rope_factors_long.weight", &s.long_factor},
                                  std::pair{"rope_factors_short.weight", &s.short_factor}}) {
    const GgufTensorInfo* t = f.FindTensor(name);
    if (t == nullptr || t->type != GgmlType::kF32 || t->ne.size() != 1 || t->ne[0] != half) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.path(), ": tensor \"", name, "\": expected F32 [", half, "] (longrope needs both)"));
    }
    out->resize(static_cast<size_t>(half));
    RETURN_IF_ERROR(Dequantize(t->type, f.TensorData(*t), half, out->data()));
  }
  ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                   Required(f.GetI32(arch + ".rope.scaling.original_context_length")));
  if (s.original_max_position_embeddings <= 1) return Unsupported(f, "original_context_length <= 1");
  s.factor = static_cast<float>(c->max_position) / s.original_max_position_embeddings;
  const double fallback =
      s.factor <= 1.0f ? 1.0
                       : std::sqrt(1 + std::log(s.factor) / std::log(s.original_max_position_embeddings));
  ASSIGN_OR_RETURN(s.attention_factor, Optional(f.GetF32(arch + ".rope.scaling.attn_factor"),
                                                static_cast<float>(fallback)));
  c->rope_scaling = s;
  return absl::OkStatus();
}

// Sets c->rope_scaling from the metadata and rope_freqs.weight.
absl::Status ReadRopeScaling(const GgufFile& f, const std::string& arch, LlamaConfig* c) {
  if (c->fused_projections && f.FindTensor("rope_factors_long.weight") != nullptr)
    return ReadLongRope(f, arch, c);
  ASSIGN_OR_RETURN(std::string type,
                   Optional(f.GetString(arch + ".rope.scaling.type"), std::string("none")));
  ASSIGN_OR_RETURN(float linear, Optional(f.GetF32(arch + ".rope.scale_linear"), 1.0f));
  if (type == "linear") {  // every frequency divided by factor (Gemma 3: its global layers)
    ASSIGN_OR_RETURN(linear, Required(f.GetF32(arch + ".rope.scaling.factor")));
  } else if (type != "none") {
    return Unsupported(f, absl::StrCat(arch, ".rope.scaling.type \"", type, "\""));
  }
  if (!(linear >= 1.0f)) {
    return Unsupported(f, absl::StrCat(arch, " linear rope scaling factor ", linear, " (< 1)"));
  }
  if (linear != 1.0f) {
    c->rope_scaling.type = "linear";
    c->rope_scaling.factor = linear;
    return absl::OkStatus();
  }
  const GgufTensorInfo* t = f.FindTensor("rope_freqs.weight");
  if (t == nullptr) return absl::OkStatus();
  const std::string where = absl::StrCat(
      f.path(), ": tensor \"rope_freqs.weight\" (info at offset ", t->info_offset, "): ");
  if (t->type != GgmlType::kF32 || t->ne.size() != 1 || t->ne[0] != c->head_dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat(where, "expected F32 [", c->head_dim / 2,
                                                   "], got ", GgmlTypeName(t->type), " ",
                                                   ShapeString(t->ne)));
  }
  std::vector<float> got(t->ne[0]);
  RETURN_IF_ERROR(Dequantize(t->type, f.TensorData(*t), t->ne[0], got.data()));
  RopeScaling s;
  s.type = "llama3";
  s.factor = 1.0f;
  for (float v : got) s.factor = std::max(s.factor, v);
  if (s.factor == 1.0f) return absl::OkStatus();  // all ones: no scaling
  const std::vector<double> want = Llama3RopeFactors(*c, s);
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= 1e-5 * want[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "unsupported rope scaling: entry ", i, " = ", got[i],
                       " is not the llama3 factor ", want[i], " (factor ", s.factor,
                       ", low/high frequency factors 1/4, 8192 original positions)"));
    }
  }
  c->rope_scaling = s;
  return absl::OkStatus();
}

absl::Status ReadSizes(const GgufFile& f, const std::string& arch, LlamaConfig* c) {
  auto key = [&arch](const char* suffix) { return absl::StrCat(arch, ".", suffix); };
  ASSIGN_OR_RETURN(c->n_layers, Required(f.GetI32(key("block_count"))));
  ASSIGN_OR_RETURN(c->hidden, Required(f.GetI32(key("embedding_length"))));
  ASSIGN_OR_RETURN(c->intermediate, Required(f.GetI32(key("feed_forward_length"))));
  ASSIGN_OR_RETURN(c->n_heads, Required(f.GetI32(key("attention.head_count"))));
  ASSIGN_OR_RETURN(c->n_kv_heads, Optional(f.GetI32(key("attention.head_count_kv")), c->n_heads));
  ASSIGN_OR_RETURN(c->rms_norm_eps, Required(f.GetF32(key("attention.layer_norm_rms_epsilon"))));
  ASSIGN_OR_RETURN(c->rope_theta, Optional(f.GetF32(key("rope.freq_base")), 10000.0f));
  ASSIGN_OR_RETURN(c->max_position, Optional(f.GetI32(key("context_length")), 2048));
  if (c->n_heads <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", key("attention.head_count"),
                                                   " = ", c->n_heads, " must be positive"));
  }
  // head_dim: attention.key_length, else rope.dimension_count, else hidden / n_heads.
  const int fallback_head_dim = c->hidden % c->n_heads == 0 ? c->hidden / c->n_heads : 0;
  ASSIGN_OR_RETURN(int rope_dims,
                   Optional(f.GetI32(key("rope.dimension_count")), fallback_head_dim));
  ASSIGN_OR_RETURN(c->head_dim, Optional(f.GetI32(key("attention.key_length")), rope_dims));
  ASSIGN_OR_RETURN(int value_dim, Optional(f.GetI32(key("attention.value_length")), c->head_dim));
  if (value_dim != c->head_dim) {
    return Unsupported(
        f, absl::StrCat("attention.value_length ", value_dim, " != key_length ", c->head_dim));
  }
  if (rope_dims != c->head_dim) {  // Phi-3 (neox order, as HF's) rotates the leading dims only
    if (!c->fused_projections || rope_dims <= 0 || rope_dims > c->head_dim || rope_dims % 2 != 0) {
      return Unsupported(f, absl::StrCat("partial rotary embeddings (rope.dimension_count ",
                                         rope_dims, " != head dim ", c->head_dim, ")"));
    }
    c->rotary_dims = rope_dims;
  }
  if (c->fused_projections) {  // Phi-3's window, if any
    ASSIGN_OR_RETURN(c->sliding_window, Optional(f.GetI32(key("attention.sliding_window")), 0));
    if (c->sliding_window < 0) return Unsupported(f, "a negative attention.sliding_window");
  }
  return absl::OkStatus();
}

// Gemma 2 / 3: what llama.cpp's archs read (soft-capping, the window) and
// what they fix (GgufGemma*: the attention scale, the windowed layers, Gemma
// 3's local rope theta 10000).
absl::Status ReadGemma(const GgufFile& f, const std::string& arch, const Family& family,
                       LlamaConfig* c) {
  if (!family.gemma) return absl::OkStatus();
  auto key = [&arch](const char* suffix) { return absl::StrCat(arch, ".", suffix); };
  c->query_pre_attn_scalar = GgufGemmaQueryScalar(*c);
  if (family.gemma3) {
    c->local_rope_theta = 10000.0f;
  } else {
    ASSIGN_OR_RETURN(c->attn_softcap,
                     Optional(f.GetF32(key("attn_logit_softcapping")), family.default_attn_softcap));
    ASSIGN_OR_RETURN(c->final_softcap, Optional(f.GetF32(key("final_logit_softcapping")),
                                                family.default_final_softcap));
  }
  ASSIGN_OR_RETURN(c->sliding_window, Optional(f.GetI32(key("attention.sliding_window")), 4096));
  if (c->sliding_window <= 0 || c->attn_softcap < 0 || c->final_softcap < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.path(), ": ", key("attention.sliding_window"), " ", c->sliding_window,
        " must be positive, soft-capping not negative"));
  }
  c->sliding_layers = GgufGemmaSlidingLayers(*c);
  return absl::OkStatus();
}

// The experts of an MoE arch: count, top-k, widths; the top-k weighting is
// the arch's (llama.cpp's expert_weights_norm where the file says).
absl::Status ReadExperts(const GgufFile& f, const std::string& arch, const Family& family,
                         int experts, LlamaConfig* c) {
  auto key = [&arch](const char* suffix) { return absl::StrCat(arch, ".", suffix); };
  if (family.moe == MoeKind::kDense) {
    if (experts > 0) return Unsupported(f, absl::StrCat(key("expert_count"), " ", experts));
    return absl::OkStatus();
  }
  if (experts <= 0 || experts > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", key("expert_count"), " ",
                                                   experts, " outside [1, 4096]"));
  }
  c->n_experts = experts;
  ASSIGN_OR_RETURN(c->experts_per_token, Required(f.GetI32(key("expert_used_count"))));
  if (c->experts_per_token <= 0 || c->experts_per_token > experts) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", key("expert_used_count"), " ",
                                                   c->experts_per_token, " outside [1, ", experts,
                                                   "]"));
  }
  ASSIGN_OR_RETURN(c->expert_intermediate,
                   Optional(f.GetI32(key("expert_feed_forward_length")), c->intermediate));
  if (family.moe == MoeKind::kQwenShared) {
    ASSIGN_OR_RETURN(c->shared_expert_intermediate,
                     Optional(f.GetI32(key("expert_shared_feed_forward_length")), 0));
  }
  ASSIGN_OR_RETURN(c->norm_topk_prob,
                   Optional(f.GetBool(key("expert_weights_norm")), family.gguf_norm_topk));
  constexpr int kMaxWidth = 1 << 24;  // as every other size (ValidateLlamaConfig)
  if (c->expert_intermediate <= 0 || c->expert_intermediate > kMaxWidth ||
      c->shared_expert_intermediate < 0 || c->shared_expert_intermediate > kMaxWidth) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.path(), ": ", key("expert_feed_forward_length"), " ", c->expert_intermediate, " / ",
        key("expert_shared_feed_forward_length"), " ", c->shared_expert_intermediate,
        " outside [1, 2^24] / [0, 2^24]"));
  }
  return absl::OkStatus();
}

absl::Status ReadVocab(const GgufFile& f, const std::string& arch, LlamaConfig* c) {
  const GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": tensor \"token_embd.weight\" is missing"));
  if (embd->ne.size() != 2 || embd->ne[1] > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": tensor \"token_embd.weight\" (info at offset ", embd->info_offset,
                     "): ggml shape ", ShapeString(embd->ne), " is not [hidden, vocab]"));
  }
  c->vocab = static_cast<int>(embd->ne[1]);
  ASSIGN_OR_RETURN(int declared, Optional(f.GetI32(arch + ".vocab_size"), c->vocab));
  if (declared != c->vocab) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": ", arch, ".vocab_size ", declared,
                                                   " != token_embd.weight rows ", c->vocab));
  }
  ASSIGN_OR_RETURN(c->bos_token_id, Optional(f.GetI32("tokenizer.ggml.bos_token_id"), -1));
  ASSIGN_OR_RETURN(c->eos_token_id, Optional(f.GetI32("tokenizer.ggml.eos_token_id"), -1));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaConfig> ReadGgufLlamaConfig(const GgufFile& f) {
  ASSIGN_OR_RETURN(std::string arch, Required(f.GetString("general.architecture")));
  const Family* family = FindGgufFamily(arch);
  if (family == nullptr) {
    std::vector<std::string> archs;
    for (const Family& row : Families()) {
      if (row.gguf_arch != nullptr && std::find(archs.begin(), archs.end(), row.gguf_arch) == archs.end())
        archs.emplace_back(row.gguf_arch);
    }
    return Unsupported(f, absl::StrCat("general.architecture \"", arch, "\" (supported: ",
                                       absl::StrJoin(archs, ", "), ")"));
  }
  ASSIGN_OR_RETURN(int experts, Optional(f.GetI32(arch + ".expert_count"), 0));
  if (arch == "llama" && experts > 0) family = FindFamily("mixtral");  // llama with experts
  LlamaConfig c;
  c.model_type = family->model_type;  // GgufArchitecture(c) gives the arch back
  ApplyFamily(*family, &c);
  RETURN_IF_ERROR(ReadSizes(f, arch, &c));
  RETURN_IF_ERROR(ReadExperts(f, arch, *family, experts, &c));
  RETURN_IF_ERROR(ReadGemma(f, arch, *family, &c));
  RETURN_IF_ERROR(ReadVocab(f, arch, &c));
  RETURN_IF_ERROR(ValidateLlamaConfig(c, f.path()));
  RETURN_IF_ERROR(ReadRopeScaling(f, arch, &c));
  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  c.attention_bias = f.FindTensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

}  // namespace compressd::engine
