#include "workers/engine/calib/awq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/calib/awq_clip.h"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/calib/block_scaling.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/nn/thread_pool.h"

namespace compressd::engine {
namespace {

// H's upper triangle with its diagonal halved: x^T H x = 2 x^T triu(A) x.
std::vector<float> HalfUpper(const float* h, int64_t cols) {
  std::vector<float> a(h, h + cols * cols);
  for (int64_t j = 0; j < cols; ++j) a[static_cast<size_t>(j * cols + j)] *= 0.5f;
  return a;
}

// sum over the rows e_r of e [rows, cols] of e_r^T H e_r, from a = HalfUpper(H):
// a triangular product, half a full one's work.
double QuadSum(const float* e, const float* a, int64_t rows, int64_t cols) {
  constexpr int64_t kChunk = 256;
  std::vector<float> ea(static_cast<size_t>(std::min(rows, kChunk) * cols));
  double sum = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t k = std::min(kChunk, rows - r0);
    const float* er = e + r0 * cols;
    std::copy(er, er + k * cols, ea.begin());
    cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit,
                static_cast<int>(k), static_cast<int>(cols), 1.0f, a, static_cast<int>(cols),
                ea.data(), static_cast<int>(cols));
    for (int64_t i = 0; i < k * cols; ++i) sum += static_cast<double>(er[i]) * ea[i];
  }
  return 2 * sum;
}

// Mean over every row of every linear of |w_ij| / max |w| of its group.
std::vector<double> WeightMean(const std::vector<AwqWeight>& linears, int64_t cols, int64_t group) {
  const int64_t g = group > 0 ? group : cols;
  std::vector<double> sum(static_cast<size_t>(cols), 0.0);
  int64_t rows = 0;
  for (const AwqWeight& l : linears) {
    for (int64_t r = 0; r < l.rows; ++r) {
      const float* row = l.w + r * cols;
      for (int64_t c0 = 0; c0 < cols; c0 += g) {
        const int64_t k = std::min(g, cols - c0);
        float m = 0;
        for (int64_t j = 0; j < k; ++j) m = std::max(m, std::fabs(row[c0 + j]));
        for (int64_t j = 0; j < k; ++j) {
          sum[static_cast<size_t>(c0 + j)] += std::fabs(row[c0 + j]) / (m + 1e-6);
        }
      }
    }
    rows += l.rows;
  }
  for (double& v : sum) v /= static_cast<double>(std::max<int64_t>(rows, 1));
  return sum;
}

// Candidate a's scales, normalised to sqrt(max * min) = 1.
std::vector<float> CandidateScales(const float* x_mean, const std::vector<double>& w_mean,
                                   int64_t cols, double a, bool duo) {
  std::vector<double> s(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    double v = std::pow(static_cast<double>(x_mean[j]), a);
    if (duo) v /= std::pow(w_mean[static_cast<size_t>(j)], 1.0 - a) + 1e-4;
    s[static_cast<size_t>(j)] = std::max(v, 1e-4);
  }
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const double norm = std::sqrt(*lo * *hi);
  std::vector<float> out(static_cast<size_t>(cols));
  for (size_t j = 0; j < out.size(); ++j) {
    const float v = static_cast<float>(s[j] / norm);
    out[j] = std::isfinite(v) && v > 0 ? v : 1.0f;
  }
  return out;
}

// sum tr(E H E^T) with E = W - Q(W diag(s)) diag(s)^-1 (s null: 1).
absl::StatusOr<double> QuantizedError(const std::vector<AwqWeight>& linears, const float* h,
                                      const std::vector<float>* s, int64_t cols,
                                      const QuantGrid& grid, absl::string_view name) {
  double sum = 0;
  std::vector<float> buf;
  for (const AwqWeight& l : linears) {
    const int64_t n = l.rows * cols;
    buf.assign(l.w, l.w + n);
    if (s != nullptr) {
      for (int64_t i = 0; i < n; ++i)
        buf[static_cast<size_t>(i)] *= (*s)[static_cast<size_t>(i % cols)];
    }
    RETURN_IF_ERROR(QuantizeRtn(buf.data(), l.rows, cols, grid, name).status());
    for (int64_t i = 0; i < n; ++i) {
      const float q = s != nullptr
                          ? buf[static_cast<size_t>(i)] / (*s)[static_cast<size_t>(i % cols)]
                          : buf[static_cast<size_t>(i)];
      buf[static_cast<size_t>(i)] = l.w[i] - q;
    }
    sum += QuadSum(buf.data(), h, l.rows, cols);
  }
  return sum;
}

// Mean |x| per input over the rows of input `which` (all, or `rows`).
std::vector<float> MeanAbs(const LinearInputs& in, int which, int64_t dim,
                           const std::vector<int64_t>* rows) {
  std::vector<double> sum(static_cast<size_t>(dim), 0.0);
  int64_t n = 0;
  ForEachInputRow(in, which, dim, rows, [&](const float* row) {
    for (int64_t j = 0; j < dim; ++j) sum[static_cast<size_t>(j)] += std::fabs(row[j]);
    ++n;
  });
  std::vector<float> out(static_cast<size_t>(dim));
  for (size_t j = 0; j < out.size(); ++j)
    out[j] = static_cast<float>(sum[j] / std::max<int64_t>(n, 1));
  return out;
}

// q/k: AutoAWQ leaves them unclipped (the attention scores amplify their errors).
bool ClipSkips(const std::string& module) {
  return absl::EndsWith(module, "q_proj") || absl::EndsWith(module, "k_proj");
}

// The clipping search on the group's searched linears (after its scales s, or
// none) with input Hessian h of the unscaled inputs; adds its figures to entry.
absl::Status ClipGroup(const std::vector<const BlockLinear*>& linears, const float* h,
                       const AwqSearchResult& r, int64_t dim, const AwqOptions& options,
                       nlohmann::json* entry, std::vector<Tensor*>* changed) {
  std::vector<float> hs(h, h + dim * dim);
  if (r.alpha >= 0) {  // inputs divided by s: H_ij / (s_i s_j)
    for (int64_t i = 0; i < dim * dim; ++i) {
      hs[static_cast<size_t>(i)] /=
          r.scales[static_cast<size_t>(i / dim)] * r.scales[static_cast<size_t>(i % dim)];
    }
  }
  const AwqClipOptions clip{options.grid, options.grid_points, 0.5, options.threads};
  double fraction = 0, before = 0, after = 0;
  int n = 0;
  for (const BlockLinear* l : linears) {
    std::vector<float> v(l->tensor->data, l->tensor->data + l->tensor->numel());
    ASSIGN_OR_RETURN(const AwqClipResult c,
                     AwqClip(v.data(), l->tensor->rows(), dim, hs.data(), clip, l->module));
    *l->tensor = Tensor::Owned(l->tensor->shape, std::move(v));
    if (std::find(changed->begin(), changed->end(), l->tensor) == changed->end()) {
      changed->push_back(l->tensor);
    }
    fraction += c.clipped;
    before += c.error_unclipped;
    after += c.error;
    ++n;
  }
  if (n == 0) return absl::OkStatus();
  (*entry)["clipped"] = fraction / n;
  (*entry)["clip_error_unclipped"] = before / n;
  (*entry)["clip_error"] = after / n;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AwqSearchResult> AwqSearch(const std::vector<AwqWeight>& linears, const float* h,
                                          const float* x_mean, int64_t cols,
                                          const AwqOptions& options, absl::string_view name) {
  if (options.grid_points < 1) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": awq grid_points must be positive"));
  }
  const int n = options.grid_points;
  const std::vector<float> a = HalfUpper(h, cols);
  double dense = 0;
  for (const AwqWeight& l : linears) dense += QuadSum(l.w, a.data(), l.rows, cols);
  const double denom = dense > 0 ? dense : 1.0;
  const std::vector<double> w_mean = options.duo_scaling
                                         ? WeightMean(linears, cols, options.grid.group_size)
                                         : std::vector<double>();
  // Candidate 0 unscaled, candidate k + 1 a = k / n; scored in parallel.
  std::vector<std::vector<float>> scales(static_cast<size_t>(n) + 1);
  for (int k = 0; k < n; ++k) {
    scales[static_cast<size_t>(k) + 1] =
        CandidateScales(x_mean, w_mean, cols, static_cast<double>(k) / n, options.duo_scaling);
  }
  std::vector<double> errors(scales.size());
  std::vector<absl::Status> status(scales.size());
  ThreadPool pool(std::max(options.threads, 1));
  pool.ParallelFor(static_cast<int64_t>(scales.size()), [&](int64_t i) {
    const size_t c = static_cast<size_t>(i);
    absl::StatusOr<double> e =
        QuantizedError(linears, a.data(), c == 0 ? nullptr : &scales[c], cols, options.grid, name);
    if (e.ok()) errors[c] = *e / denom;
    status[c] = e.status();
  });
  for (const absl::Status& s : status) RETURN_IF_ERROR(s);
  AwqSearchResult r;
  r.errors = errors;
  r.error_unscaled = r.error = errors[0];
  r.scales.assign(static_cast<size_t>(cols), 1.0f);
  for (int k = 0; k < n; ++k) {
    const double e = errors[static_cast<size_t>(k) + 1];
    if (e < r.error || (k == 0 && !options.unscaled_candidate)) {
      r.error = e;
      r.alpha = static_cast<double>(k) / n;
      r.scales = scales[static_cast<size_t>(k) + 1];
    }
  }
  return r;
}

absl::StatusOr<nlohmann::json> AwqBlock(const LlamaConfig& config, int layer, BlockWeights* w,
                                        const LinearInputs& in, const AwqOptions& options,
                                        const std::set<std::string>& targets, SolverBackend& solver,
                                        std::vector<Tensor*>* changed) {
  const std::vector<BlockLinear> linears = BlockLinearsOf(config, layer, w);
  const std::vector<NamedTensor> named = BlockTensors(config, layer, w);
  nlohmann::json entries = nlohmann::json::array();
  for (const ScaleGroup& g : ScaleGroups(config, w, linears)) {
    std::vector<AwqWeight> searched;
    std::vector<const BlockLinear*> clipped;
    std::string first;
    for (const BlockLinear* l : g.linears) {
      if (!targets.count(l->module)) continue;
      searched.push_back({l->tensor->data, l->tensor->rows()});
      if (first.empty()) first = l->module;
      if (options.clip && !ClipSkips(l->module)) clipped.push_back(l);
    }
    if (searched.empty()) continue;
    const int64_t dim = g.linears.front()->tensor->cols();
    std::vector<int64_t> rows;
    if (g.input == 4) {
      rows = ExpertRows(in, 4, g.expert);
      if (rows.empty()) continue;  // no token reached the expert: nothing to weigh by
    }
    const std::vector<int64_t>* subset = g.input == 4 ? &rows : nullptr;
    const std::vector<float> x_mean = MeanAbs(in, g.input, dim, subset);
    ASSIGN_OR_RETURN(const std::vector<float> h,
                     InputHessian(in, g.input, dim, subset, solver, options.threads));
    ASSIGN_OR_RETURN(const AwqSearchResult r,
                     AwqSearch(searched, h.data(), x_mean.data(), dim, options, first));
    Tensor* prev = g.norm != nullptr ? g.norm : g.rows;
    nlohmann::json entry = {{"block", layer},
                            {"linears", first},
                            {"folded_into", NameOf(named, prev)},
                            {"error_unscaled", r.error_unscaled},
                            {"error", r.error}};
    entry["alpha"] = r.alpha >= 0 ? nlohmann::json(r.alpha) : nlohmann::json(nullptr);
    if (r.alpha >= 0) FoldScales(config, g, r.scales, changed);  // else nothing to fold
    RETURN_IF_ERROR(ClipGroup(clipped, h.data(), r, dim, options, &entry, changed));
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string AwqLogLine(const nlohmann::json& entries) {
  std::string line = "awq:";
  for (const nlohmann::json& e : entries) {
    absl::StrAppend(
        &line, line.size() > 4 ? "; " : " ", e["folded_into"].get<std::string>(),
        e["alpha"].is_null() ? " unscaled" : absl::StrFormat(" a=%.2f", e["alpha"].get<double>()),
        absl::StrFormat(" (error %.4g -> %.4g)", e["error_unscaled"].get<double>(),
                        e["error"].get<double>()),
        e.contains("clipped") ? absl::StrFormat(" clipped %.0f%%", 100 * e["clipped"].get<double>())
                              : "");
  }
  return line;
}

}  // namespace compressd::engine
