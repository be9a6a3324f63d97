// Rotary position embedding tables (Su et al., "RoFormer", 2021) in the
// Hugging Face convention: a head vector x of size d is rotated pairwise as
// (x[i], x[i + d/2]) -> (x[i] cos a - x[i + d/2] sin a, x[i + d/2] cos a + x[i] sin a)
// with a = position * inv_freq[i], inv_freq[i] = theta^(-2i/d) ("rotate_half").
// Llama 3 rope_scaling rescales the low frequencies (see BuildInvFreq); Phi-3's
// longrope divides each frequency by a short or long factor (chosen by the
// sequence length, as transformers does) and scales cos/sin. With a partial
// rotary factor only the first rotary_dims dims of a head turn (d above is
// rotary_dims; the rest pass through).
// Values are computed in float32 the way transformers does, so positions up to
// a few thousand agree with it to float rounding. Plain value types.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

struct RopeTable {
  int half = 0;              // rotary_dims / 2
  bool long_factors = false;  // longrope: built from the long factors
  int64_t n_positions = 0;   // positions [0, n_positions)
  std::vector<float> cos;    // [n_positions, half]
  std::vector<float> sin;    // [n_positions, half]
};

// inv_freq[i] for i in [0, rotary_dims/2). INVALID_ARGUMENT for an odd
// head_dim or rotary_dims, a non-positive theta, an unknown rope_scaling type
// or longrope factors of the wrong length.
absl::StatusOr<std::vector<float>> BuildInvFreq(const LlamaConfig& config,
                                                bool long_factors = false);

// Whether a batch whose positions reach `n_positions` - 1 uses longrope's long
// factors (transformers: max position + 1 > original_max_position_embeddings).
bool UsesLongFactors(const LlamaConfig& config, int64_t n_positions);

// cos/sin for positions [0, n_positions), times longrope's attention factor.
absl::StatusOr<RopeTable> BuildRopeTable(const LlamaConfig& config, int64_t n_positions,
                                         bool long_factors = false);

}  // namespace compressd::engine
