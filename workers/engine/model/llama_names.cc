#include "workers/engine/model/llama_names.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace compressd::engine {

bool LmHeadIsTied(const LlamaModel& model) {
  return model.lm_head.empty() || model.lm_head.data == model.embed_tokens.data;
}

namespace {

// A block's tensors in NamedTensors' order, with their HF name suffixes.
struct BlockSlot {
  const char* suffix;
  Tensor BlockWeights::*slot;
};
constexpr BlockSlot kBlockSlots[] = {{"input_layernorm.weight", &BlockWeights::attn_norm},
                                     {"self_attn.q_proj.weight", &BlockWeights::q_proj},
                                     {"self_attn.q_proj.bias", &BlockWeights::q_bias},
                                     {"self_attn.k_proj.weight", &BlockWeights::k_proj},
                                     {"self_attn.k_proj.bias", &BlockWeights::k_bias},
                                     {"self_attn.v_proj.weight", &BlockWeights::v_proj},
                                     {"self_attn.v_proj.bias", &BlockWeights::v_bias},
                                     {"self_attn.q_norm.weight", &BlockWeights::q_norm},
                                     {"self_attn.k_norm.weight", &BlockWeights::k_norm},
                                     {"self_attn.o_proj.weight", &BlockWeights::o_proj},
                                     {"post_attention_layernorm.weight", &BlockWeights::mlp_norm},
                                     {"mlp.gate_proj.weight", &BlockWeights::gate_proj},
                                     {"mlp.up_proj.weight", &BlockWeights::up_proj},
                                     {"mlp.down_proj.weight", &BlockWeights::down_proj}};

}  // namespace

std::vector<NamedTensor> BlockTensors(int index, BlockWeights* block) {
  std::vector<NamedTensor> out;
  const std::string p = absl::StrCat("model.layers.", index, ".");
  for (const BlockSlot& s : kBlockSlots) {
    Tensor* t = &(block->*s.slot);
    if (!t->empty()) out.push_back({p + s.suffix, t});
  }
  return out;
}

std::vector<NamedTensor> NamedTensors(LlamaModel* model) {
  std::vector<NamedTensor> out;
  if (!model->embed_tokens.empty())
    out.push_back({"model.embed_tokens.weight", &model->embed_tokens});
  for (size_t i = 0; i < model->blocks.size(); ++i) {
    for (NamedTensor& t : BlockTensors(static_cast<int>(i), &model->blocks[i])) {
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
      {"self_attn.q_norm.weight", {c.head_dim}}, {"self_attn.k_norm.weight", {c.head_dim}}};
  std::vector<NamedShape> out = {{"model.embed_tokens.weight", {c.vocab, h}}};
  for (int i = 0; i < c.n_layers; ++i) {
    for (const BlockSlot& s : kBlockSlots) {
      const bool bias = absl::EndsWith(s.suffix, ".bias");
      const bool qk_norm = absl::StrContains(s.suffix, "_norm.weight") &&
                           absl::StartsWith(s.suffix, "self_attn.");
      if ((bias && !c.attention_bias) || (qk_norm && !c.qk_norm)) continue;
      out.push_back({absl::StrCat("model.layers.", i, ".", s.suffix), block.at(s.suffix)});
    }
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab, h}});
  return out;
}

}  // namespace compressd::engine
