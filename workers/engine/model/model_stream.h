// A stored Llama-family model read block by block, for jobs on models larger
// than memory (pipeline/hf_block_stream.h): the config and every tensor's
// name, shape and type are checked when the stream is opened (so a bad file
// fails before any long step), but no weight is read until asked for. Each
// tensor is then materialised in float32 only when asked for, and Release*()
// returns its mapped pages to the kernel, so resident memory holds the block
// at hand, not the model.
//
// Names and orientation are Hugging Face's whatever the file
// ("model.layers.3.self_attn.q_proj.weight", [out, in], HF row order):
// HfLlamaStream (gguf/hf_llama.h) reads safetensors shards, GgufLlamaStream
// (gguf/gguf_model.h) a llama.cpp GGUF file of any supported type, its q/k
// rows put back in HF order as LoadGgufModel does, GptqStream
// (gguf/gptq_stream.h) a GPTQ-packed checkpoint, dequantized. A block loaded from a
// stream is bit-identical to the same block of the whole model loaded by
// LoadModel (model_loader.h). Implementations are not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

class GgufFile;

class ModelStream {
 public:
  virtual ~ModelStream() = default;

  virtual const LlamaConfig& config() const = 0;
  // Block i's tensors (biases only with attention_bias); OUT_OF_RANGE for a
  // block the model does not have.
  virtual absl::StatusOr<BlockWeights> LoadBlock(int i) const = 0;
  virtual void ReleaseBlock(int i) const = 0;
  // A tensor outside the blocks by its HF name ("model.norm.weight",
  // "model.embed_tokens.weight", "lm_head.weight"), whole; NOT_FOUND if the
  // file has no such tensor.
  virtual absl::StatusOr<Tensor> LoadTensor(const std::string& name) const = 0;
  // Rows [row, row + n) of a 2-D tensor outside the blocks in float32 into
  // out[n, cols]: the embedding lookup, the LM head in vocabulary chunks,
  // and copying the large tensors out in chunks.
  virtual absl::Status ReadRows(const std::string& name, int64_t row, int64_t n,
                                float* out) const = 0;
  virtual void Release(const std::string& name) const = 0;
  // The model's path (a directory or a .gguf file), for messages.
  virtual const std::string& path() const = 0;
  // The bytes of every stored tensor (the model's size on disk).
  virtual uint64_t weight_bytes() const = 0;
  // The GGUF file the model was read from (its tokenizer and metadata, for a
  // GGUF output), or null.
  virtual const GgufFile* gguf() const { return nullptr; }
};

}  // namespace compressd::engine
