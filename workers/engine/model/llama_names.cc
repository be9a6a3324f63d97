#include "workers/engine/model/llama_names.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace compressd::engine {

bool LmHeadIsTied(const LlamaModel& model) {
  return model.lm_head.empty() || model.lm_head.data == model.embed_tokens.data;
}

namespace {

// A block's tensors in NamedTensors' order, with their HF name suffixes
// (`sandwich`: the name under Gemma's sandwich norms, if other).
struct BlockSlot {
  const char* suffix;
  Tensor BlockWeights::*slot;
  const char* sandwich = nullptr;
};
constexpr BlockSlot kBlockSlots[] = {
    {"input_layernorm.weight", &BlockWeights::attn_norm},
    {"self_attn.q_proj.weight", &BlockWeights::q_proj},
    {"self_attn.q_proj.bias", &BlockWeights::q_bias},
    {"self_attn.k_proj.weight", &BlockWeights::k_proj},
    {"self_attn.k_proj.bias", &BlockWeights::k_bias},
    {"self_attn.v_proj.weight", &BlockWeights::v_proj},
    {"self_attn.v_proj.bias", &BlockWeights::v_bias},
    {"self_attn.q_norm.weight", &BlockWeights::q_norm},
    {"self_attn.k_norm.weight", &BlockWeights::k_norm},
    {"self_attn.o_proj.weight", &BlockWeights::o_proj},
    {"post_attention_layernorm.weight", &BlockWeights::attn_post_norm},  // Gemma only
    {"post_attention_layernorm.weight", &BlockWeights::mlp_norm, "pre_feedforward_layernorm.weight"},
    {"mlp.gate_proj.weight", &BlockWeights::gate_proj},
    {"mlp.up_proj.weight", &BlockWeights::up_proj},
    {"mlp.down_proj.weight", &BlockWeights::down_proj},
    {"post_feedforward_layernorm.weight", &BlockWeights::mlp_post_norm}};  // Gemma only

const char* SuffixOf(const LlamaConfig& c, const BlockSlot& s) {
  return c.sandwich_norms && s.sandwich != nullptr ? s.sandwich : s.suffix;
}

bool IsSandwichNorm(const BlockSlot& s) {
  return s.slot == &BlockWeights::attn_post_norm || s.slot == &BlockWeights::mlp_post_norm;
}

bool IsDenseMlp(const BlockSlot& s) {
  return s.slot == &BlockWeights::gate_proj || s.slot == &BlockWeights::up_proj ||
         s.slot == &BlockWeights::down_proj;
}

}  // namespace

std::vector<BlockPart> MoeTensors(const LlamaConfig& c, int layer, BlockWeights* block) {
  std::vector<BlockPart> out;
  if (!LayerIsMoe(c, layer)) return out;
  const int64_t h = c.hidden;
  if (block != nullptr) block->experts.resize(static_cast<size_t>(c.n_experts));
  auto slot = [&](Tensor BlockWeights::*member) {
    return block != nullptr ? &(block->*member) : nullptr;
  };
  // An expert's three projections under `prefix` in the family's names.
  auto mlp = [&](const std::string& prefix, int64_t width, ExpertWeights* e, bool mixtral) {
    out.push_back({prefix + (mixtral ? "w1.weight" : "gate_proj.weight"), {width, h},
                   e != nullptr ? &e->gate_proj : nullptr});
    out.push_back({prefix + (mixtral ? "w3.weight" : "up_proj.weight"), {width, h},
                   e != nullptr ? &e->up_proj : nullptr});
    out.push_back({prefix + (mixtral ? "w2.weight" : "down_proj.weight"), {h, width},
                   e != nullptr ? &e->down_proj : nullptr});
  };
  const std::string moe = c.mixtral_names ? "block_sparse_moe." : "mlp.";
  out.push_back({moe + "gate.weight", {c.n_experts, h}, slot(&BlockWeights::router)});
  for (int e = 0; e < c.n_experts; ++e) {
    mlp(absl::StrCat(moe, "experts.", e, "."), c.expert_intermediate,
        block != nullptr ? &block->experts[static_cast<size_t>(e)] : nullptr, c.mixtral_names);
  }
  if (c.shared_expert_intermediate > 0) {
    mlp("mlp.shared_expert.", c.shared_expert_intermediate,
        block != nullptr ? &block->shared_expert : nullptr, false);
    out.push_back({"mlp.shared_expert_gate.weight", {1, h}, slot(&BlockWeights::shared_expert_gate)});
  }
  return out;
}

bool IsRouterSuffix(const std::string& suffix) {
  return suffix == "mlp.gate.weight" || suffix == "block_sparse_moe.gate.weight" ||
         suffix == "mlp.shared_expert_gate.weight" || suffix == "mlp.gate" ||
         suffix == "block_sparse_moe.gate" || suffix == "mlp.shared_expert_gate";
}

std::vector<NamedTensor> BlockTensors(const LlamaConfig& config, int index, BlockWeights* block) {
  std::vector<NamedTensor> out;
  const std::string p = absl::StrCat("model.layers.", index, ".");
  for (const BlockSlot& s : kBlockSlots) {
    Tensor* t = &(block->*s.slot);
    if (!t->empty()) out.push_back({p + SuffixOf(config, s), t});
    if (s.slot == &BlockWeights::mlp_norm) {  // the experts where a dense MLP would be
      for (const BlockPart& m : MoeTensors(config, index, block)) {
        if (!m.tensor->empty()) out.push_back({p + m.suffix, m.tensor});
      }
    }
  }
  return out;
}

std::vector<NamedTensor> NamedTensors(LlamaModel* model) {
  std::vector<NamedTensor> out;
  if (!model->embed_tokens.empty())
    out.push_back({"model.embed_tokens.weight", &model->embed_tokens});
  for (size_t i = 0; i < model->blocks.size(); ++i) {
    for (NamedTensor& t : BlockTensors(model->config, static_cast<int>(i), &model->blocks[i])) {
      out.push_back(std::move(t));
    }
  }
  if (!model->final_norm.empty()) out.push_back({"model.norm.weight", &model->final_norm});
  if (!LmHeadIsTied(*model)) out.push_back({"lm_head.weight", &model->lm_head});
  return out;
}

std::vector<NamedShape> NamedShapes(LlamaModel* model) {
  std::vector<NamedShape> out;
  for (const NamedTensor& t : NamedTensors(model)) out.push_back({t.name, t.tensor->shape});
  return out;
}

std::vector<NamedShape> ConfigShapes(const LlamaConfig& c) {
  const int64_t h = c.hidden, qd = int64_t{c.n_heads} * c.head_dim,
                kvd = int64_t{c.n_kv_heads} * c.head_dim, ff = c.intermediate;
  const std::map<std::string, std::vector<int64_t>> block = {
      {"input_layernorm.weight", {h}},          {"self_attn.q_proj.weight", {qd, h}},
      {"self_attn.q_proj.bias", {qd}},          {"self_attn.k_proj.weight", {kvd, h}},
      {"self_attn.k_proj.bias", {kvd}},         {"self_attn.v_proj.weight", {kvd, h}},
      {"self_attn.v_proj.bias", {kvd}},         {"self_attn.o_proj.weight", {h, qd}},
      {"post_attention_layernorm.weight", {h}}, {"mlp.gate_proj.weight", {ff, h}},
      {"mlp.up_proj.weight", {ff, h}},          {"mlp.down_proj.weight", {h, ff}},
      {"self_attn.q_norm.weight", {c.head_dim}}, {"self_attn.k_norm.weight", {c.head_dim}},
      {"pre_feedforward_layernorm.weight", {h}}, {"post_feedforward_layernorm.weight", {h}}};
  std::vector<NamedShape> out = {{"model.embed_tokens.weight", {c.vocab, h}}};
  for (int i = 0; i < c.n_layers; ++i) {
    for (const BlockSlot& s : kBlockSlots) {
      const bool bias = absl::EndsWith(s.suffix, ".bias");
      const bool qk_norm = absl::StrContains(s.suffix, "_norm.weight") &&
                           absl::StartsWith(s.suffix, "self_attn.");
      if ((bias && !c.attention_bias) || (qk_norm && !c.qk_norm) ||
          (IsSandwichNorm(s) && !c.sandwich_norms) || (IsDenseMlp(s) && LayerIsMoe(c, i))) {
        continue;
      }
      const char* suffix = SuffixOf(c, s);
      std::vector<int64_t> shape = block.at(suffix);
      if (qk_norm && c.qk_norm_whole) shape = {s.slot == &BlockWeights::q_norm ? qd : kvd};
      out.push_back({absl::StrCat("model.layers.", i, ".", suffix), std::move(shape)});
      if (s.slot != &BlockWeights::mlp_norm) continue;
      for (const BlockPart& m : MoeTensors(c, i, nullptr)) {
        out.push_back({absl::StrCat("model.layers.", i, ".", m.suffix), m.shape});
      }
    }
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab, h}});
  return out;
}

namespace {

// A fused group's parts (in row order) and the stored tensor they make up.
struct FusedGroup {
  const char* stored;
  std::vector<const char*> parts;
};
const FusedGroup kFusedGroups[] = {
    {"self_attn.qkv_proj.weight",
     {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
    {"mlp.gate_up_proj.weight", {"mlp.gate_proj.weight", "mlp.up_proj.weight"}},
};

int64_t PartRows(const LlamaConfig& c, absl::string_view part) {
  if (part == "self_attn.q_proj.weight") return int64_t{c.n_heads} * c.head_dim;
  if (absl::StartsWith(part, "self_attn.")) return int64_t{c.n_kv_heads} * c.head_dim;
  return c.intermediate;  // gate, up
}

}  // namespace

StoredPlace StoredPlaceOf(const LlamaConfig& c, const std::string& name,
                          const std::vector<int64_t>& shape) {
  StoredPlace place{name, 0, shape};
  if (!c.fused_projections || !absl::StartsWith(name, "model.layers.")) return place;
  const size_t dot = name.find('.', sizeof("model.layers.") - 1);
  if (dot == std::string::npos) return place;
  const std::string prefix = name.substr(0, dot + 1), suffix = name.substr(dot + 1);
  for (const FusedGroup& g : kFusedGroups) {
    int64_t row = 0, total = 0;
    bool found = false;
    for (const char* part : g.parts) {
      if (part == suffix) {
        found = true;
        place.first_row = row;
      }
      if (!found) row += PartRows(c, part);
      total += PartRows(c, part);
    }
    if (!found) continue;
    place.name = prefix + g.stored;
    place.shape = {total, shape.size() == 2 ? shape[1] : int64_t{c.hidden}};
    return place;
  }
  return place;
}

std::vector<NamedShape> StoredShapes(const LlamaConfig& c) {
  std::vector<NamedShape> out;
  for (const NamedShape& t : ConfigShapes(c)) {
    const StoredPlace place = StoredPlaceOf(c, t.name, t.shape);
    if (place.name == t.name) {
      out.push_back(t);
    } else if (place.first_row == 0) {
      out.push_back({place.name, place.shape});
    }
  }
  return out;
}

uint32_t ActQuantBit(const BlockWeights& w, const Tensor* t) {
  const std::pair<const Tensor*, uint32_t> own[] = {{&w.q_proj, kActQProj},
                                                    {&w.k_proj, kActKProj},
                                                    {&w.v_proj, kActVProj},
                                                    {&w.o_proj, kActOProj},
                                                    {&w.gate_proj, kActGateProj},
                                                    {&w.up_proj, kActUpProj},
                                                    {&w.down_proj, kActDownProj},
                                                    {&w.router, kActRouter},
                                                    {&w.shared_expert.gate_proj, kActSharedExpert},
                                                    {&w.shared_expert.up_proj, kActSharedExpert},
                                                    {&w.shared_expert.down_proj, kActSharedExpert},
                                                    {&w.shared_expert_gate, kActSharedExpertGate}};
  for (const auto& [tensor, bit] : own) {
    if (t == tensor) return bit;
  }
  for (const ExpertWeights& e : w.experts) {
    if (t == &e.gate_proj || t == &e.up_proj || t == &e.down_proj) return kActExperts;
  }
  return 0;
}

}  // namespace compressd::engine
