// The column sweep shared by GPTQ and SparseGPT (Frantar et al., "GPTQ",
// 2022; Frantar & Alistarh, "SparseGPT", 2023): both are the Optimal Brain
// Surgeon update applied one input column at a time.
//
// Math: with U the upper Cholesky factor of H^-1 (H^-1 = U^T U), columns are
// processed left to right; column p's weights w (one per row) are replaced by
// q (0 where pruned, else the grid value or w itself), and the error
// e = (w - q) / U_pp is propagated to the later columns: W[:, j] -= e U_pj for
// j > p. Updates are lazy: inside a block of columns they are applied at once,
// to the rest of the matrix once per block as one sgemm
// (W[:, i2:] -= E[:, block] U[block, i2:]), which is the same arithmetic
// reordered. Pruning decisions use the OBS saliency w^2 / U_pp^2.
//
// Layout: W row-major [rows, cols] in sweep order (act-order permutes columns
// before); U row-major [cols, cols]; per-entry flags/codes [rows, cols]; grids
// [rows, groups]. Inside a block the rows are independent and are split over
// `threads` threads.
//
// Cost: O(rows * cols * block) for the in-block updates plus
// O(rows * cols^2) flops in sgemm for the lazy ones; O(rows * cols) memory
// beyond W and U.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"

namespace compressd::engine {

// GPTQ's comparison on a layer with massive input activations (gptq.h).
struct ActOrderCheck {
  double input_ratio = 0;      // max H_jj / median H_jj
  double act_order_error = 0;  // relative errors of the two solves
  double plain_error = 0;
  bool kept_act_order = true;
};

// What a layer solve returns besides the new weights (written in place).
struct LayerSolveResult {
  // ||W X - W' X||^2 / ||W X||^2 on the calibration inputs, from H (hessian.h).
  double relative_error = 0.0;
  int64_t dead_inputs = 0;                   // inputs with H_jj == 0: their weights are zeroed
  std::vector<uint8_t> pruned;               // [rows, cols] 1 = pruned (SparseGPT only)
  std::optional<QuantizedTensor> quantized;  // when the solve quantized
  std::optional<ActOrderCheck> act_order_check;  // GPTQ solved a massive-input layer both ways
};

// How the sweep prunes. N:M keeps `n` of every `m` consecutive inputs.
struct SweepPruning {
  enum class Kind {
    kNone,
    kBlock,  // unstructured: round(sparsity * rows * count) lowest scores of each block
    kRow,    // unstructured: round(sparsity * count) lowest scores per row of each block
    kNM,     // decided for each run of m inputs when the sweep reaches it
  };
  Kind kind = Kind::kNone;
  double sparsity = 0.0;
  int n = 0;
  int m = 0;
};

struct SweepOptions {
  int64_t block_size = 128;
  SweepPruning pruning;
  std::optional<QuantGrid> grid;  // quantize what is not pruned
  bool static_grids = false;      // grids given in SweepState (GPTQ static groups)
  int threads = 1;
};

// In/out of one sweep; everything indexed by column is in sweep order.
struct SweepState {
  float* w = nullptr;  // [rows, cols], replaced by the result
  int64_t rows = 0;
  int64_t cols = 0;
  const float* u = nullptr;         // [cols, cols] upper factor of H^-1
  std::vector<uint8_t> pruned;      // in: entries forced to 0 (or empty); out: all pruned
  std::vector<uint8_t> codes;       // out (with a grid): [rows, cols]
  std::vector<float> scales;        // [rows, groups]: out, or in with static_grids
  std::vector<float> zeros;         // [rows, groups]
  std::vector<int32_t> group_of;    // [cols]: in with static_grids, else out
  std::vector<LatticeSteps> steps;  // [rows, super-groups]: lattice steps (dynamic, scale_bits)
};

// The lazy-update blocks [i1, i2): ends at multiples of `block`, and also just
// before a group start whose group would cross the block end (group > 0:
// grids decided during the sweep), so that a group's grid always sees fully
// updated weights.
std::vector<std::pair<int64_t, int64_t>> SweepBlocks(int64_t cols, int64_t block, int64_t group);

// The sweep's setup, shared by every SolverBackend: sizes state's outputs
// (pruned, codes and, unless static, scales/zeros/group_of) and returns the
// lazy-update block size and the blocks.
struct SweepPlan {
  int64_t block = 0;
  std::vector<std::pair<int64_t, int64_t>> blocks;
};
SweepPlan PrepareSweep(const SweepOptions& options, SweepState* state);

// Runs the sweep. Options must be valid (ValidateSweep).
void ObsSweep(const SweepOptions& options, SweepState* state);

// INVALID_ARGUMENT naming `tensor` for bad options for a [rows, cols] layer.
absl::Status ValidateSweep(const SweepOptions& options, int64_t cols, absl::string_view tensor);

// INVALID_ARGUMENT naming `tensor` for empty shapes, null pointers or a
// non-finite weight (the message gives its row and column).
absl::Status ValidateLayer(const float* w, int64_t rows, int64_t cols, const float* h,
                           absl::string_view tensor);

// Inputs whose Hessian diagonal is zero (never active in the calibration
// data); their weights are set to zero, as the OBS solvers require.
std::vector<uint8_t> ZeroDeadInputs(float* w, int64_t rows, int64_t cols, const float* h,
                                    int64_t* dead_count);

// GPTQ's act-order: inputs by decreasing H_jj (dead inputs count as 1), stable.
std::vector<int64_t> ActOrderPermutation(const float* h, int64_t cols);

// fn(r0, r1) over [0, rows) split into contiguous ranges on up to `threads`
// threads (the caller's among them).
template <typename F>
void ParallelRows(int64_t rows, int threads, F fn) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, rows));
  if (t == 1) {
    fn(0, rows);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < t; ++i) {
    pool.emplace_back([&fn, i, t, rows] { fn(rows * i / t, rows * (i + 1) / t); });
  }
  fn(0, rows / t);
  for (auto& th : pool) th.join();
}

// ParallelRows for the row slices of one matrix product, every slice starting
// at a multiple of kSgemmRowAlign. The same thread count gives the same bits;
// other counts may differ in the last bits (OpenBLAS blocks a call by its
// size), as the block checkpoints' fingerprint allows for. On SmolLM2's
// shapes the bits are those of one call over all rows
// (tests/regression/outputs_identical.sh).
inline constexpr int64_t kSgemmRowAlign = 64;
template <typename F>
void ParallelGemmRows(int64_t rows, int threads, F fn) {
  const int64_t blocks = (rows + kSgemmRowAlign - 1) / kSgemmRowAlign;
  ParallelRows(blocks, threads, [&](int64_t b0, int64_t b1) {
    fn(b0 * kSgemmRowAlign, std::min(rows, b1 * kSgemmRowAlign));
  });
}

}  // namespace compressd::engine
