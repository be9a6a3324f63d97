// Magnitude pruning (Han et al., "Learning both Weights and Connections for
// Efficient Neural Networks", 2015; N:M as in NVIDIA's 2:4 sparse tensor
// cores, Mishra et al. 2021). See magnitude.cc for the math and cost.
//
// Weights are a row-major [out, in] float tensor. Ordering is by |w| with
// ties broken by flat index (lower index pruned first); NaN counts as the
// largest magnitude, so it is kept. All functions are stateless and
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/module_pattern.h"
#include "common/recipe_spec.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd::engine {

// Zeroes exactly round(sparsity * n) of the smallest-magnitude weights.
// INVALID_ARGUMENT naming `tensor` unless 0 <= sparsity <= 1. O(n).
absl::Status PruneUnstructured(float* w, size_t n, double sparsity, absl::string_view tensor);
// Reference: full sort, O(n log n).
void PruneUnstructuredRef(float* w, size_t n, double sparsity);

// In each group of `m` consecutive weights along the input dimension keeps
// the `n` largest and zeroes the rest. INVALID_ARGUMENT naming `tensor` when
// cols % m != 0 or not 0 < n < m <= 64.
absl::Status PruneNM(float* w, int64_t rows, int64_t cols, int n, int m, absl::string_view tensor);
// Reference: sorts every group.
void PruneNMRef(float* w, int64_t rows, int64_t cols, int n, int m);

// Applies one magnitude stage to a [rows, cols] tensor: the N:M `pattern`
// when set, else unstructured `sparsity` in (0, 1) (INVALID_ARGUMENT otherwise).
absl::Status ApplyMagnitude(double sparsity, NMPattern pattern, float* w, int64_t rows,
                            int64_t cols, absl::string_view tensor);

// Number of exact zeros (either sign).
size_t CountZeros(const float* w, size_t n);

// Which weights a recipe's stages touch. A tensor is a target if it is 2-D,
// its name ends in ".weight", and its module name (the name without that
// suffix) fully matches `include` and matches no `ignore` pattern
// (RE2 full match: common/module_pattern.h). Immutable after Create(); thread-safe.
class TargetMatcher {
 public:
  // INVALID_ARGUMENT naming the field for an invalid regex or an empty include.
  static absl::StatusOr<TargetMatcher> Create(const v1::Targets& targets);

  // The module name if `tensor_name` is a "<module>.weight" name, else nullopt.
  static std::optional<std::string> ModuleName(absl::string_view tensor_name);
  // True if the module matches include and no ignore pattern.
  absl::StatusOr<bool> MatchesModule(const std::string& module) const;
  // Applies the rules above to a tensor name and shape.
  absl::StatusOr<bool> IsTarget(absl::string_view tensor_name,
                                const std::vector<int64_t>& shape) const;

 private:
  explicit TargetMatcher(ModulePattern include) : include_(std::move(include)) {}
  ModulePattern include_;
  std::vector<ModulePattern> ignore_;
};

}  // namespace compressd::engine
