// Magnitude pruning: the saliency of weight w_ij is |w_ij| alone.
//
// Unstructured: with k = round(s * n), zero the k weights that come first in
// the order (|w|, flat index). The k-th smallest key t is found with
// std::nth_element over a copy of the keys (expected O(n) time, 4n bytes of
// extra memory); a second pass zeroes every weight with |w| < t and then the
// lowest-index weights with |w| == t until exactly k are zeroed. The result
// equals a full sort (PruneUnstructuredRef, O(n log n)).
//
// N:M (semi-structured): the row-major [out, in] tensor with in % M == 0 is
// cut into groups of M consecutive weights along the input dimension; in each
// group the M-N smallest (same order) are zeroed. O(n) time, O(M) memory.
//
// The key of a float is its bit pattern with the sign cleared: for
// non-negative IEEE floats integer order equals numeric order, +0 and -0 tie,
// and NaN sorts above +inf, so the order is total and NaNs are kept.
#include "workers/engine/algorithms/magnitude.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

inline uint32_t Key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u & 0x7fffffffu;
}

size_t PruneCount(size_t n, double sparsity) {
  return std::min(n, static_cast<size_t>(std::llround(sparsity * static_cast<double>(n))));
}

absl::Status CheckNM(int64_t rows, int64_t cols, int n, int m, absl::string_view tensor) {
  if (!(0 < n && n < m && m <= 64)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": N:M pattern ", n, ":", m, " needs 0 < N < M <= 64"));
  }
  if (rows < 0 || cols < 0 || cols % m != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": input dimension ", cols, " (shape [", rows, ", ", cols,
                     "]) is not a multiple of M=", m, " for N:M pruning ", n, ":", m));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PruneUnstructured(float* w, size_t n, double sparsity, absl::string_view tensor) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": sparsity must be in [0, 1], got ", sparsity));
  }
  const size_t k = PruneCount(n, sparsity);
  if (k == 0) return absl::OkStatus();
  if (k == n) {
    std::fill(w, w + n, 0.0f);
    return absl::OkStatus();
  }
  std::vector<uint32_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = Key(w[i]);
  std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end());
  const uint32_t t = keys[k - 1];
  // keys[0, k-1) are <= t; the ones strictly below t are all pruned.
  const size_t below = std::count_if(keys.begin(), keys.begin() + (k - 1),
                                     [t](uint32_t key) { return key < t; });
  size_t ties_left = k - below;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t key = Key(w[i]);
    if (key < t) {
      w[i] = 0.0f;
    } else if (key == t && ties_left > 0) {
      w[i] = 0.0f;
      --ties_left;
    }
  }
  return absl::OkStatus();
}

void PruneUnstructuredRef(float* w, size_t n, double sparsity) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [w](size_t a, size_t b) {
    return Key(w[a]) != Key(w[b]) ? Key(w[a]) < Key(w[b]) : a < b;
  });
  const size_t k = PruneCount(n, sparsity);
  for (size_t i = 0; i < k; ++i) w[order[i]] = 0.0f;
}

absl::Status PruneNM(float* w, int64_t rows, int64_t cols, int n, int m,
                     absl::string_view tensor) {
  RETURN_IF_ERROR(CheckNM(rows, cols, n, m, tensor));
  const size_t total = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  const int drop = m - n;
  uint64_t packed[64];  // (key << 8 | position in group): unique, so the order is total
  for (size_t g = 0; g < total; g += static_cast<size_t>(m)) {
    float* group = w + g;
    for (int j = 0; j < m; ++j) packed[j] = static_cast<uint64_t>(Key(group[j])) << 8 | j;
    std::nth_element(packed, packed + (drop - 1), packed + m);
    for (int j = 0; j < drop; ++j) group[packed[j] & 0xff] = 0.0f;
  }
  return absl::OkStatus();
}

void PruneNMRef(float* w, int64_t rows, int64_t cols, int n, int m) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += m) {
      float* group = w + r * cols + c;
      std::vector<int> idx(m);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [group](int a, int b) { return Key(group[a]) < Key(group[b]); });
      for (int j = 0; j < m - n; ++j) group[idx[j]] = 0.0f;
    }
  }
}

absl::Status ApplyMagnitude(double sparsity, NMPattern pattern, float* w, int64_t rows,
                            int64_t cols, absl::string_view tensor) {
  if (pattern.set()) return PruneNM(w, rows, cols, pattern.n, pattern.m, tensor);
  if (!(sparsity > 0.0 && sparsity < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("magnitude.sparsity: must be in (0, 1), got ", sparsity));
  }
  return PruneUnstructured(w, static_cast<size_t>(rows) * static_cast<size_t>(cols), sparsity,
                           tensor);
}

size_t CountZeros(const float* w, size_t n) {
  return static_cast<size_t>(std::count(w, w + n, 0.0f));
}

absl::StatusOr<TargetMatcher> TargetMatcher::Create(const v1::Targets& targets) {
  if (targets.include().empty()) {
    return absl::InvalidArgumentError("targets.include: empty regex matches no module");
  }
  ASSIGN_OR_RETURN(ModulePattern include, ModulePattern::Compile(targets.include(), "targets.include"));
  TargetMatcher matcher(std::move(include));
  for (int i = 0; i < targets.ignore_size(); ++i) {
    ASSIGN_OR_RETURN(ModulePattern ignore,
                     ModulePattern::Compile(targets.ignore(i), absl::StrCat("targets.ignore[", i, "]")));
    matcher.ignore_.push_back(std::move(ignore));
  }
  return matcher;
}

std::optional<std::string> TargetMatcher::ModuleName(absl::string_view tensor_name) {
  constexpr absl::string_view kSuffix = ".weight";
  if (tensor_name.size() <= kSuffix.size() ||
      tensor_name.substr(tensor_name.size() - kSuffix.size()) != kSuffix) {
    return std::nullopt;
  }
  return std::string(tensor_name.substr(0, tensor_name.size() - kSuffix.size()));
}

absl::StatusOr<bool> TargetMatcher::MatchesModule(const std::string& module) const {
  if (!include_.FullMatch(module)) return false;
  for (const ModulePattern& re : ignore_) {
    if (re.FullMatch(module)) return false;
  }
  return true;
}

absl::StatusOr<bool> TargetMatcher::IsTarget(absl::string_view tensor_name,
                                             const std::vector<int64_t>& shape) const {
  if (shape.size() != 2) return false;
  std::optional<std::string> module = ModuleName(tensor_name);
  if (!module) return false;
  return MatchesModule(*module);
}

}  // namespace compressd::engine
