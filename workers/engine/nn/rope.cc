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

absl::Status CheckRopeConfig(const LlamaConfig& config, int d) {
  if (d <= 0 || d % 2 != 0 || d > config.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rotary dims must be positive, even and at most head_dim ", config.head_dim, ", got ", d));
  }
  if (!(config.rope_theta > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("rope_theta must be > 0, got ", config.rope_theta));
  }
  const RopeScaling& s = config.rope_scaling;
  if (!s.type.empty() && s.type != "llama3" && s.type != "longrope" && s.type != "linear" &&
      s.type != "default") {
    return absl::InvalidArgumentError(absl::StrCat(
        "rope_scaling.type '", s.type, "' is not supported (only llama3, longrope and linear)"));
  }
  if (s.type == "linear" && !(s.factor > 0)) {
    return absl::InvalidArgumentError("rope_scaling (linear): need factor > 0");
  }
  if (s.type == "llama3" && (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor) ||
                             s.original_max_position_embeddings <= 0)) {
    return absl::InvalidArgumentError("rope_scaling (llama3): need factor > 0, "
                                      "high_freq_factor > low_freq_factor, original_max_position_embeddings > 0");
  }
  if (s.type == "longrope" &&
      (s.short_factor.size() != static_cast<size_t>(d / 2) ||
       s.long_factor.size() != static_cast<size_t>(d / 2) || !(s.attention_factor > 0) ||
       s.original_max_position_embeddings <= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rope_scaling (longrope): need ", d / 2, " short and long factors (got ",
        s.short_factor.size(), " and ", s.long_factor.size(),
        "), attention_factor > 0 and original_max_position_embeddings > 0"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<float>> BuildInvFreq(const LlamaConfig& config, bool long_factors) {
  const int d = RotaryDims(config);
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim must be positive and even, got ", config.head_dim));
  }
  RETURN_IF_ERROR(CheckRopeConfig(config, d));
  const RopeScaling& s = config.rope_scaling;
  std::vector<float> inv_freq(d / 2);
  for (int i = 0; i < d / 2; ++i) {
    // 1 / theta ** (2i / d), as transformers computes it in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(d);
    const float base = std::pow(config.rope_theta, exponent);
    inv_freq[i] = 1.0f / base;
    if (s.type == "llama3") inv_freq[i] = Llama3Scale(inv_freq[i], s);
    if (s.type == "linear") inv_freq[i] /= s.factor;
    if (s.type == "longrope") {
      inv_freq[i] = 1.0f / ((long_factors ? s.long_factor[i] : s.short_factor[i]) * base);
    }
  }
  return inv_freq;
}

bool UsesLongFactors(const LlamaConfig& config, int64_t n_positions) {
  return config.rope_scaling.type == "longrope" &&
         n_positions > config.rope_scaling.original_max_position_embeddings;
}

absl::StatusOr<RopeTable> BuildRopeTable(const LlamaConfig& config, int64_t n_positions,
                                         bool long_factors) {
  ASSIGN_OR_RETURN(std::vector<float> inv_freq, BuildInvFreq(config, long_factors));
  const float scale =
      config.rope_scaling.type == "longrope" ? config.rope_scaling.attention_factor : 1.0f;
  RopeTable table;
  table.half = static_cast<int>(inv_freq.size());
  table.long_factors = long_factors;
  table.n_positions = n_positions;
  table.cos.resize(n_positions * table.half);
  table.sin.resize(n_positions * table.half);
  for (int64_t p = 0; p < n_positions; ++p) {
    for (int i = 0; i < table.half; ++i) {
      const float angle = static_cast<float>(p) * inv_freq[i];  // float32 product, like HF
      // cos() in float32, then times the factor in float32, as transformers.
      table.cos[p * table.half + i] = static_cast<float>(std::cos(static_cast<double>(angle))) * scale;
      table.sin[p * table.half + i] = static_cast<float>(std::sin(static_cast<double>(angle))) * scale;
    }
  }
  return table;
}

}  // namespace compressd::engine
