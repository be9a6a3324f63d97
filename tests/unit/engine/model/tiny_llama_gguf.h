// Builds small llama-architecture GGUF files the way llama.cpp's converter
// lays them out (reversed dims, Q/K rows permuted), from random HF-order
// weights that the test keeps to compare against. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tests/unit/engine/model/gguf_writer.h"

namespace compressd::engine::testing {

struct TinyLlamaSpec {
  int n_layers = 2, hidden = 64, intermediate = 96, n_heads = 4, n_kv_heads = 2, vocab = 40;
  bool tied = true;
  bool quantize = true;  // matrices as Q8_0 (scale 2^-6, exact), else F32
  bool attention_bias = false;
  bool qk_norm = false;  // Qwen3's per-head q/k norms (HF checkpoints only: no GGUF arch here)
  std::vector<float> rope_freqs;  // written as rope_freqs.weight when non-empty
  float rope_theta = 10000.0f;
  // Corruptions.
  std::string drop_tensor;   // GGUF name of a tensor to leave out
  std::string widen_tensor;  // GGUF name of a tensor whose outer dim is one larger
  std::string extra_tensor;  // an additional unmapped F32 tensor
  std::string drop_key;      // a metadata key to leave out
};

struct TinyLlama {
  std::string bytes;                                     // the GGUF file
  std::map<std::string, std::vector<float>> hf;          // HF name -> HF-order values
  std::map<std::string, std::vector<int64_t>> hf_shape;  // HF name -> HF shape
};

TinyLlama BuildTinyLlama(const TinyLlamaSpec& spec, unsigned seed = 1);

}  // namespace compressd::engine::testing
