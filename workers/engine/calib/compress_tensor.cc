#include "workers/engine/calib/compress_tensor.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "workers/engine/calib/layer_stages.h"

namespace compressd::engine {

using nlohmann::json;

void EmitLayerMetrics(const json& entry, EventSink& events) {
  const std::string module = entry["name"].get<std::string>();
  if (entry.contains("relative_error")) {
    EmitMetric(events, "reconstruction_error", entry["relative_error"].get<double>(), module);
  }
  EmitMetric(events, "sparsity", entry["sparsity"].get<double>(), module);
  EmitMetric(events, "bits", entry["bits"].get<double>(), module);
  EmitMetric(events, "seconds", entry["seconds"].get<double>(), module);
  if (entry.contains("expert_tokens")) {
    EmitMetric(events, "expert_tokens", entry["expert_tokens"].get<double>(), module);
  }
}

namespace {

// The summary entry and events of one compressed layer.
json RecordLayer(const std::string& module, const Tensor& t, const LayerOutcome& o,
                 const json& extra, EventSink& events) {
  const uint64_t numel = static_cast<uint64_t>(t.numel());
  const double sparsity = numel ? static_cast<double>(o.zeros) / numel : 0.0;
  const double bits = BitsPerParameter(o.quantized);
  const double seconds = o.solve_seconds + o.error_seconds;
  json entry = {{"name", module},
                {"tensor", module + ".weight"},
                {"shape", t.shape},
                {"numel", numel},
                {"zeros", o.zeros},
                {"sparsity", sparsity},
                {"bits", bits},
                {"seconds", seconds},
                {"stages", o.stages_applied}};
  if (o.quantized) {
    entry["quant"] = {{"bits", o.quantized->grid.bits},
                      {"group_size", o.quantized->grid.group_size},
                      {"symmetric", o.quantized->grid.symmetric}};
    if (o.quantized->spqr) {
      const engine::SpqrParts& p = *o.quantized->spqr;
      entry["quant"]["method"] = "spqr";
      entry["quant"]["stat_bits"] = p.stat_bits;
      entry["quant"]["stat_group"] = p.stat_group;
      entry["quant"]["outliers"] = p.outlier_cols.size();
      entry["quant"]["outlier_fraction"] =
          static_cast<double>(p.outlier_cols.size()) / static_cast<double>(numel);
    }
  }
  if (o.act_order_check) {  // gptq.h "Massive activations"
    const engine::ActOrderCheck& c = *o.act_order_check;
    entry["act_order_check"] = {{"input_ratio", c.input_ratio},
                                {"act_order_error", c.act_order_error},
                                {"plain_error", c.plain_error},
                                {"kept", c.kept_act_order ? "act_order" : "plain"}};
    EmitLog(events, "info",
            absl::StrFormat("%s: massive input activations (largest H_jj %.0fx the median): "
                            "act-order error %.5g, plain %.5g; kept %s",
                            module, c.input_ratio, c.act_order_error, c.plain_error,
                            c.kept_act_order ? "act-order" : "the plain sweep"));
  }
  if (o.relative_error >= 0) {
    entry["relative_error"] = o.relative_error;
    entry["dead_inputs"] = o.dead_inputs;
  }
  entry.update(extra);
  EmitLayerMetrics(entry, events);
  return entry;
}

}  // namespace

void AddTotals(const json& entry, CompressionResult* result) {
  const uint64_t numel = entry["numel"].get<uint64_t>();
  result->targeted_parameters += numel;
  result->zeros += entry["zeros"].get<uint64_t>();
  result->bits_sum += entry["bits"].get<double>() * static_cast<double>(numel);
  result->layers.push_back(entry);
}

absl::Status CompressTensor(const v1::Recipe& recipe, const std::string& module, Tensor* t,
                            const float* h, int threads, SolverBackend* solver, EventSink& events,
                            CompressionResult* result, BlockCheckpoint* checkpoint,
                            const json& extra) {
  std::vector<float> w(t->data, t->data + t->numel());
  const std::string name = module + ".weight";
  ASSIGN_OR_RETURN(LayerOutcome o,
                   CompressLayer(recipe, module, name, w.data(), t->rows(), t->cols(), h, threads,
                                 /*original=*/t->data, solver));
  *t = Tensor::Owned(t->shape, std::move(w));
  result->solve_s += o.solve_seconds;
  result->error_s += o.error_seconds;
  json entry = RecordLayer(module, *t, o, extra, events);
  AddTotals(entry, result);
  if (checkpoint != nullptr) {
    checkpoint->weights[name] = *t;
    checkpoint->layers.push_back(entry);
    if (o.quantized) checkpoint->quantized[name] = *o.quantized;
  }
  if (o.quantized) result->quantized[name] = *std::move(o.quantized);
  return absl::OkStatus();
}

std::set<std::string> TargetModules(const std::vector<ModelTarget>& targets) {
  std::set<std::string> modules;
  for (const ModelTarget& t : targets) modules.insert(t.module);
  return modules;
}

}  // namespace compressd::engine
