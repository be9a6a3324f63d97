// GGUF -> LlamaModel, for files of the "llama" architecture as written by
// llama.cpp's convert_hf_to_gguf.py (Llama 2/3, Mistral, SmolLM, ...).
//
// Config (ReadGgufLlamaConfig): llama.block_count, embedding_length,
// feed_forward_length, attention.head_count, attention.head_count_kv
// (default: head_count), attention.layer_norm_rms_epsilon, rope.freq_base
// (default 10000), context_length, head_dim from attention.key_length or
// rope.dimension_count (else embedding_length / head_count; partial rotary is
// rejected), vocab from token_embd's shape (checked against llama.vocab_size),
// bos/eos from tokenizer.ggml.*_token_id. Rope scaling: "none" is accepted;
// a rope_freqs.weight tensor (written for Llama 3.1+ "llama3" scaling) is
// accepted when it equals the factors of llama3 scaling with low/high
// frequency factors 1/4 and 8192 original positions (the values every
// Llama 3.x release uses), its largest entry being the factor; any other
// scaling is INVALID_ARGUMENT.
//
// Tensors: token_embd, output_norm, output (absent => tied embeddings),
// blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
// ffn_up, ffn_down}.weight and optional blk.N.attn_{q,k,v}.bias (all layers
// or none). GGUF dims are reversed (ne[0] is the contiguous in_features), so
// the bytes of ne = [in, out] are exactly HF's row-major [out, in]. Every
// tensor's shape is checked against the config, and a tensor the loader does
// not map is an error (ignoring it would change the logits).
//
// Q/K permutation: convert_hf_to_gguf reorders the rows of q_proj/k_proj
// (and their biases) per head, w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2),
// to interleave rotary pairs. The loader writes each row back to its HF
// position: GGUF row h*hd + 2i + j is HF row h*hd + j*hd/2 + i.
//
// Memory: F32 tensors that need no permutation point into the mapping (zero
// copy; the model's tensors keep the file mapped); every other tensor is
// dequantized row by row straight into its owned float buffer, after which
// its quantized pages are released from the resident set.
//
// Errors are INVALID_ARGUMENT naming the file, the tensor or key, and the
// offset. The functions are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/model_stream.h"

namespace compressd::engine {

absl::StatusOr<LlamaConfig> ReadGgufLlamaConfig(const GgufFile& file);
absl::StatusOr<LlamaModel> LoadGgufModel(std::shared_ptr<const GgufFile> file);
absl::StatusOr<LlamaModel> LoadGgufModel(const std::string& path);

// The same file block by block (model_stream.h): Open() parses the header and
// checks the config and every tensor's name, shape and type as LoadGgufModel
// does, but dequantizes nothing; a block is dequantized (q/k rows put back in
// HF order) when asked for, bit-identical to LoadGgufModel's, and its
// quantized pages released.
class GgufLlamaStream : public ModelStream {
 public:
  static absl::StatusOr<std::unique_ptr<GgufLlamaStream>> Open(const std::string& path);
  static absl::StatusOr<std::unique_ptr<GgufLlamaStream>> Open(std::shared_ptr<const GgufFile> file);

  const LlamaConfig& config() const override { return config_; }
  absl::StatusOr<BlockWeights> LoadBlock(int i) const override;
  void ReleaseBlock(int i) const override;
  absl::StatusOr<Tensor> LoadTensor(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row, int64_t n,
                        float* out) const override;
  void Release(const std::string& name) const override;
  const std::string& path() const override;
  uint64_t weight_bytes() const override;
  const GgufFile* gguf() const override { return file_.get(); }

 private:
  GgufLlamaStream(std::shared_ptr<const GgufFile> file, LlamaConfig config)
      : file_(std::move(file)), config_(std::move(config)) {}
  // The GGUF tensor of an HF name outside the blocks; NOT_FOUND if none.
  absl::StatusOr<const GgufTensorInfo*> Find(const std::string& name) const;

  std::shared_ptr<const GgufFile> file_;
  LlamaConfig config_;
};


// The HF row index of GGUF row `row` of a permuted q/k tensor (head_dim even).
inline int64_t UnpermutedRow(int64_t row, int64_t head_dim) {
  const int64_t head = row / head_dim, w = row % head_dim;
  return head * head_dim + (w % 2) * (head_dim / 2) + w / 2;
}

}  // namespace compressd::engine
