// The OBS column sweep of GPTQ and SparseGPT; see obs_sweep.h for the math,
// layout and cost.
#include "workers/engine/algorithms/obs_sweep.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <thread>

#include "absl/strings/str_cat.h"
#include "workers/engine/algorithms/selection.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define COMPRESSD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define COMPRESSD_CLONES
#endif

namespace compressd::engine {
namespace {

// y[0, n) -= a * x[0, n). Built with -ffp-contract=off (CMakeLists), so every
// clone rounds the product and the difference separately.
COMPRESSD_CLONES void SubScaled(float a, const float* __restrict x, float* __restrict y,
                                int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] -= a * x[j];
}

inline float Saliency(float w, float d) { return (w * w) / (d * d); }

// Unstructured mask of the block [i1, i2) from the current weights.
void SelectBlockMask(const SweepOptions& o, SweepState* s, int64_t i1, int64_t i2) {
  const int64_t count = i2 - i1;
  const bool per_row = o.pruning.kind == SweepPruning::Kind::kRow;
  std::vector<uint64_t> keys;
  auto add_row = [&](int64_t r, uint32_t base) {
    const float* w = s->w + r * s->cols;
    for (int64_t c = i1; c < i2; ++c) {
      const float d = s->u[c * s->cols + c];
      keys.push_back(OrderKey(Saliency(w[c], d), base + static_cast<uint32_t>(c - i1)));
    }
  };
  auto mark = [&](uint32_t idx) { s->pruned[(idx / count) * s->cols + i1 + idx % count] = 1; };
  if (per_row) {
    for (int64_t r = 0; r < s->rows; ++r) {
      keys.clear();
      add_row(r, static_cast<uint32_t>(r * count));
      MarkLowest(keys.data(), count, PruneCount(count, o.pruning.sparsity), mark);
    }
    return;
  }
  keys.reserve(s->rows * count);
  for (int64_t r = 0; r < s->rows; ++r) add_row(r, static_cast<uint32_t>(r * count));
  MarkLowest(keys.data(), s->rows * count, PruneCount(s->rows * count, o.pruning.sparsity), mark);
}

// Prunes the m - n lowest-saliency entries of w[p, p + m) of one row.
void SelectNM(const float* w, const float* u, int64_t cols, int64_t p, int n, int m,
              uint8_t* pruned) {
  uint64_t keys[64];
  for (int j = 0; j < m; ++j) {
    const float d = u[(p + j) * cols + p + j];
    keys[j] = OrderKey(Saliency(w[p + j], d), static_cast<uint32_t>(j));
  }
  MarkLowest(keys, m, m - n, [&](uint32_t j) { pruned[p + j] = 1; });
}

// The in-block sweep of row r over [i1, i2); err is this row's [count] errors.
void SweepRow(const SweepOptions& o, SweepState* s, int64_t r, int64_t i1, int64_t i2, float* err) {
  const int64_t cols = s->cols;
  float* w = s->w + r * cols;
  uint8_t* pruned = s->pruned.data() + r * cols;
  const bool nm = o.pruning.kind == SweepPruning::Kind::kNM;
  const int64_t groups = o.grid ? GroupCount(*o.grid, cols) : 0;
  const int64_t g = o.grid ? o.grid->group_size : 0;
  const int maxq = o.grid ? MaxQ(o.grid->bits) : 0;
  const int64_t supers = (cols + kScaleSuperGroup - 1) / kScaleSuperGroup;
  for (int64_t p = i1; p < i2; ++p) {
    if (nm && p % o.pruning.m == 0) SelectNM(w, s->u, cols, p, o.pruning.n, o.pruning.m, pruned);
    const float x = pruned[p] ? 0.0f : w[p];
    float q = x;
    if (o.grid) {
      const int64_t k = r * groups + s->group_of[p];
      if (!o.static_grids && (g > 0 ? p % g == 0 : p == 0)) {
        const int64_t span = g > 0 ? std::min(g, cols - p) : cols;
        GridParam gp = FindGridParam(w + p, span, pruned + p, *o.grid);
        if (o.grid->scale_bits > 0) {  // the super-group's steps, from its weights as they are now
          LatticeSteps& steps = s->steps[r * supers + p / kScaleSuperGroup];
          if (p % kScaleSuperGroup == 0) {
            steps =
                SuperGroupSteps(w + p, std::min(kScaleSuperGroup, cols - p), pruned + p, *o.grid);
          }
          OnLattice(*o.grid, steps, &gp);
        }
        s->scales[k] = gp.scale;
        s->zeros[k] = gp.zero;
      }
      const GridParam gp{s->scales[k], s->zeros[k]};
      q = QuantizeOnGrid(x, gp, *o.grid, maxq, &s->codes[r * cols + p]);
    }
    const float e = (w[p] - q) / s->u[p * cols + p];
    SubScaled(e, s->u + p * cols + p + 1, w + p + 1, i2 - p - 1);
    err[p - i1] = e;
    w[p] = q;
  }
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> SweepBlocks(int64_t cols, int64_t block, int64_t group) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i1 = 0; i1 < cols;) {
    int64_t i2 = std::min(i1 + block, cols);
    if (group > 0) {
      const int64_t last = (i2 - 1) / group * group;  // last group start before i2
      if (i1 < last && std::min(last + group, cols) > i2) i2 = last;
    }
    out.emplace_back(i1, i2);
    i1 = i2;
  }
  return out;
}

SweepPlan PrepareSweep(const SweepOptions& o, SweepState* s) {
  const int64_t rows = s->rows;
  const int64_t cols = s->cols;
  int64_t block = o.block_size;
  if (o.pruning.kind == SweepPruning::Kind::kNM) block -= block % o.pruning.m;
  if (s->pruned.empty()) s->pruned.assign(rows * cols, 0);
  int64_t dyn_group = 0;
  if (o.grid) {
    const int64_t groups = GroupCount(*o.grid, cols);
    s->codes.assign(rows * cols, 0);
    if (!o.static_grids) {
      s->scales.assign(rows * groups, 0.0f);
      s->zeros.assign(rows * groups, 0.0f);
      s->group_of.resize(cols);
      const int64_t g = o.grid->group_size;
      for (int64_t p = 0; p < cols; ++p) s->group_of[p] = g > 0 ? static_cast<int32_t>(p / g) : 0;
      dyn_group = std::max<int64_t>(g, 0);
      if (o.grid->scale_bits > 0) {
        s->steps.assign(rows * ((cols + kScaleSuperGroup - 1) / kScaleSuperGroup), LatticeSteps{});
      }
    }
  }
  return SweepPlan{block, SweepBlocks(cols, block, dyn_group)};
}

void ObsSweep(const SweepOptions& o, SweepState* s) {
  const int64_t rows = s->rows;
  const int64_t cols = s->cols;
  const SweepPlan plan = PrepareSweep(o, s);
  std::vector<float> err(rows * plan.block);
  for (const auto& [i1, i2] : plan.blocks) {
    const int64_t count = i2 - i1;
    if (o.pruning.kind == SweepPruning::Kind::kBlock ||
        o.pruning.kind == SweepPruning::Kind::kRow) {
      SelectBlockMask(o, s, i1, i2);
    }
    ParallelRows(rows, o.threads, [&, i1 = i1, i2 = i2](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) SweepRow(o, s, r, i1, i2, err.data() + r * count);
    });
    if (i2 < cols) {  // rows split over the threads: the same bits on any count
      ParallelGemmRows(rows, o.threads, [&, i1 = i1, i2 = i2](int64_t r0, int64_t r1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(r1 - r0),
                    static_cast<int>(cols - i2), static_cast<int>(count), -1.0f,
                    err.data() + r0 * count, static_cast<int>(count), s->u + i1 * cols + i2,
                    static_cast<int>(cols), 1.0f, s->w + r0 * cols + i2, static_cast<int>(cols));
      });
    }
  }
}

absl::Status ValidateSweep(const SweepOptions& o, int64_t cols, absl::string_view tensor) {
  if (o.block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": block_size must be positive, got ", o.block_size));
  }
  if (o.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": threads must be positive, got ", o.threads));
  }
  const SweepPruning& p = o.pruning;
  if ((p.kind == SweepPruning::Kind::kBlock || p.kind == SweepPruning::Kind::kRow) &&
      !(p.sparsity >= 0.0 && p.sparsity <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": sparsity must be in [0, 1], got ", p.sparsity));
  }
  if (p.kind == SweepPruning::Kind::kNM) {
    if (!(0 < p.n && p.n < p.m && p.m <= 64)) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": N:M pattern ", p.n, ":", p.m, " needs 0 < N < M <= 64"));
    }
    if (cols % p.m != 0) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, ": input dimension ", cols,
                                                     " is not a multiple of M=", p.m, " for N:M"));
    }
    if (o.block_size < p.m) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": block_size ", o.block_size, " is smaller than M=", p.m));
    }
    if (o.grid && o.grid->group_size > 0 && o.grid->group_size % p.m != 0) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, ": group_size ", o.grid->group_size,
                                                     " must be a multiple of M=", p.m,
                                                     " when N:M pruning is quantized"));
    }
  }
  if (o.grid && FractionalZeros(*o.grid) && p.kind != SweepPruning::Kind::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor,
        ": an asymmetric grid with scale_bits has no exact zero (ggml's Q2_K/Q4_K/Q5_K "
        "value d*sc*q - dmin*m), so it cannot quantize while pruning; use a symmetric grid"));
  }
  if (o.grid) return ValidateGrid(*o.grid, tensor);
  return absl::OkStatus();
}

absl::Status ValidateLayer(const float* w, int64_t rows, int64_t cols, const float* h,
                           absl::string_view tensor) {
  if (w == nullptr || h == nullptr || rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": empty weight [", rows, ", ", cols, "] or missing Hessian"));
  }
  if (rows * cols >= (int64_t{1} << 32) || cols > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": weight [", rows, ", ", cols, "] is too large for the solver"));
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": weight [", i / cols, ", ", i % cols, "] is not finite"));
    }
  }
  return absl::OkStatus();
}

std::vector<uint8_t> ZeroDeadInputs(float* w, int64_t rows, int64_t cols, const float* h,
                                    int64_t* dead_count) {
  std::vector<uint8_t> dead(cols, 0);
  *dead_count = 0;
  for (int64_t j = 0; j < cols; ++j) {
    if (h[j * cols + j] != 0.0f) continue;
    dead[j] = 1;
    ++*dead_count;
    for (int64_t r = 0; r < rows; ++r) w[r * cols + j] = 0.0f;
  }
  return dead;
}

std::vector<int64_t> ActOrderPermutation(const float* h, int64_t cols) {
  std::vector<int64_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  auto diag = [h, cols](int64_t j) {
    const float d = h[j * cols + j];
    return d == 0.0f ? 1.0f : d;
  };
  std::stable_sort(perm.begin(), perm.end(),
                   [&](int64_t a, int64_t b) { return diag(a) > diag(b); });
  return perm;
}

}  // namespace compressd::engine
