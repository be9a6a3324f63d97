// Wanda (Sun, Liu, Bair & Kolter, "A Simple and Effective Pruning Approach for
// Large Language Models", 2023): pruning by weights and activations, no
// weight update.
//
// Math: the score of weight (i, j) is |W_ij| * ||X_j||_2, the norm of input j
// over the calibration tokens. Scores are compared within each output row:
// unstructured prunes the round(sparsity * in) lowest of every row; N:M keeps
// the N highest of each run of M inputs. Ties go to the lower index (pruned
// first), NaN scores rank highest. Any positive multiple of the norms gives the
// same mask up to float rounding, so sqrt(H_jj) (InputNormsFromHessian) serves.
//
// Layout: w row-major [out, in] (pruned in place), input_norms [in].
// Cost: O(out * in) time (selection by std::nth_element), O(in) extra memory.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace compressd::engine {

struct WandaOptions {
  double sparsity = 0.5;  // unstructured, used when nm_n == 0
  int nm_n = 0;           // N:M: keep nm_n of every nm_m inputs
  int nm_m = 0;
};

// INVALID_ARGUMENT naming `tensor` for a bad sparsity or pattern, in % M != 0,
// or a negative or non-finite norm. Stateless, thread-safe.
absl::Status PruneWanda(float* w, int64_t rows, int64_t cols, const float* input_norms,
                        const WandaOptions& options, absl::string_view tensor);

// Reference: a full stable sort of every row (or group). Options must be valid.
void PruneWandaRef(float* w, int64_t rows, int64_t cols, const float* input_norms,
                   const WandaOptions& options);

}  // namespace compressd::engine
