// Test helpers: the golden tiny models of tests/golden/nn_reference.py, and
// small random models built in memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine::testing {

struct TinyFixture {
  LlamaModel model;
  std::vector<std::vector<int32_t>> sequences;
  std::vector<float> logits;  // [sum of lengths, vocab], each sequence run alone
};

// Reads tests/golden/fixtures/nn_tiny_<variant>.{json,bin} (the source tree is
// found through COMPRESSD_SOURCE_DIR, which ctest sets).
absl::StatusOr<TinyFixture> LoadTinyFixture(const std::string& variant);

// A random model: weights ~ N(0, scale^2), norms ~ 1 + N(0, 0.2^2).
LlamaModel RandomModel(const LlamaConfig& config, uint32_t seed, float scale = 0.15f);

// A small GQA config (hidden 64, 2 layers, 4 heads / 2 kv heads, vocab 96).
LlamaConfig SmallConfig();

// Random token ids in [0, vocab).
std::vector<int32_t> RandomTokens(int64_t n, int vocab, uint32_t seed);

}  // namespace compressd::engine::testing
