#include "workers/engine/nn/rope.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

constexpr double kPi = 3.14159265358979323846;

// transformers' _compute_llama3_parameters, elementwise in float32.
float Llama3Scale(float freq, const RopeScaling& s) {
  const float old_ctx = static_cast<float>(s.original_max_position_embeddings);
  const float low_freq_wavelen = old_ctx / s.low_freq_factor;
  const float high_freq_wavelen = old_ctx / s.high_freq_factor;
  const float wavelen = static_cast<float>(2 * kPi) / freq;
  if (wavelen < high_freq_wavelen) return freq;
  if (wavelen > low_freq_wavelen) return freq / s.factor;
  const float smooth =
      (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * freq / s.factor + smooth * freq;
}

}  // namespace

absl::StatusOr<std::vector<float>> BuildInvFreq(const LlamaConfig& config) {
  const int d = config.head_dim;
  if (d <= 0 || d % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("head_dim must be positive and even, got ", d));
  }
  if (!(config.rope_theta > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("rope_theta must be > 0, got ", config.rope_theta));
  }
  const RopeScaling& s = config.rope_scaling;
  if (!s.type.empty() && s.type != "llama3" && s.type != "default") {
    return absl::InvalidArgumentError(
        absl::StrCat("rope_scaling.type '", s.type, "' is not supported (only llama3)"));
  }
  if (s.type == "llama3" && (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor) ||
                             s.original_max_position_embeddings <= 0)) {
    return absl::InvalidArgumentError("rope_scaling (llama3): need factor > 0, "
                                      "high_freq_factor > low_freq_factor, original_max_position_embeddings > 0");
  }
  std::vector<float> inv_freq(d / 2);
  for (int i = 0; i < d / 2; ++i) {
    // 1 / theta ** (2i / d), as transformers computes it in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(d);
    inv_freq[i] = 1.0f / std::pow(config.rope_theta, exponent);
    if (s.type == "llama3") inv_freq[i] = Llama3Scale(inv_freq[i], s);
  }
  return inv_freq;
}

absl::StatusOr<RopeTable> BuildRopeTable(const LlamaConfig& config, int64_t n_positions) {
  ASSIGN_OR_RETURN(std::vector<float> inv_freq, BuildInvFreq(config));
  RopeTable table;
  table.half = static_cast<int>(inv_freq.size());
  table.n_positions = n_positions;
  table.cos.resize(n_positions * table.half);
  table.sin.resize(n_positions * table.half);
  for (int64_t p = 0; p < n_positions; ++p) {
    for (int i = 0; i < table.half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[i];  // float32 product, like HF
      table.cos[p * table.half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      table.sin[p * table.half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return table;
}

}  // namespace compressd::engine
