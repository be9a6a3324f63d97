// The Hugging Face tensor names of a LlamaModel's weights
// ("model.layers.3.mlp.up_proj.weight", ...), in the order transformers lists
// them: embedding, then per layer the norms and projections, the final norm
// and (when not tied to the embedding) lm_head. Used to pick compression
// targets by their HF module names and to export the model. Stateless;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

struct NamedTensor {
  std::string name;  // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
  Tensor* tensor;
};

// True when lm_head is the embedding matrix itself (tied and sharing data):
// then lm_head has no name of its own.
bool LmHeadIsTied(const LlamaModel& model);

// Every non-empty tensor of `model` with its HF name; lm_head is left out
// when LmHeadIsTied. Pointers are into `model`.
std::vector<NamedTensor> NamedTensors(LlamaModel* model);

// A tensor's HF name and shape, without its data.
struct NamedShape {
  std::string name;
  std::vector<int64_t> shape;
};

// The names and shapes of NamedTensors(model).
std::vector<NamedShape> NamedShapes(LlamaModel* model);
// The same for the complete model `config` describes (lm_head left out when
// config.tie_word_embeddings): what NamedShapes gives once it is loaded,
// known before any weight is (block-at-a-time jobs).
std::vector<NamedShape> ConfigShapes(const LlamaConfig& config);
// The names of block `index`'s tensors in `block` (non-empty ones), as
// NamedTensors lists them for a model of `config` (Gemma names its norms
// differently).
std::vector<NamedTensor> BlockTensors(const LlamaConfig& config, int index, BlockWeights* block);

// A tensor of a block with its HF name suffix ("mlp.experts.3.up_proj.weight")
// and shape; `tensor` is its slot in a block, or null.
struct BlockPart {
  std::string suffix;
  std::vector<int64_t> shape;
  Tensor* tensor = nullptr;
};
// The mixture-of-experts tensors of layer `layer` (none for a dense layer):
// the router, each expert's gate, up and down projections, then the shared
// expert's and its gate. With a `block`, sizes its experts to n_experts and
// points the entries at its slots.
std::vector<BlockPart> MoeTensors(const LlamaConfig& config, int layer, BlockWeights* block);
// Whether `suffix` (after "model.layers.N.") names a router or a shared
// expert's gate: linears whose output decides the routing, dense by default.
bool IsRouterSuffix(const std::string& suffix);

// The ActQuant bit (llama_model.h) of the linear that `t` points to in block
// w (an expert's: kActExperts); 0 when t is none of w's linears.
uint32_t ActQuantBit(const BlockWeights& w, const Tensor* t);

// Where a tensor named as above lives in the family's checkpoint. Phi-3
// (config.fused_projections) stores q/k/v as consecutive row ranges of one
// "self_attn.qkv_proj.weight" and gate/up of one "mlp.gate_up_proj.weight";
// every other tensor is stored under its own name (first_row 0, `shape`).
struct StoredPlace {
  std::string name;             // the stored tensor
  int64_t first_row = 0;        // where this tensor's rows start in it
  std::vector<int64_t> shape;   // the stored tensor's shape
};
StoredPlace StoredPlaceOf(const LlamaConfig& config, const std::string& name,
                          const std::vector<int64_t>& shape);
// The checkpoint's tensors: ConfigShapes with each fused group as one tensor,
// at the place of its first part.
std::vector<NamedShape> StoredShapes(const LlamaConfig& config);

}  // namespace compressd::engine
