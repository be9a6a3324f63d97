// Wanda pruning; see wanda.h for the math.
#include "workers/engine/algorithms/wanda.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "workers/engine/algorithms/selection.h"

namespace compressd::engine {
namespace {

absl::Status Validate(int64_t rows, int64_t cols, const float* norms, const WandaOptions& o,
                      absl::string_view tensor) {
  if (rows <= 0 || cols <= 0 || cols >= (int64_t{1} << 32)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": bad weight shape [", rows, ", ", cols, "]"));
  }
  if (o.nm_n != 0 || o.nm_m != 0) {
    if (!(0 < o.nm_n && o.nm_n < o.nm_m && o.nm_m <= 64)) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": N:M pattern ", o.nm_n, ":", o.nm_m, " needs 0 < N < M <= 64"));
    }
    if (cols % o.nm_m != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          tensor, ": input dimension ", cols, " is not a multiple of M=", o.nm_m, " for N:M"));
    }
  } else if (!(o.sparsity >= 0.0 && o.sparsity <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": sparsity must be in [0, 1], got ", o.sparsity));
  }
  for (int64_t j = 0; j < cols; ++j) {
    if (!(norms[j] >= 0.0f) || std::isinf(norms[j])) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": input norm ", j, " is ", norms[j], " (must be finite, >= 0)"));
    }
  }
  return absl::OkStatus();
}

inline float Score(float w, float norm) { return std::fabs(w) * norm; }

}  // namespace

absl::Status PruneWanda(float* w, int64_t rows, int64_t cols, const float* input_norms,
                        const WandaOptions& options, absl::string_view tensor) {
  if (absl::Status s = Validate(rows, cols, input_norms, options, tensor); !s.ok()) return s;
  const bool nm = options.nm_m != 0;
  const int64_t span = nm ? options.nm_m : cols;
  const int64_t k = nm ? options.nm_m - options.nm_n : PruneCount(cols, options.sparsity);
  std::vector<uint64_t> keys(span);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w + r * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += span) {
      for (int64_t j = 0; j < span; ++j) {
        keys[j] = OrderKey(Score(row[c0 + j], input_norms[c0 + j]), static_cast<uint32_t>(j));
      }
      MarkLowest(keys.data(), span, k, [&](uint32_t j) { row[c0 + j] = 0.0f; });
    }
  }
  return absl::OkStatus();
}

void PruneWandaRef(float* w, int64_t rows, int64_t cols, const float* input_norms,
                   const WandaOptions& options) {
  const bool nm = options.nm_m != 0;
  const int64_t span = nm ? options.nm_m : cols;
  const int64_t k = nm ? options.nm_m - options.nm_n : PruneCount(cols, options.sparsity);
  std::vector<int64_t> order(span);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w + r * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += span) {
      std::iota(order.begin(), order.end(), 0);
      // NaN ranks above every number, +inf included.
      auto rank = [&](int64_t j) {
        const float s = Score(row[c0 + j], input_norms[c0 + j]);
        return std::make_pair(std::isnan(s), std::isnan(s) ? 0.0f : s);
      };
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return rank(a) < rank(b); });
      for (int64_t i = 0; i < k; ++i) row[c0 + order[i]] = 0.0f;
    }
  }
}

}  // namespace compressd::engine
