// Writes a genuine tiny Llama model directory (config.json + safetensors,
// optionally sharded with an index) that Hugging Face transformers loads:
// by default 2 layers, hidden 64, intermediate 128, 4 heads, 2 kv heads,
// vocab 256, weights drawn from N(0, 0.02^2) with a fixed seed.
// Used by the worker unit tests and the make-tiny-llama tool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "workers/engine/model/dtype.h"

namespace compressd::testing {

struct TinyLlamaOptions {
  bool sharded = false;                       // two shards + model.safetensors.index.json
  engine::DType dtype = engine::DType::kF32;  // F32, F16 or BF16
  uint64_t seed = 20240601;
  int layers = 2;
  int hidden = 64;
  int intermediate = 128;
  int heads = 4;
  int kv_heads = 2;
  int vocab = 256;
  double weight_std = 0.02;  // of the embedding, projections and lm_head
};

// Creates `dir` if needed and writes the model into it.
absl::Status WriteTinyLlama(const std::string& dir, const TinyLlamaOptions& options = {});

// The names of the model's 2-D "*_proj" weight tensors (the default targets).
std::vector<std::string> TinyLlamaProjWeights(const TinyLlamaOptions& options = {});

// tokenizer.json text of a byte-level BPE with one token per byte (GPT-2's
// byte-to-unicode alphabet, id = byte value, no merges): any text becomes
// one token per byte, within the tiny model's vocabulary of 256.
std::string ByteLevelTokenizerJson();

// "float32", "float16" or "bfloat16".
std::string TorchDTypeName(engine::DType dtype);

}  // namespace compressd::testing
