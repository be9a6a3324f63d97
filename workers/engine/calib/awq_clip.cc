// AWQ's per-group clipping search; see awq_clip.h.
#include "workers/engine/calib/awq_clip.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/nn/thread_pool.h"

namespace compressd::engine {
namespace {

// w with each (row, group) clamped to +-r max|w_g|.
void Clamp(const float* w, int64_t rows, int64_t cols, int64_t g, const float* ratio,
           int64_t groups, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < groups; ++k) {
      const float* x = w + r * cols + k * g;
      float* y = out + r * cols + k * g;
      const int64_t n = std::min(g, cols - k * g);
      float a = 0.0f;
      for (int64_t j = 0; j < n; ++j) a = std::max(a, std::fabs(x[j]));
      const float lim = a * ratio[r * groups + k];
      for (int64_t j = 0; j < n; ++j) y[j] = std::min(std::max(x[j], -lim), lim);
    }
  }
}

// err[r * groups + k] = e_rk^T H_kk e_rk for e [rows, cols]; t is scratch [rows, g].
void GroupErrors(const float* e, const float* h, int64_t rows, int64_t cols, int64_t g,
                 int64_t groups, std::vector<float>* t, double* err) {
  for (int64_t k = 0; k < groups; ++k) {
    const int64_t c0 = k * g, n = std::min(g, cols - c0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(n), static_cast<int>(n), 1.0f, e + c0, static_cast<int>(cols),
                h + c0 * cols + c0, static_cast<int>(cols), 0.0f, t->data(), static_cast<int>(n));
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j)
        s += static_cast<double>(e[r * cols + c0 + j]) * (*t)[r * n + j];
      err[r * groups + k] = s;
    }
  }
}

}  // namespace

absl::StatusOr<AwqClipResult> AwqClip(float* w, int64_t rows, int64_t cols, const float* h,
                                      const AwqClipOptions& options, absl::string_view name) {
  RETURN_IF_ERROR(ValidateGrid(options.grid, name));
  if (options.grid_points < 1 || !(options.max_shrink >= 0.0 && options.max_shrink < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": awq clip needs grid_points >= 1 and max_shrink in [0, 1), got ",
                     options.grid_points, " and ", options.max_shrink));
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": non-finite weight at row ", i / cols, ", column ", i % cols));
    }
  }
  const int64_t g = options.grid.group_size > 0 ? options.grid.group_size : cols;
  const int64_t groups = (cols + g - 1) / g;
  const int steps = static_cast<int>(std::floor(options.max_shrink * options.grid_points)) + 1;
  std::vector<std::vector<double>> err(static_cast<size_t>(steps),
                                       std::vector<double>(static_cast<size_t>(rows * groups)));
  std::vector<absl::Status> status(static_cast<size_t>(steps));
  ThreadPool pool(std::max(options.threads, 1));
  pool.ParallelFor(steps, [&](int64_t i) {
    const auto r = static_cast<float>(1.0 - static_cast<double>(i) / options.grid_points);
    std::vector<float> ratio(static_cast<size_t>(rows * groups), r), q(rows * cols), t(rows * g);
    Clamp(w, rows, cols, g, ratio.data(), groups, q.data());
    absl::Status s = QuantizeRtn(q.data(), rows, cols, options.grid, name).status();
    for (int64_t j = 0; s.ok() && j < rows * cols; ++j) q[j] = w[j] - q[j];
    if (s.ok()) GroupErrors(q.data(), h, rows, cols, g, groups, &t, err[i].data());
    status[static_cast<size_t>(i)] = s;
  });
  for (const absl::Status& s : status) RETURN_IF_ERROR(s);
  std::vector<double> dense(static_cast<size_t>(rows * groups));
  std::vector<float> t(rows * g);
  GroupErrors(w, h, rows, cols, g, groups, &t, dense.data());
  AwqClipResult out;
  out.ratio.assign(static_cast<size_t>(rows * groups), 1.0f);
  double denom = 0, before = 0, after = 0;
  int64_t clipped = 0;
  for (int64_t k = 0; k < rows * groups; ++k) {
    int best = 0;
    for (int i = 1; i < steps; ++i) best = err[i][k] < err[best][k] ? i : best;
    out.ratio[k] = static_cast<float>(1.0 - static_cast<double>(best) / options.grid_points);
    clipped += best > 0;
    denom += dense[k];
    before += err[0][k];
    after += err[best][k];
  }
  Clamp(w, rows, cols, g, out.ratio.data(), groups, w);
  out.error_unclipped = before / (denom > 0 ? denom : 1.0);
  out.error = after / (denom > 0 ? denom : 1.0);
  out.clipped =
      static_cast<double>(clipped) / static_cast<double>(std::max<int64_t>(rows * groups, 1));
  return out;
}

}  // namespace compressd::engine
