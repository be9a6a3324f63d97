// Rotary position embedding tables (Su et al., "RoFormer", 2021) in the
// Hugging Face convention: a head vector x of size d is rotated pairwise as
// (x[i], x[i + d/2]) -> (x[i] cos a - x[i + d/2] sin a, x[i + d/2] cos a + x[i] sin a)
// with a = position * inv_freq[i], inv_freq[i] = theta^(-2i/d) ("rotate_half").
// Llama 3 rope_scaling rescales the low frequencies (see BuildInvFreq).
// Values are computed in float32 the way transformers does, so positions up to
// a few thousand agree with it to float rounding. Plain value types.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

struct RopeTable {
  int half = 0;              // head_dim / 2
  int64_t n_positions = 0;   // positions [0, n_positions)
  std::vector<float> cos;    // [n_positions, half]
  std::vector<float> sin;    // [n_positions, half]
};

// inv_freq[i] for i in [0, head_dim/2). INVALID_ARGUMENT for an odd head_dim,
// a non-positive theta, or an unknown rope_scaling type.
absl::StatusOr<std::vector<float>> BuildInvFreq(const LlamaConfig& config);

// cos/sin for positions [0, n_positions).
absl::StatusOr<RopeTable> BuildRopeTable(const LlamaConfig& config, int64_t n_positions);

}  // namespace compressd::engine
