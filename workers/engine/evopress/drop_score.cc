#include "workers/engine/evopress/drop_score.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine::evopress {
namespace {

// Sum over the rows of (1 - cos(a_t, b_t)) for [t, d] arrays.
double SumOneMinusCos(const float* a, const float* b, int64_t t, int64_t d) {
  double sum = 0;
  for (int64_t r = 0; r < t; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double x = a[r * d + i], y = b[r * d + i];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    const double denom = std::sqrt(aa) * std::sqrt(bb);
    sum += 1.0 - (denom > 0 ? ab / denom : 1.0);
  }
  return sum;
}

}  // namespace

absl::StatusOr<std::vector<double>> BlockInfluence(
    const engine::LlamaModel& dense, engine::Backend* backend, const SearchSpace& space,
    const std::vector<std::vector<int32_t>>& windows) {
  if (space.mode != Mode::kDrop) {
    return absl::InvalidArgumentError("block influence scores drop-mode units only");
  }
  if (windows.empty()) return absl::InvalidArgumentError("block influence: no windows");
  ASSIGN_OR_RETURN(engine::LlamaForward fwd, engine::LlamaForward::Create(&dense, backend));
  const int n = dense.config.n_layers;
  const int64_t d = dense.config.hidden;
  std::vector<double> attn(n, 0.0), mlp(n, 0.0);
  int64_t tokens = 0;
  engine::BlockWorkspace ws;
  for (const std::vector<int32_t>& w : windows) {
    ASSIGN_OR_RETURN(engine::SequenceBatch batch, engine::SequenceBatch::Pack({w}));
    const int64_t t = batch.tokens();
    std::vector<float> h(t * d), before(t * d);
    RETURN_IF_ERROR(fwd.Embed(batch, h.data()));
    for (int b = 0; b < n; ++b) {
      before = h;
      RETURN_IF_ERROR(fwd.RunBlockParts(dense.blocks[b], {true, false}, batch, h.data(), &ws));
      attn[b] += SumOneMinusCos(before.data(), h.data(), t, d);
      before = h;
      RETURN_IF_ERROR(fwd.RunBlockParts(dense.blocks[b], {false, true}, batch, h.data(), &ws));
      mlp[b] += SumOneMinusCos(before.data(), h.data(), t, d);
    }
    tokens += t;
  }
  std::vector<double> scores;
  for (const Unit& u : space.units) {
    scores.push_back((u.attention ? attn[u.block] : mlp[u.block]) / static_cast<double>(tokens));
  }
  return scores;
}

absl::StatusOr<Config> ScoreDropConfig(const SearchSpace& space, double target,
                                       const std::vector<double>& scores) {
  if (scores.size() != space.units.size()) {
    return absl::InvalidArgumentError(absl::StrCat("drop scores: ", scores.size(),
                                                   " scores for ", space.units.size(), " units"));
  }
  if (!(target >= 0 && target <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("evopress.target: ", target,
                                                   " is not a fraction in [0, 1]"));
  }
  Config config(space.units.size(), 0);
  for (const std::vector<int>& group : space.groups) {
    std::vector<int> order = group;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
    });
    const size_t drop = static_cast<size_t>(std::llround(target * order.size()));
    for (size_t i = 0; i < drop && i < order.size(); ++i) config[order[i]] = 1;
  }
  return config;
}

}  // namespace compressd::engine::evopress
