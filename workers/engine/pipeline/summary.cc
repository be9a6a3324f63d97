#include "workers/engine/pipeline/summary.h"

#include <map>

#include <sys/resource.h>

namespace compressd::engine {

using nlohmann::json;

namespace {

double Ratio(uint64_t num, uint64_t den) {
  return den ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}

json TotalsJson(const CompressionTotals& t) {
  json out = {{"targeted_tensors", t.targeted_tensors},
              {"targeted_parameters", t.targeted_parameters},
              {"zeros", t.zeros},
              {"sparsity", Ratio(t.zeros, t.targeted_parameters)},
              {"model_sparsity", Ratio(t.zeros, t.model_parameters)}};
  if (t.bits_sum) {
    out["targeted_bits_per_parameter"] =
        t.targeted_parameters ? *t.bits_sum / static_cast<double>(t.targeted_parameters) : 0.0;
  }
  if (t.output_bytes) out["output_bytes"] = *t.output_bytes;
  return out;
}

}  // namespace

uint64_t PeakRssBytes() {
  struct rusage ru = {};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

std::string JobSummary::Dump() const {
  json out = {{"format", format}, {"model", model}};
  if (!compute.empty()) out["compute"] = compute;
  if (evaluation) out["evaluation"] = *evaluation;
  if (layers) out["layers"] = *layers;
  if (totals) out["totals"] = TotalsJson(*totals);
  if (calibration) out["calibration"] = *calibration;
  if (export_report) out["export"] = *export_report;
  if (evopress) out["evopress"] = *evopress;
  if (experts) out["experts"] = *experts;
  json timing_json = json::object();
  for (const auto& [phase, seconds] : timing) timing_json[phase] = seconds;
  out["timing_seconds"] = std::move(timing_json);
  if (peak_rss) out["peak_rss_bytes"] = PeakRssBytes();
  return out.dump();
}

std::optional<nlohmann::json> ExpertsJson(const nlohmann::json& layers) {
  std::map<std::string, json> by_expert;  // sorted by name
  std::vector<std::string> order;
  for (const json& l : layers) {
    if (!l.contains("expert")) continue;
    const std::string module = l["name"].get<std::string>();
    const std::string expert = module.substr(0, module.rfind('.'));
    auto [it, added] = by_expert.try_emplace(expert);
    if (added) {
      order.push_back(expert);
      it->second = {{"name", expert},
                    {"tokens", l["expert_tokens"]},
                    {"calibration", l["calibration"]},
                    {"linears", json::array()}};
    }
    it->second["linears"].push_back(module.substr(expert.size() + 1));
  }
  if (order.empty()) return std::nullopt;
  json list = json::array(), pooled = json::array();
  for (const std::string& name : order) {
    const json& e = by_expert[name];
    if (e["calibration"] == "pooled") pooled.push_back(name);
    list.push_back(e);
  }
  return json{{"count", list.size()}, {"pooled", pooled}, {"list", list}};
}

nlohmann::json CalibrationJson(const CalibrationSet& c, const v1::Calibration& recipe,
                               int resumed_blocks) {
  return nlohmann::json{{"name", c.name},
                        {"source", c.source},
                        {"files", c.files},
                        {"text_tokens", c.text_tokens},
                        {"samples", c.sequences.size()},
                        {"seq_len", recipe.seq_len()},
                        {"seed", recipe.seed()},
                        {"true_sequential", recipe.true_sequential()},
                        {"resumed_blocks", resumed_blocks}};
}

}  // namespace compressd::engine
