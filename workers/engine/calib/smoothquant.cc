#include "workers/engine/calib/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_stages.h"
#include "common/recipe_w8a8.h"
#include "common/status_macros.h"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/calib/block_scaling.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

constexpr double kMinScale = 1e-5;  // llm-compressor's MINIMUM_SMOOTHING_SCALE

float MaxOf(const std::vector<float>& v) {
  return v.empty() ? 0.0f : *std::max_element(v.begin(), v.end());
}

// Max |w_ij| per column over every row of every weight.
std::vector<float> WeightMaxAbs(const std::vector<const Tensor*>& weights, int64_t cols) {
  std::vector<float> w_max(static_cast<size_t>(cols), 0.0f);
  for (const Tensor* t : weights) {
    for (int64_t r = 0; r < t->rows(); ++r) {
      const float* row = t->data + r * cols;
      for (int64_t j = 0; j < cols; ++j) {
        w_max[static_cast<size_t>(j)] = std::max(w_max[static_cast<size_t>(j)], std::fabs(row[j]));
      }
    }
  }
  return w_max;
}

}  // namespace

std::vector<float> SmoothQuantScales(const std::vector<const Tensor*>& weights,
                                     const std::vector<float>& x_max, double alpha) {
  const int64_t cols = static_cast<int64_t>(x_max.size());
  const std::vector<float> w_max = WeightMaxAbs(weights, cols);
  std::vector<float> s(static_cast<size_t>(cols));
  for (size_t j = 0; j < s.size(); ++j) {
    const double x = x_max[j], wm = w_max[j];
    const double v = wm > 0 ? std::pow(x, alpha) / std::pow(wm, 1.0 - alpha) : x;
    s[j] = static_cast<float>(std::max(v, kMinScale));
  }
  return s;
}

nlohmann::json SmoothQuantBlock(const LlamaConfig& config, int layer, BlockWeights* w,
                                const LinearInputs& in, const v1::SmoothQuantSpec& spec,
                                const std::set<std::string>& targets,
                                std::vector<Tensor*>* changed) {
  const double alpha = spec.alpha();
  const std::vector<BlockLinear> linears = BlockLinearsOf(config, layer, w);
  const std::vector<NamedTensor> named = BlockTensors(config, layer, w);
  nlohmann::json entries = nlohmann::json::array();
  for (const ScaleGroup& g : ScaleGroups(config, w, linears)) {
    // The norm-fed inputs (q/k/v, gate/up), and down_proj's (input 3 and up:
    // a dense MLP's, an expert's, the shared expert's) when asked.
    if (g.norm == nullptr && !(spec.down_proj() && g.input >= 3)) continue;
    std::string first;
    std::vector<const Tensor*> weights;
    for (const BlockLinear* l : g.linears) {
      if (first.empty() && targets.count(l->module)) first = l->module;
      weights.push_back(l->tensor);
    }
    if (first.empty()) continue;
    std::vector<int64_t> rows;  // an expert's down_proj: the rows routed to it
    if (g.input == 4) {
      rows = ExpertRows(in, 4, g.expert);
      if (rows.empty()) continue;  // no token reached the expert: nothing to measure
    }
    const int64_t dim = g.linears.front()->tensor->cols();
    const std::vector<float> x_max = InputMaxAbs(in, g.input, dim, g.input == 4 ? &rows : nullptr);
    const std::vector<float> s = SmoothQuantScales(weights, x_max, alpha);
    const std::vector<float> w_max = WeightMaxAbs(weights, dim);
    float x_after = 0, w_after = 0;
    for (size_t j = 0; j < s.size(); ++j) {
      x_after = std::max(x_after, x_max[j] / s[j]);
      w_after = std::max(w_after, w_max[j] * s[j]);
    }
    FoldScales(config, g, s, changed);
    entries.push_back({{"block", layer},
                       {"linears", first},
                       {"folded_into", NameOf(named, g.norm != nullptr ? g.norm : g.rows)},
                       {"alpha", alpha},
                       {"x_max", MaxOf(x_max)},
                       {"x_max_smoothed", x_after},
                       {"w_max", MaxOf(w_max)},
                       {"w_max_smoothed", w_after}});
  }
  return entries;
}

std::string SmoothQuantLogLine(const nlohmann::json& entries) {
  std::string line = "smoothquant:";
  for (const nlohmann::json& e : entries) {
    absl::StrAppend(&line, line.size() > 12 ? "; " : " ", e["folded_into"].get<std::string>(),
                    absl::StrFormat(" |x| %.3g -> %.3g, |w| %.3g -> %.3g", e["x_max"].get<double>(),
                                    e["x_max_smoothed"].get<double>(), e["w_max"].get<double>(),
                                    e["w_max_smoothed"].get<double>()));
  }
  return line;
}

absl::StatusOr<uint32_t> ActQuantMask(const LlamaConfig& config, int layer, BlockWeights* w,
                                      const std::set<std::string>& w8a8) {
  std::map<uint32_t, std::pair<int, int>> counts;  // bit -> (linears, in w8a8)
  for (const BlockLinear& l : BlockLinearsOf(config, layer, w)) {
    if (l.tensor == nullptr || l.tensor->empty()) continue;
    auto& [total, quantized] = counts[ActQuantBit(*w, l.tensor)];
    ++total;
    if (w8a8.count(l.module)) ++quantized;
  }
  uint32_t mask = 0;
  for (const auto& [bit, count] : counts) {
    if (count.second == 0) continue;
    if (count.second < count.first) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers.", layer, ": activations (W8A8) quantize ", count.second, " of the ",
          count.first, bit == kActExperts ? " expert linears" : " shared-expert linears",
          "; the runtime quantizes the inputs of all of them or none (targets)"));
    }
    mask |= bit;
  }
  return mask;
}

absl::Status MarkW8A8(const v1::Recipe& recipe, const std::set<std::string>& targets,
                      const LlamaConfig& config, int layer, BlockWeights* w) {
  const int stage = ActivationStage(recipe);
  if (stage < 0) return absl::OkStatus();
  std::set<std::string> w8a8;
  for (const BlockLinear& l : BlockLinearsOf(config, layer, nullptr)) {
    if (!targets.count(l.module)) continue;
    bool skip = false;
    RETURN_IF_ERROR(EffectiveStage(recipe, stage, l.module, &skip).status());
    if (!skip) w8a8.insert(l.module);
  }
  ASSIGN_OR_RETURN(w->act_quant, ActQuantMask(config, layer, w, w8a8));
  w->act_fp8 = ActivationsAreFp8(*StageActivations(recipe.stages(stage)));
  return absl::OkStatus();
}

}  // namespace compressd::engine
