#include "workers/engine/calib/block_scaling.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/strip.h"

namespace compressd::engine {
namespace {

// t <- f(t's values) as a new owned tensor.
template <typename F>
void Rewrite(Tensor* t, F f) {
  std::vector<float> v(t->data, t->data + t->numel());
  f(v.data());
  *t = Tensor::Owned(t->shape, std::move(v));
}

}  // namespace

void ScaleColumns(Tensor* t, const std::vector<float>& s) {
  const int64_t cols = t->cols();
  Rewrite(t, [&](float* v) {
    for (int64_t i = 0; i < t->numel(); ++i) v[i] *= s[static_cast<size_t>(i % cols)];
  });
}

void DivideRows(Tensor* t, const std::vector<float>& s) {
  const int64_t cols = t->shape.size() < 2 ? 1 : t->cols();
  Rewrite(t, [&](float* v) {
    for (int64_t i = 0; i < t->numel(); ++i) v[i] /= s[static_cast<size_t>(i / cols)];
  });
}

void DivideNorm(Tensor* t, const std::vector<float>& s, bool offset) {
  Rewrite(t, [&](float* v) {
    for (int64_t j = 0; j < t->numel(); ++j) {
      const float sj = s[static_cast<size_t>(j)];
      v[j] = offset ? (1.0f + v[j]) / sj - 1.0f : v[j] / sj;
    }
  });
}

std::vector<ScaleGroup> ScaleGroups(const LlamaConfig& config, BlockWeights* w,
                                    const std::vector<BlockLinear>& linears) {
  std::map<std::pair<int, int>, ScaleGroup> by_key;
  for (const BlockLinear& l : linears) {
    if (l.tensor == nullptr || l.tensor->empty()) continue;
    const int expert = l.input == 4 ? l.expert : -1;
    ScaleGroup& g = by_key[{l.input, expert}];
    g.input = l.input;
    g.expert = expert;
    g.linears.push_back(&l);
  }
  std::vector<ScaleGroup> out;
  for (auto& [key, g] : by_key) {
    switch (g.input) {
      case 0:
        g.norm = &w->attn_norm;
        break;
      case 1:  // v_proj's rows feed o_proj only without grouped-query attention
        if (w->v_proj.rows() != w->o_proj.cols()) continue;
        g.rows = &w->v_proj;
        if (config.attention_bias && !w->v_bias.empty()) g.bias = &w->v_bias;
        break;
      case 2:
        g.norm = &w->mlp_norm;
        break;
      case 3:
        g.rows = &w->up_proj;
        break;
      case 4:
        g.rows = &w->experts[static_cast<size_t>(g.expert)].up_proj;
        break;
      default:
        g.rows = &w->shared_expert.up_proj;
        break;
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::string NameOf(const std::vector<NamedTensor>& named, const Tensor* t) {
  for (const NamedTensor& n : named) {
    if (n.tensor == t) return std::string(absl::StripSuffix(n.name, ".weight"));
  }
  return "?";
}

void FoldScales(const LlamaConfig& config, const ScaleGroup& g, const std::vector<float>& s,
                std::vector<Tensor*>* changed) {
  const auto add = [changed](Tensor* t) {
    if (std::find(changed->begin(), changed->end(), t) == changed->end()) changed->push_back(t);
  };
  for (const BlockLinear* l : g.linears) {
    ScaleColumns(l->tensor, s);
    add(l->tensor);
  }
  if (g.norm != nullptr) DivideNorm(g.norm, s, config.norm_offset);
  if (g.rows != nullptr) DivideRows(g.rows, s);
  if (g.bias != nullptr) DivideRows(g.bias, s);
  add(g.norm != nullptr ? g.norm : g.rows);
  if (g.bias != nullptr) add(g.bias);
}

std::vector<float> InputMaxAbs(const LinearInputs& in, int which, int64_t dim,
                               const std::vector<int64_t>* rows) {
  std::vector<float> out(static_cast<size_t>(dim), 0.0f);
  ForEachInputRow(in, which, dim, rows, [&](const float* row) {
    for (int64_t j = 0; j < dim; ++j) {
      out[static_cast<size_t>(j)] = std::max(out[static_cast<size_t>(j)], std::fabs(row[j]));
    }
  });
  return out;
}

}  // namespace compressd::engine
