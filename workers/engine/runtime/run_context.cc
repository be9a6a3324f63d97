#include "workers/engine/runtime/run_context.h"

#include "common/util.h"

namespace compressd::engine {

void EmitProgress(EventSink& sink, const std::string& stage, int current, int total,
                  const std::string& message) {
  v1::JobEvent e;
  e.set_time_ms(NowMs());
  v1::Progress* p = e.mutable_progress();
  p->set_stage(stage);
  p->set_current(current);
  p->set_total(total);
  p->set_message(message);
  sink.Emit(e);
}

void EmitMetric(EventSink& sink, const std::string& name, double value, const std::string& layer) {
  v1::JobEvent e;
  e.set_time_ms(NowMs());
  v1::MetricPoint* m = e.mutable_metric();
  m->set_name(name);
  m->set_value(value);
  if (!layer.empty()) (*m->mutable_labels())["layer"] = layer;
  sink.Emit(e);
}

void EmitLabeledMetric(EventSink& sink, const std::string& name, double value,
                       const std::map<std::string, std::string>& labels) {
  v1::JobEvent e;
  e.set_time_ms(NowMs());
  v1::MetricPoint* m = e.mutable_metric();
  m->set_name(name);
  m->set_value(value);
  for (const auto& [key, label] : labels) (*m->mutable_labels())[key] = label;
  sink.Emit(e);
}

void EmitLog(EventSink& sink, const std::string& level, const std::string& message) {
  v1::JobEvent e;
  e.set_time_ms(NowMs());
  e.mutable_log()->set_level(level);
  e.mutable_log()->set_message(message);
  sink.Emit(e);
}

}  // namespace compressd::engine
