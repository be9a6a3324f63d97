#include "workers/engine/model/llama_names.h"

#include "absl/strings/str_cat.h"

namespace compressd::engine {

bool LmHeadIsTied(const LlamaModel& model) {
  return model.lm_head.empty() || model.lm_head.data == model.embed_tokens.data;
}

std::vector<NamedTensor> NamedTensors(LlamaModel* model) {
  std::vector<NamedTensor> out;
  auto add = [&out](std::string name, Tensor* t) {
    if (!t->empty()) out.push_back({std::move(name), t});
  };
  add("model.embed_tokens.weight", &model->embed_tokens);
  for (size_t i = 0; i < model->blocks.size(); ++i) {
    BlockWeights& b = model->blocks[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", &b.attn_norm);
    add(p + "self_attn.q_proj.weight", &b.q_proj);
    add(p + "self_attn.q_proj.bias", &b.q_bias);
    add(p + "self_attn.k_proj.weight", &b.k_proj);
    add(p + "self_attn.k_proj.bias", &b.k_bias);
    add(p + "self_attn.v_proj.weight", &b.v_proj);
    add(p + "self_attn.v_proj.bias", &b.v_bias);
    add(p + "self_attn.o_proj.weight", &b.o_proj);
    add(p + "post_attention_layernorm.weight", &b.mlp_norm);
    add(p + "mlp.gate_proj.weight", &b.gate_proj);
    add(p + "mlp.up_proj.weight", &b.up_proj);
    add(p + "mlp.down_proj.weight", &b.down_proj);
  }
  add("model.norm.weight", &model->final_norm);
  if (!LmHeadIsTied(*model)) add("lm_head.weight", &model->lm_head);
  return out;
}

}  // namespace compressd::engine
