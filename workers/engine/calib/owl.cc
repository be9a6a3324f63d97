#include "workers/engine/calib/owl.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_owl.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

// ||X_j||_2 over the rows of x [rows, dim] (all `tokens` rows, or `rows`).
std::vector<double> ColumnNorms(const float* x, int64_t dim, int64_t tokens,
                                const std::vector<int64_t>* rows) {
  std::vector<double> ss(static_cast<size_t>(dim), 0.0);
  const int64_t n = rows != nullptr ? static_cast<int64_t>(rows->size()) : tokens;
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + (rows != nullptr ? (*rows)[static_cast<size_t>(i)] : i) * dim;
    for (int64_t j = 0; j < dim; ++j) ss[j] += static_cast<double>(r[j]) * r[j];
  }
  for (double& v : ss) v = std::sqrt(v);
  return ss;
}

// The rows of input `input` behind one linear: every row, or an expert's.
int64_t InputRows(const LinearInputs& in, int input) {
  return input == 4 ? in.tokens * in.experts_per_token : in.tokens;
}

}  // namespace

std::vector<double> OwlSparsities(const std::vector<double>& outlier_percent, double sparsity,
                                  double lambda, const std::vector<uint64_t>& weights) {
  const size_t n = outlier_percent.size();
  auto weight = [&](size_t l) { return weights.empty() ? 1.0 : static_cast<double>(weights[l]); };
  double min = 0, max = 0, total = 0;
  for (size_t l = 0; l < n; ++l) {
    if (weight(l) <= 0) continue;
    min = total > 0 ? std::min(min, outlier_percent[l]) : outlier_percent[l];
    max = total > 0 ? std::max(max, outlier_percent[l]) : outlier_percent[l];
    total += weight(l);
  }
  std::vector<double> d(n, 0.0);
  double mean = 0;
  for (size_t l = 0; l < n; ++l) {
    if (weight(l) <= 0) continue;
    if (max > min) d[l] = (outlier_percent[l] - min) / (max - min) * 2 * lambda;
    mean += d[l] * weight(l) / total;
  }
  std::vector<double> s(n, sparsity);
  for (size_t l = 0; l < n; ++l) {
    if (weight(l) > 0) s[l] = sparsity - (d[l] - mean);
  }
  return s;
}

std::vector<double> BlockOutlierPercent(const std::vector<const BlockLinear*>& linears,
                                        const LinearInputs& in, const std::vector<double>& ms,
                                        uint64_t* weights) {
  // Column norms per (input, expert), shared by the linears reading them.
  std::map<std::pair<int, int>, std::vector<double>> norms;
  for (const BlockLinear* l : linears) {
    const std::pair<int, int> key{l->input, l->expert};
    if (norms.count(key)) continue;
    const std::vector<int64_t> rows =
        l->expert >= 0 ? ExpertRows(in, l->input, l->expert) : std::vector<int64_t>{};
    norms[key] = ColumnNorms(in.input(l->input), l->tensor->cols(), InputRows(in, l->input),
                             l->expert >= 0 ? &rows : nullptr);
  }
  // Two passes over the scores: their mean, then the counts above m * mean.
  double sum = 0;
  uint64_t count = 0;
  for (const BlockLinear* l : linears) {
    const std::vector<double>& n = norms[{l->input, l->expert}];
    const float* w = l->tensor->data;
    const int64_t rows = l->tensor->rows(), cols = l->tensor->cols();
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) sum += std::fabs(w[i * cols + j]) * n[j];
    }
    count += static_cast<uint64_t>(rows * cols);
  }
  std::vector<double> percent(ms.size(), 0.0);
  if (weights != nullptr) *weights = count;
  if (count == 0) return percent;
  const double mean = sum / static_cast<double>(count);
  std::vector<uint64_t> above(ms.size(), 0);
  for (const BlockLinear* l : linears) {
    const std::vector<double>& n = norms[{l->input, l->expert}];
    const float* w = l->tensor->data;
    const int64_t rows = l->tensor->rows(), cols = l->tensor->cols();
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        const double a = std::fabs(w[i * cols + j]) * n[j];
        for (size_t k = 0; k < ms.size(); ++k) above[k] += a > ms[k] * mean;
      }
    }
  }
  for (size_t k = 0; k < ms.size(); ++k) {
    percent[k] = 100.0 * static_cast<double>(above[k]) / static_cast<double>(count);
  }
  return percent;
}

absl::StatusOr<OwlScores> OwlOutlierPercents(
    LlamaModel& model, Backend& backend, const std::set<std::string>& targets,
    const CalibrationSet& calibration, const std::vector<double>& ms, BlockStream* stream,
    const BlockRunnerOptions& options, EventSink& events, const CancelToken& cancel) {
  const int n = model.config.n_layers;
  OwlScores scores;
  scores.percent.assign(ms.size(), std::vector<double>(n, 0.0));
  scores.weights.assign(static_cast<size_t>(n), 0);
  ASSIGN_OR_RETURN(std::unique_ptr<BlockRunner> runner,
                   BlockRunner::Create(&model, &backend, calibration.sequences, options));
  while (!runner->done()) {
    const int block = runner->next_block();
    if (stream != nullptr && block > 0) RETURN_IF_ERROR(stream->Peek(block, &model.blocks[block]));
    EmitProgress(events, "owl", block, n, absl::StrCat("outlier ratio of block ", block));
    RETURN_IF_ERROR(runner->RunNextBlock(
        [&](int i, const LinearInputs& in, BlockWeights* w) -> absl::Status {
          std::vector<BlockLinear> linears =
              BlockLinearsOf(model.config, w->layer >= 0 ? w->layer : i, w);
          std::vector<const BlockLinear*> targeted;
          for (const BlockLinear& l : linears) {
            if (targets.count(l.module) && l.tensor != nullptr) targeted.push_back(&l);
          }
          const std::vector<double> p =
              BlockOutlierPercent(targeted, in, ms, &scores.weights[static_cast<size_t>(i)]);
          for (size_t k = 0; k < ms.size(); ++k) scores.percent[k][static_cast<size_t>(i)] = p[k];
          return absl::OkStatus();
        }));
    if (stream != nullptr && block > 0) model.blocks[block] = BlockWeights();
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
  }
  EmitProgress(events, "owl", n, n, "done");
  return scores;
}

absl::StatusOr<std::vector<v1::Recipe>> OwlBlockRecipes(
    LlamaModel& model, Backend& backend, const v1::Recipe& recipe,
    const std::set<std::string>& targets, const CalibrationSet& calibration, BlockStream* stream,
    const BlockRunnerOptions& options, EventSink& events, const CancelToken& cancel,
    json* report) {
  std::vector<double> ms;
  for (const v1::Stage& s : recipe.stages()) {
    const v1::OwlSpec* owl = StageOwl(s);
    if (owl != nullptr && std::find(ms.begin(), ms.end(), owl->m()) == ms.end()) {
      ms.push_back(owl->m());
    }
  }
  if (ms.empty()) return std::vector<v1::Recipe>{};
  ASSIGN_OR_RETURN(const OwlScores scores,
                   OwlOutlierPercents(model, backend, targets, calibration, ms, stream, options,
                                      events, cancel));
  const int n = model.config.n_layers;
  std::vector<v1::Recipe> recipes(static_cast<size_t>(n), recipe);
  *report = json::array();
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::OwlSpec* owl = StageOwl(recipe.stages(i));
    if (owl == nullptr) continue;
    const size_t k = static_cast<size_t>(std::find(ms.begin(), ms.end(), owl->m()) - ms.begin());
    const double target = OwlTargetSparsity(recipe.stages(i));
    const std::vector<double> s =
        OwlSparsities(scores.percent[k], target, owl->lambda(), scores.weights);
    json blocks = json::array();
    std::string line;
    for (int b = 0; b < n; ++b) {
      ResolveOwl(recipes[static_cast<size_t>(b)].mutable_stages(i), s[b]);
      blocks.push_back({{"block", b},
                        {"outlier_percent", scores.percent[k][b]},
                        {"targeted_weights", scores.weights[b]},
                        {"sparsity", s[b]}});
      EmitMetric(events, "owl_sparsity", s[b], absl::StrCat("model.layers.", b));
      absl::StrAppendFormat(&line, "%s%.3f", b ? " " : "", s[b]);
    }
    report->push_back({{"stage", i}, {"m", owl->m()}, {"lambda", owl->lambda()},
                       {"sparsity", target}, {"blocks", blocks}});
    EmitLog(events, "info",
            absl::StrCat("OWL (stages[", i, "], m ", owl->m(), ", lambda ", owl->lambda(),
                         "): per-block sparsity ", line));
  }
  return recipes;
}

}  // namespace compressd::engine
