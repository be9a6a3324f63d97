// Shared by the packed-checkpoint tests (GPTQ, compressed-tensors): random
// quantized tensors, an independent bit-stream reader, a tiny Llama.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::testing {

using engine::QuantGrid;
using engine::QuantizedTensor;

// A QuantizedTensor with random codes, scales and zeros on `grid`; with
// `act_order` the inputs are assigned to groups through a random permutation.
inline QuantizedTensor RandomQuantized(int64_t rows, int64_t cols, QuantGrid grid, bool act_order,
                                uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedTensor q;
  q.rows = rows;
  q.cols = cols;
  q.grid = grid;
  q.groups = engine::GroupCount(grid, cols);
  const int maxq = engine::MaxQ(grid.bits);
  q.codes.resize(rows * cols);
  for (uint8_t& c : q.codes) c = static_cast<uint8_t>(rng() % (maxq + 1));
  q.scales.resize(rows * q.groups);
  q.zeros.resize(rows * q.groups);
  std::uniform_real_distribution<float> scale(1e-3f, 0.05f);
  for (int64_t i = 0; i < rows * q.groups; ++i) {
    q.scales[i] = scale(rng);
    // v1 cannot store zero 0: keep asymmetric zeros in [1, maxq].
    q.zeros[i] = grid.symmetric ? static_cast<float>(1 << (grid.bits - 1))
                                : static_cast<float>(1 + rng() % maxq);
  }
  const int64_t gs = grid.group_size > 0 ? grid.group_size : cols;
  std::vector<int64_t> order(cols);
  for (int64_t i = 0; i < cols; ++i) order[i] = i;
  if (act_order) std::shuffle(order.begin(), order.end(), rng);
  q.group_index.resize(cols);
  for (int64_t k = 0; k < cols; ++k) q.group_index[order[k]] = static_cast<int32_t>(k / gs);
  return q;
}

// Field `index` of a bit stream in words[0], words[stride], ..., read one bit
// at a time (no word-level shifts shared with the writer).
inline uint32_t StreamField(const int32_t* words, int64_t stride, int64_t index, int bits) {
  uint32_t v = 0;
  for (int j = 0; j < bits; ++j) {
    const int64_t bit = index * bits + j;
    const auto word = static_cast<uint32_t>(words[(bit / 32) * stride]);
    v |= ((word >> (bit % 32)) & 1u) << j;
  }
  return v;
}

// A tiny random Llama: 2 blocks, hidden 64, FFN 128, 4 heads / 2 KV heads.
inline engine::LlamaModel TinyModel(bool tied) {
  engine::LlamaModel m;
  engine::LlamaConfig& c = m.config;
  c.model_type = "llama";
  c.n_layers = 2;
  c.hidden = 64;
  c.intermediate = 128;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab = 96;
  c.max_position = 256;
  c.tie_word_embeddings = tied;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const auto random = [&](std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return engine::Tensor::Owned(std::move(shape), std::move(v));
  };
  const auto ones = [](int64_t n) {
    return engine::Tensor::Owned({n}, std::vector<float>(n, 1.0f));
  };
  m.embed_tokens = random({96, 64});
  for (int i = 0; i < 2; ++i) {
    engine::BlockWeights b;
    b.attn_norm = ones(64);
    b.q_proj = random({64, 64});
    b.k_proj = random({32, 64});
    b.v_proj = random({32, 64});
    b.o_proj = random({64, 64});
    b.mlp_norm = ones(64);
    b.gate_proj = random({128, 64});
    b.up_proj = random({128, 64});
    b.down_proj = random({64, 128});
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = ones(64);
  m.lm_head = tied ? m.embed_tokens : random({96, 64});
  return m;
}

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

}  // namespace compressd::testing
