// SpQR's sweep: outlier-aware group statistics, their second-level
// quantization, and the OBS column sweep with float16 outliers; see spqr.h.
#include "workers/engine/algorithms/spqr.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/model/dtype.h"

namespace compressd::engine {
namespace {

constexpr float kMinScale = 1e-9f;  // the reference quantizer's clamp on the scale

float Half(float x) { return HalfToFloatRef(FloatToHalfRef(x)); }

// An asymmetric grid: value = scale * (code - zero), zero not rounded.
struct Grid {
  float scale = 1.0f;
  float zero = 0.0f;
};

inline float Code(float x, const Grid& g, int maxq) {
  const float q = std::nearbyint(x / std::max(g.scale, kMinScale) + g.zero);
  return std::min(std::max(q, 0.0f), static_cast<float>(maxq));
}
inline float Value(float code, const Grid& g) { return g.scale * (code - g.zero); }

// Min-max over x[0, k) without entry `skip` (-1: none); [-1, 1] if constant.
Grid FitMinMax(const float* x, int64_t k, int maxq, int64_t skip = -1) {
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t j = 0; j < k; ++j) {
    if (j == skip) continue;
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  if (!(lo < hi)) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const float scale = (hi - lo) / static_cast<float>(maxq);
  return Grid{scale, -lo / scale};
}

// sum_j ((Q(x_j) - x_j) / d_j)^2 over x[0, k) without entry `skip`.
double GroupError(const float* x, const float* d, int64_t k, const Grid& g, int maxq,
                  int64_t skip) {
  double sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    if (j == skip) continue;
    const float e = (Value(Code(x[j], g, maxq), g) - x[j]) / d[j];
    sum += static_cast<double>(e) * e;
  }
  return sum;
}

// Step 1 of spqr.h for one row's group x[0, k): the grid fitted with the
// likely outliers (leave-one-out error reduction above t) replaced by the
// mean of the other weights.
Grid FitRowGroup(const float* x, const float* d, int64_t k, int maxq, double t) {
  if (!std::isfinite(t) || k < 2) return FitMinMax(x, k, maxq);
  const double base = GroupError(x, d, k, FitMinMax(x, k, maxq), maxq, -1);
  std::vector<uint8_t> likely(k);
  double sum = 0.0;
  int64_t kept = 0;
  for (int64_t i = 0; i < k; ++i) {
    const double loo = GroupError(x, d, k, FitMinMax(x, k, maxq, i), maxq, i);
    likely[i] = base - loo > t;
    if (!likely[i]) {
      sum += x[i];
      ++kept;
    }
  }
  const float mean = static_cast<float>(sum / static_cast<double>(std::max<int64_t>(kept, 1)));
  std::vector<float> y(x, x + k);
  for (int64_t i = 0; i < k; ++i) {
    if (likely[i]) y[i] = mean;
  }
  return FitMinMax(y.data(), k, maxq);
}

// The second level of spqr.h on v[0, n): the float16 grid and the codes.
Grid FitStat(const float* v, int64_t n, int maxq) {
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    lo = std::min(lo, v[j]);
    hi = std::max(hi, v[j]);
  }
  const float scale = (hi - lo) / static_cast<float>(maxq);
  const Grid g{Half(scale), Half(-lo / scale)};
  if (!(lo < hi) || !(g.scale > 0.0f) || !std::isfinite(g.zero)) {
    return Grid{1.0f, -Half(0.5f * (lo + hi))};  // code 0 is the midpoint
  }
  return g;
}

struct Sweep {
  const SpqrOptions* o = nullptr;
  int64_t rows = 0, cols = 0, groups = 0, chunks = 0;
  float* w = nullptr;        // [rows, cols] in sweep order
  const float* u = nullptr;  // [cols, cols]
  std::vector<float> diag;   // U_jj
  double threshold = INFINITY;
  std::vector<Grid> grid;                                        // [rows]: the current group's
  std::vector<std::vector<std::pair<int32_t, float>>> outliers;  // per row: (position, value)
  QuantizedTensor* q = nullptr;
};

// Steps 1 and 2 for the group at sweep positions [g0, g0 + k).
void FitGroup(Sweep* s, int64_t g, int64_t g0, int64_t k) {
  const int maxq = MaxQ(s->o->bits);
  std::vector<Grid> raw(s->rows);
  ParallelRows(s->rows, s->o->threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      raw[r] = FitRowGroup(s->w + r * s->cols + g0, s->diag.data() + g0, k, maxq, s->threshold);
    }
  });
  SpqrParts& p = *s->q->spqr;
  const int smax = MaxQ(p.stat_bits);
  std::vector<float> v(p.stat_group);
  for (int64_t c = 0; c < s->chunks; ++c) {
    const int64_t r0 = c * p.stat_group, n = std::min(p.stat_group, s->rows - r0);
    for (int which = 0; which < 2; ++which) {
      for (int64_t i = 0; i < n; ++i) v[i] = which == 0 ? raw[r0 + i].scale : raw[r0 + i].zero;
      const Grid stat = FitStat(v.data(), n, smax);
      std::vector<float>& stats = which == 0 ? p.scale_stats : p.zero_stats;
      std::vector<uint8_t>& codes = which == 0 ? p.scale_codes : p.zero_codes;
      stats[(g * s->chunks + c) * 2] = stat.scale;
      stats[(g * s->chunks + c) * 2 + 1] = stat.zero;
      for (int64_t i = 0; i < n; ++i) {
        const float code = Code(v[i], stat, smax);
        codes[g * s->rows + r0 + i] = static_cast<uint8_t>(code);
        float& field = which == 0 ? s->grid[r0 + i].scale : s->grid[r0 + i].zero;
        field = Value(code, stat);
      }
    }
  }
  for (int64_t r = 0; r < s->rows; ++r) {
    s->q->scales[r * s->groups + g] = s->grid[r].scale;
    s->q->zeros[r * s->groups + g] = s->grid[r].zero;
  }
}

// Step 3 for row r over the group's positions [g0, g0 + k), updating the
// row's later columns up to the block end i2; err: the row's errors of the
// block starting at i1.
void SweepRowGroup(Sweep* s, int64_t r, int64_t g0, int64_t k, int64_t i1, int64_t i2, float* err) {
  const int maxq = MaxQ(s->o->bits);
  float* row = s->w + r * s->cols;
  const Grid& g = s->grid[r];
  for (int64_t p = g0; p < g0 + k; ++p) {
    const float x = row[p];
    const float code = Code(x, g, maxq);
    float q = Value(code, g);
    float e = (x - q) / s->diag[p];
    if (static_cast<double>(e) * e > s->threshold) {
      q = Half(x);
      e = (x - q) / s->diag[p];
      s->outliers[r].emplace_back(static_cast<int32_t>(p), q);
    }
    s->q->codes[r * s->cols + p] = static_cast<uint8_t>(code);
    row[p] = q;
    err[p - i1] = e;
    const float* up = s->u + p * s->cols;
    for (int64_t j = p + 1; j < i2; ++j) row[j] -= e * up[j];
  }
}

void RunSweep(Sweep* s) {
  const int64_t gs = s->o->group_size;
  const int64_t block = std::max<int64_t>(1, s->o->block_size / gs) * gs;
  std::vector<float> err(s->rows * block);
  for (int64_t i1 = 0; i1 < s->cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, s->cols), count = i2 - i1;
    for (int64_t g0 = i1; g0 < i2; g0 += gs) {
      const int64_t k = std::min(gs, s->cols - g0);
      FitGroup(s, g0 / gs, g0, k);
      ParallelRows(s->rows, s->o->threads, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          SweepRowGroup(s, r, g0, k, i1, i2, err.data() + r * count);
      });
    }
    if (i2 < s->cols) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(s->rows),
                  static_cast<int>(s->cols - i2), static_cast<int>(count), -1.0f, err.data(),
                  static_cast<int>(count), s->u + i1 * s->cols + i2, static_cast<int>(s->cols),
                  1.0f, s->w + i2, static_cast<int>(s->cols));
    }
  }
}

// t = threshold * mean_j(var_rows(W_j) / d_j^2), unbiased variance.
double OutlierThreshold(const float* w, int64_t rows, int64_t cols, const std::vector<float>& d,
                        double relative) {
  if (!std::isfinite(relative) || rows < 2) return INFINITY;
  std::vector<double> mean(cols, 0.0), sq(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) mean[j] += w[r * cols + j];
  }
  for (int64_t j = 0; j < cols; ++j) mean[j] /= static_cast<double>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      const double c = w[r * cols + j] - mean[j];
      sq[j] += c * c;
    }
  }
  double sum = 0.0;
  for (int64_t j = 0; j < cols; ++j) {
    sum += sq[j] / static_cast<double>(rows - 1) / (static_cast<double>(d[j]) * d[j]);
  }
  return relative * sum / static_cast<double>(cols);
}

absl::Status ValidateOptions(const SpqrOptions& o, absl::string_view tensor) {
  const auto bad = [&](const char* field, auto value, const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": spqr ", field, " must be ", want, ", got ", value));
  };
  if (o.bits < 2 || o.bits > 8) return bad("bits", o.bits, "in [2, 8]");
  if (o.stat_bits < 2 || o.stat_bits > 8) return bad("stat_bits", o.stat_bits, "in [2, 8]");
  if (o.group_size < 1) return bad("group_size", o.group_size, ">= 1");
  if (o.stat_group < 1) return bad("stat_group", o.stat_group, ">= 1");
  if (o.block_size < 1) return bad("block_size", o.block_size, ">= 1");
  if (!(o.outlier_threshold > 0.0)) {
    return bad("outlier_threshold", o.outlier_threshold, "> 0");
  }
  if (!(o.percdamp >= 0.0 && o.percdamp < 1e6)) return bad("percdamp", o.percdamp, ">= 0");
  return absl::OkStatus();
}

// The stored form in input order: codes, group index, outliers (CSR sorted
// by column), the sweep order; w gets the swept weights back.
void Collect(const std::vector<int64_t>& perm, const std::vector<float>& wp, Sweep* s, float* w) {
  const int64_t rows = s->rows, cols = s->cols;
  QuantizedTensor& q = *s->q;
  SpqrParts& p = *q.spqr;
  std::vector<uint8_t> codes(rows * cols);
  q.group_index.resize(cols);
  p.perm.resize(cols);
  for (int64_t pos = 0; pos < cols; ++pos) {
    q.group_index[perm[pos]] = static_cast<int32_t>(pos / s->o->group_size);
    p.perm[pos] = static_cast<int32_t>(perm[pos]);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t pos = 0; pos < cols; ++pos) {
      w[r * cols + perm[pos]] = wp[r * cols + pos];
      codes[r * cols + perm[pos]] = q.codes[r * cols + pos];
    }
  }
  q.codes = std::move(codes);
  p.outlier_rows.assign(1, 0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<std::pair<int32_t, float>>& row = s->outliers[r];
    for (auto& [pos, value] : row) pos = static_cast<int32_t>(perm[pos]);
    std::sort(row.begin(), row.end());
    for (const auto& [col, value] : row) {
      p.outlier_cols.push_back(col);
      p.outlier_values.push_back(value);
    }
    p.outlier_rows.push_back(static_cast<int32_t>(p.outlier_cols.size()));
  }
}

}  // namespace

absl::StatusOr<LayerSolveResult> Spqr(float* w, int64_t rows, int64_t cols, const float* h,
                                      const SpqrOptions& o, absl::string_view tensor) {
  RETURN_IF_ERROR(ValidateLayer(w, rows, cols, h, tensor));
  RETURN_IF_ERROR(ValidateOptions(o, tensor));
  LayerSolveResult result;
  ZeroDeadInputs(w, rows, cols, h, &result.dead_inputs);
  std::vector<int64_t> perm(cols);
  for (int64_t j = 0; j < cols; ++j) perm[j] = j;
  if (o.act_order) perm = ActOrderPermutation(h, cols);
  ASSIGN_OR_RETURN(FactorMatrix u,
                   InverseHessianUpper(h, cols, perm.data(), o.percdamp, tensor, o.threads));
  std::vector<float> wp(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < cols; ++p) wp[r * cols + p] = w[r * cols + perm[p]];
  }
  QuantizedTensor& q = result.quantized.emplace();
  q.rows = rows;
  q.cols = cols;
  q.grid = QuantGrid{o.bits, o.group_size, /*symmetric=*/false, 0, false};
  q.groups = (cols + o.group_size - 1) / o.group_size;
  q.codes.resize(rows * cols);
  q.scales.resize(rows * q.groups);
  q.zeros.resize(rows * q.groups);
  SpqrParts& parts = q.spqr.emplace();
  parts.stat_bits = o.stat_bits;
  parts.stat_group = o.stat_group;
  Sweep s;
  s.o = &o;
  s.rows = rows;
  s.cols = cols;
  s.groups = q.groups;
  s.chunks = (rows + o.stat_group - 1) / o.stat_group;
  s.w = wp.data();
  s.u = u.data();
  s.diag.resize(cols);
  for (int64_t j = 0; j < cols; ++j) s.diag[j] = u[j * cols + j];
  s.threshold = OutlierThreshold(wp.data(), rows, cols, s.diag, o.outlier_threshold);
  s.grid.resize(rows);
  s.outliers.resize(rows);
  s.q = &q;
  for (std::vector<uint8_t>* c : {&parts.scale_codes, &parts.zero_codes})
    c->resize(q.groups * rows);
  for (std::vector<float>* v : {&parts.scale_stats, &parts.zero_stats}) {
    v->resize(q.groups * s.chunks * 2);
  }
  RunSweep(&s);
  Collect(perm, wp, &s, w);
  return result;
}

uint64_t SpqrStoredBits(const QuantizedTensor& q) {
  if (!q.spqr) return 0;
  const SpqrParts& p = *q.spqr;
  const auto packed = [](uint64_t n, int bits) { return (n * bits + 7) / 8 * 8; };
  const uint64_t rows = q.rows, cols = q.cols, groups = q.groups;
  const uint64_t chunks = (rows + p.stat_group - 1) / p.stat_group;
  const uint64_t index = SpqrNarrowIndex(q.cols) ? 16 : 32;
  const uint64_t outliers = p.outlier_cols.size();
  return packed(rows * cols, q.grid.bits) + cols * index + 2 * packed(groups * rows, p.stat_bits) +
         2 * groups * chunks * 2 * 16 + (rows + 1) * 32 + outliers * (index + 16);
}

}  // namespace compressd::engine
