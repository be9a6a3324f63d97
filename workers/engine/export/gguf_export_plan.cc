// Tensor listing and type choice for WriteGgufLlama; see gguf_export.h.
#include <cmath>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/export/ggml_grid_encode.h"
#include "workers/engine/export/ggml_quantize.h"
#include "workers/engine/export/gguf_export_internal.h"
#include "workers/engine/model/families.h"
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine::gguf_export_internal {
namespace {

using engine::GgmlType;
using engine::QuantizedTensor;
using engine::RowPermutation;
using QuantizedMap = std::map<std::string, const QuantizedTensor*>;

constexpr double kPi = 3.14159265358979323846;

// rope_freqs.weight for llama3 rope scaling: the per-frequency factors
// convert_hf_to_gguf.py writes (1 for high frequencies, `factor` for low
// ones, a smooth blend between); the loader checks them against the same law.
std::vector<float> Llama3RopeFactors(const engine::LlamaConfig& c) {
  const engine::RopeScaling& s = c.rope_scaling;
  const double low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
  std::vector<float> out;
  for (int i = 0; i < c.head_dim; i += 2) {
    const double freq =
        std::pow(static_cast<double>(c.rope_theta), -static_cast<double>(i) / c.head_dim);
    const double wavelen = 2.0 * kPi / freq;
    double f = s.factor;
    if (wavelen < high_wavelen) {
      f = 1.0;
    } else if (wavelen <= low_wavelen) {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / s.factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

// `t` null: the plan of a writer that gets the tensor later (gguf_stream_writer.h).
absl::Status AddPlan(std::vector<TensorPlan>* plans, std::string gguf, std::string hf,
                     const engine::Tensor* t, std::vector<int64_t> shape, RowPermutation perm) {
  if (t != nullptr && (t->empty() || t->shape != shape)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model tensor ", hf, " has shape ",
                     t->empty() ? std::string("(missing)") : engine::ShapeString(t->shape),
                     ", its config expects ", engine::ShapeString(shape)));
  }
  TensorPlan p;
  p.report.gguf_name = std::move(gguf);
  p.report.hf_name = std::move(hf);
  p.tensor = t;
  p.shape = std::move(shape);
  p.perm = perm;
  plans->push_back(std::move(p));
  return absl::OkStatus();
}

// The type a grid with no exact encoding is re-quantized to: never fewer bits
// than Q4_K's, as re-encoding 2-3 bit values onto another 2-3 bit grid stacks
// two roundings (a grid with scale_bits is written exactly as Q2_K/Q3_K instead;
// output.gguf.target_type Q3_K / Q2_K asks for the small files anyway).
GgmlType ByBits(int bits) {
  if (bits <= 4) return GgmlType::kQ4_K;
  if (bits == 5) return GgmlType::kQ5_K;
  if (bits == 6) return GgmlType::kQ6_K;
  return GgmlType::kQ8_0;
}

// llama.cpp's substitutes when a type's block size does not divide a row.
GgmlType Substitute(GgmlType t) {
  switch (t) {
    case GgmlType::kQ2_K:  // llama.cpp's fallback before IQ4_NL, which we do not write
    case GgmlType::kQ3_K:
      return GgmlType::kQ4_0;
    case GgmlType::kQ4_K:
      return GgmlType::kQ5_0;
    case GgmlType::kQ5_K:
      return GgmlType::kQ5_1;
    case GgmlType::kQ6_K:
      return GgmlType::kQ8_0;
    default:
      return GgmlType::kF16;
  }
}

int64_t BlockSize(GgmlType t) { return engine::GgmlTraits(static_cast<uint32_t>(t))->block_size; }

// The grid's values must be the model's weights (else the codes describe
// some other tensor, e.g. one pruned after quantization).
absl::Status CheckGridMatches(const QuantizedTensor& q, const engine::Tensor& w,
                              const std::string& name) {
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t g = r * q.groups + q.group_index[c];
      const float want = q.scales[g] * (static_cast<float>(q.codes[r * q.cols + c]) - q.zeros[g]);
      const float got = w.data[r * q.cols + c];
      if (!(std::fabs(got - want) <= 1e-5f * q.scales[g])) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": weight (", r, ", ", c, ") = ", got, " but its quantization grid gives ", want,
            ": the quantized codes do not describe the model's current weights"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckQuantized(const QuantizedMap& quantized,
                            const std::map<std::string, TensorPlan*>& by_hf) {
  for (const auto& [name, q] : quantized) {
    auto it = by_hf.find(name);
    if (it == by_hf.end() || !it->second->is_matrix() || q == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("quantized tensor ", name, " is not a 2-D weight of the model"));
    }
    RETURN_IF_ERROR(ValidateQuantizedTensor(*q, name));
    if (q->rows != it->second->rows() || q->cols != it->second->row_len()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": quantized shape [", q->rows, ", ",
                                                     q->cols, "] != weight shape ",
                                                     engine::ShapeString(it->second->shape)));
    }
  }
  return absl::OkStatus();
}

// A target's type: from its grid exactly when possible, else the requested type.
absl::Status ChooseTarget(const QuantizedTensor* q, std::optional<GgmlType> fixed, TensorPlan* p) {
  GgufTensorReport& r = p->report;
  if (q != nullptr) {
    std::optional<GgmlType> exact;
    if (!fixed.has_value()) {
      exact = ExactGridType(*q);
    } else if (GridFitsType(*q, *fixed)) {
      exact = fixed;
    }
    if (exact.has_value()) {
      RETURN_IF_ERROR(CheckGridMatches(*q, *p->tensor, r.hf_name));
      r.requested = r.type = *exact;
      r.exact_from_grid = true;
      p->grid = q;
      return absl::OkStatus();
    }
    r.requested = fixed.has_value() ? *fixed : ByBits(q->grid.bits);
    r.note = absl::StrCat("its ", q->grid.bits, "-bit grid (group size ", q->grid.group_size,
                          ") has no exact encoding as ",
                          fixed.has_value() ? engine::GgmlTypeName(*fixed) : "a ggml type",
                          ": re-quantized from its weights");
    if (q->grid.bits <= 3 && q->grid.scale_bits == 0) {
      absl::StrAppend(&r.note, " (grid.scale_bits: 6 with group_size 16 or 32 writes ",
                      q->grid.bits, "-bit codes exactly as Q3_K",
                      q->grid.bits == 2 ? "; asymmetric with scale_bits: 4, as Q2_K)" : ")");
    }
    return absl::OkStatus();
  }
  r.requested = fixed.has_value() ? *fixed : GgmlType::kF16;
  return absl::OkStatus();
}

// Applies the block-size fallback and sets the byte size.
absl::Status Finish(TensorPlan* p) {
  GgufTensorReport& r = p->report;
  if (!r.exact_from_grid) {
    r.type = r.requested;
    while (p->row_len() % BlockSize(r.type) != 0) r.type = Substitute(r.type);
    if (r.type != r.requested) {
      absl::StrAppend(&r.note, r.note.empty() ? "" : "; ", engine::GgmlTypeName(r.requested),
                      " blocks of ", BlockSize(r.requested), " do not divide rows of ",
                      p->row_len(), ": written as ", engine::GgmlTypeName(r.type));
    }
  }
  ASSIGN_OR_RETURN(uint64_t row_bytes, engine::GgmlRowBytes(r.type, p->row_len()));
  r.bytes = row_bytes * static_cast<uint64_t>(p->rows());
  return absl::OkStatus();
}

// UNIMPLEMENTED unless llama.cpp's architecture for `c` runs it as we do.
// What llama.cpp's gemma2 / gemma3 fix instead of reading (GgufGemma*), or
// nullptr when the model has it.
const char* GemmaMismatch(const engine::LlamaConfig& c, const engine::Family& family) {
  if (c.query_pre_attn_scalar != engine::GgufGemmaQueryScalar(c))
    return "query_pre_attn_scalar other than head_dim";
  if (c.sliding_window <= 0) return "no sliding window (llama.cpp's gemma always has one)";
  if (c.sliding_layers != engine::GgufGemmaSlidingLayers(c))
    return "windowed layers (layer_types) other than its fixed pattern";
  if (family.gemma3 && (c.attn_softcap > 0 || c.final_softcap > 0)) return "soft-capping";
  if (!family.gemma3 && (c.attn_softcap <= 0 || c.final_softcap <= 0))
    return "no attention or logit soft-capping";  // gemma2 always caps (50 / 30 by default)
  if (family.gemma3 && c.local_rope_theta != 10000.0f)
    return "a windowed-layer rope theta other than 10000";
  return nullptr;
}

// UNIMPLEMENTED unless llama.cpp's architecture for `c` runs it as we do.
absl::Status CheckArchitecture(const engine::LlamaConfig& c) {
  // llama.cpp's architecture for Phi-3: not written yet. (A llama file's
  // q/k/v biases are kept: llama.cpp reads them.)
  const engine::Family* family = engine::FindFamily(c.model_type);
  const char* missing =
      family == nullptr || family->gguf_arch == nullptr ? "no llama.cpp architecture written for it"
      // llama.cpp's phi3 runs without its window: one that never bites is fine.
      : c.sliding_window > 0 && !family->gemma &&
              !(family->fused_projections && c.sliding_window >= c.max_position)
          ? "sliding-window attention"
      : c.rotary_dims > 0 && !family->fused_projections ? "partial rotary"
      : c.qk_norm != family->qk_norm || c.qk_norm_whole != family->qk_norm_whole ||
              c.sandwich_norms != family->gemma ||
              c.fused_projections != family->fused_projections ||
              (c.n_experts > 0) != (family->moe != engine::MoeKind::kDense)
          ? "ops its architecture lacks"
      : family->gemma ? GemmaMismatch(c, *family)
                      : nullptr;
  // llama.cpp's MoE archs: experts in every layer, their own top-k weighting,
  // Qwen2-MoE with its biases and shared expert.
  if (missing == nullptr && c.n_experts > 0) {
    missing = !c.moe_layers.empty() ? "dense MLP layers among the experts (mlp_only_layers)"
              : c.norm_topk_prob != family->gguf_norm_topk
                  ? (family->gguf_norm_topk ? "top-k routing weights not renormalised"
                                            : "top-k routing weights renormalised")
              : family->moe == engine::MoeKind::kQwenShared &&
                      (!c.attention_bias || c.shared_expert_intermediate == 0)
                  ? "Qwen2-MoE without q/k/v biases or a shared expert"
              : family->moe == engine::MoeKind::kOlmoe && c.n_kv_heads != c.n_heads
                  ? "grouped-query keys under OLMoE's whole-projection k norm"
                  : nullptr;
  }
  if (missing != nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        "GGUF export of model_type \"", c.model_type, "\" (", missing,
        ", which llama.cpp's architecture does not have); use output.format hf_safetensors or "
        "gptq"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TensorPlan>> ListTensors(const engine::LlamaConfig& c, bool tied,
                                                    const engine::LlamaModel* model) {
  std::vector<TensorPlan> plans;
  if (c.rope_scaling.type == "llama3") {
    TensorPlan p;
    p.report.gguf_name = "rope_freqs.weight";
    p.generated = Llama3RopeFactors(c);
    p.shape = {static_cast<int64_t>(p.generated.size())};
    plans.push_back(std::move(p));
  } else if (c.rope_scaling.type == "longrope" && c.fused_projections) {
    // Phi-3's per-frequency divisors, as llama.cpp's phi3 reads them.
    for (const auto& [name, factors] :
         {std::pair{"rope_factors_long.weight", &c.rope_scaling.long_factor},
          std::pair{"rope_factors_short.weight", &c.rope_scaling.short_factor}}) {
      TensorPlan p;
      p.report.gguf_name = name;
      p.generated = *factors;
      p.shape = {static_cast<int64_t>(p.generated.size())};
      plans.push_back(std::move(p));
    }
  } else if (!c.rope_scaling.type.empty() && c.rope_scaling.type != "linear") {
    return absl::UnimplementedError(
        absl::StrCat("GGUF export of rope scaling \"", c.rope_scaling.type, "\""));
  }
  RETURN_IF_ERROR(CheckArchitecture(c));
  auto of = [model](const engine::Tensor& t) { return model == nullptr ? nullptr : &t; };
  const engine::LlamaModel empty;
  const engine::LlamaModel& m = model == nullptr ? empty : *model;
  const std::vector<int64_t> embed = {c.vocab, c.hidden};
  RETURN_IF_ERROR(AddPlan(&plans, "token_embd.weight", "model.embed_tokens.weight",
                          of(m.embed_tokens), embed, RowPermutation::kNone));
  const engine::BlockWeights no_block;
  for (int i = 0; i < c.n_layers; ++i) {
    const engine::BlockWeights& b = model == nullptr ? no_block : model->blocks.at(i);
    for (const engine::BlockTensorSpec& spec : engine::BlockTensorSpecs()) {
      if (!HasTensor(c, spec, i)) continue;
      RETURN_IF_ERROR(AddPlan(&plans, absl::StrCat("blk.", i, ".", spec.gguf_suffix),
                              absl::StrCat("model.layers.", i, ".", engine::HfSuffix(c, spec)),
                              of(b.*spec.slot), engine::ExpectedShape(c, spec),
                              engine::GgufPermutation(c, spec)));
      if (c.norm_offset && engine::IsNormSpec(spec)) plans.back().add = 1.0f;  // 1 + w
      size_t part = 0;
      if (const engine::GgufFusedTensor* fused = engine::GgufFusedOf(c, spec.slot, &part)) {
        TensorPlan& p = plans.back();  // Phi-3: q/k/v rows in attn_qkv, gate/up in ffn_up
        p.report.gguf_name = absl::StrCat("blk.", i, ".", fused->gguf_suffix);
        p.continues_stack = part > 0;
        if (part == 0) {
          const std::vector<int64_t> shape = engine::GgufFusedShape(c, *fused);
          p.stack_ne.assign(shape.rbegin(), shape.rend());
          p.stack_size = static_cast<int>(fused->parts.size());
        }
      }
    }
    ASSIGN_OR_RETURN(std::vector<engine::GgufMoeTensor> moe,
                     MoeTensorsOf(c, i, model == nullptr ? nullptr : &b));
    for (const engine::GgufMoeTensor& t : moe) {
      const size_t first = plans.size();
      for (const engine::BlockPart& part : t.parts) {
        RETURN_IF_ERROR(AddPlan(&plans, absl::StrCat("blk.", i, ".", t.gguf_suffix),
                                absl::StrCat("model.layers.", i, ".", part.suffix),
                                model == nullptr ? nullptr : part.tensor, part.shape,
                                RowPermutation::kNone));
        plans.back().keep_f32 = engine::IsRouterSuffix(part.suffix);
        plans.back().continues_stack = plans.size() - 1 > first;
      }
      if (t.parts.size() > 1 || t.shape != t.parts[0].shape) {
        plans[first].stack_ne.assign(t.shape.rbegin(), t.shape.rend());
        plans[first].stack_size = static_cast<int>(t.parts.size());
      }
    }
  }
  RETURN_IF_ERROR(AddPlan(&plans, "output_norm.weight", "model.norm.weight", of(m.final_norm),
                          {c.hidden}, RowPermutation::kNone));
  if (c.norm_offset) plans.back().add = 1.0f;
  if (!tied) {
    RETURN_IF_ERROR(AddPlan(&plans, "output.weight", "lm_head.weight", of(m.lm_head), embed,
                            RowPermutation::kNone));
  }
  return plans;
}

absl::StatusOr<std::vector<TensorPlan>> ListTensors(const engine::LlamaModel& model) {
  return ListTensors(model.config, engine::LmHeadIsTied(model), &model);
}

absl::Status CheckNames(const GgufExportOptions& options, const QuantizedMap& quantized,
                        std::vector<TensorPlan>* plans) {
  std::map<std::string, TensorPlan*> by_hf;
  for (TensorPlan& p : *plans) by_hf[p.report.hf_name] = &p;
  for (const std::string& name : options.targets) {
    auto it = by_hf.find(name);
    if (it == by_hf.end() || !it->second->is_matrix()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target ", name, " is not a 2-D weight of the model"));
    }
  }
  return CheckQuantized(quantized, by_hf);
}

absl::Status ChooseType(const GgufExportOptions& options, const QuantizedTensor* q,
                        TensorPlan* p, std::optional<GgmlType> same_as) {
  const std::string& name = p->report.hf_name;
  if (same_as.has_value()) {  // a stack's type is its first tensor's
    if (q != nullptr) {
      RETURN_IF_ERROR(ChooseTarget(q, same_as, p));
    } else {
      p->report.requested = *same_as;
    }
  } else if (!p->is_matrix()) {
    p->report.requested = GgmlType::kF32;
  } else if (options.targets.count(name) > 0 || q != nullptr) {
    RETURN_IF_ERROR(ChooseTarget(q, options.target_type, p));
  } else {
    p->report.requested = p->keep_f32 ? GgmlType::kF32 : options.other_type;
  }
  return Finish(p);
}

absl::StatusOr<std::vector<engine::GgufMoeTensor>> MoeTensorsOf(const engine::LlamaConfig& c,
                                                                int layer,
                                                                const engine::BlockWeights* block) {
  if (block != nullptr && engine::LayerIsMoe(c, layer) &&
      block->experts.size() != static_cast<size_t>(c.n_experts)) {
    return absl::InvalidArgumentError(absl::StrCat("model block ", layer, " has ",
                                                   block->experts.size(), " experts, its config ",
                                                   c.n_experts));
  }
  // At the config's count, GgufMoeTensors only reads the block (its resize is a no-op).
  return engine::GgufMoeTensors(c, layer, const_cast<engine::BlockWeights*>(block));
}

void AddTensorInfos(const std::vector<TensorPlan>& plans, GgufBuilder* b) {
  for (size_t i = 0; i < plans.size(); ++i) {
    const TensorPlan& p = plans[i];
    if (p.continues_stack) continue;
    uint64_t bytes = 0;
    for (size_t k = i; k < i + static_cast<size_t>(p.stack_size); ++k) bytes += plans[k].report.bytes;
    b->AddTensor(p.report.gguf_name, p.stack_ne.empty() ? p.ne() : p.stack_ne, p.report.type,
                 bytes);
  }
}

absl::Status ChooseTypes(const GgufExportOptions& options, const QuantizedMap& quantized,
                         std::vector<TensorPlan>* plans) {
  RETURN_IF_ERROR(CheckNames(options, quantized, plans));
  std::optional<GgmlType> previous;
  for (TensorPlan& p : *plans) {
    auto q = quantized.find(p.report.hf_name);
    RETURN_IF_ERROR(ChooseType(options, q == quantized.end() ? nullptr : q->second, &p,
                               p.continues_stack ? previous : std::nullopt));
    previous = p.report.type;
  }
  return absl::OkStatus();
}

uint32_t LlamaFileType(const std::vector<TensorPlan>& plans) {
  std::map<GgmlType, int64_t> weights;
  for (const TensorPlan& p : plans) {
    if (p.is_matrix()) weights[p.report.type] += p.rows() * p.row_len();
  }
  GgmlType main = GgmlType::kF32;
  int64_t most = -1;
  for (const auto& [type, n] : weights) {
    if (n > most) {
      most = n;
      main = type;
    }
  }
  switch (main) {  // llama.h enum llama_ftype (the *_M variants for the k-quants)
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ4_1:
      return 3;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ5_0:
      return 8;
    case GgmlType::kQ5_1:
      return 9;
    case GgmlType::kQ2_K:
      return 10;  // LLAMA_FTYPE_MOSTLY_Q2_K
    case GgmlType::kQ3_K:
      return 12;  // LLAMA_FTYPE_MOSTLY_Q3_K_M
    case GgmlType::kQ4_K:
      return 15;
    case GgmlType::kQ5_K:
      return 17;
    case GgmlType::kQ6_K:
      return 18;
    default:
      return 0;  // all F32
  }
}

}  // namespace compressd::engine::gguf_export_internal
