// Hugging Face safetensors directory -> LlamaModel, for the Llama family:
// model_type llama (Llama 2/3, SmolLM), mistral, qwen2 (q/k/v biases),
// qwen3 (q/k norms), phi3 (fused qkv_proj / gate_up_proj, split by rows as
// StoredPlaceOf says; longrope; partial rotary) and smollm.
//
// Weights come through HfModel (workers/engine/model/hf_model.h): one
// model.safetensors, shards named by model.safetensors.index.json, or every
// *.safetensors file; F32, F16 and BF16. Names are HF's own
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...,
// model.norm.weight, lm_head.weight); rows are already in HF order, so no
// permutation applies. tie_word_embeddings makes lm_head share
// embed_tokens (a stored lm_head.weight is then ignored, as transformers
// does); otherwise lm_head.weight is required. GQA from num_key_value_heads.
//
// Config (ReadHfLlamaConfig): the sizes HfConfig parses plus head_dim
// (default hidden_size / num_attention_heads), max_position_embeddings,
// rms_norm_eps (default 1e-6), rope_theta (or rope_parameters.rope_theta,
// default 10000), rope_scaling / rope_parameters of type "llama3" or
// "longrope" (other scaling types are INVALID_ARGUMENT), partial_rotary_factor,
// hidden_act (only silu), bos/eos_token_id (the first of a
// list). attention_bias holds for qwen2; a llama config asking for
// attention_bias or mlp_bias is rejected (LlamaModel has no o_proj or MLP
// biases).
//
// Memory: F32 tensors point into the mapping (zero copy; the model's tensors
// keep the shards mapped); F16/BF16 ones are converted into owned buffers.
// Every tensor's shape and dtype is checked, naming the tensor; a tensor that
// is not mapped is an error. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/hf_config.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/model_stream.h"

namespace compressd::engine {

// `config_json` is config.json's text, `base` what ParseHfConfig made of it,
// `what` the file name for messages.
absl::StatusOr<LlamaConfig> ReadHfLlamaConfig(const HfConfig& base, absl::string_view config_json,
                                              const std::string& what);
absl::StatusOr<LlamaModel> LoadHfModel(const std::string& dir);

class HfModel;

// The same checkpoint block by block (model_stream.h): Open() maps the
// shards, reads the config and checks every tensor's name, shape and dtype
// as LoadHfModel does, but reads no weights; a tensor is materialised in
// float32 when asked for (F32 zero-copy, F16/BF16 converted).
class HfLlamaStream : public ModelStream {
 public:
  static absl::StatusOr<std::unique_ptr<HfLlamaStream>> Open(const std::string& dir);

  const LlamaConfig& config() const override { return config_; }
  absl::StatusOr<BlockWeights> LoadBlock(int i) const override;
  void ReleaseBlock(int i) const override;
  absl::StatusOr<Tensor> LoadTensor(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row, int64_t n,
                        float* out) const override;
  void Release(const std::string& name) const override;
  const std::string& path() const override;
  uint64_t weight_bytes() const override;

 private:
  HfLlamaStream(std::shared_ptr<const HfModel> hf, LlamaConfig config)
      : hf_(std::move(hf)), config_(std::move(config)) {}

  std::shared_ptr<const HfModel> hf_;
  LlamaConfig config_;
};

}  // namespace compressd::engine
