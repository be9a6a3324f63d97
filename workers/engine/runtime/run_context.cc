#include "workers/engine/runtime/run_context.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/util.h"

namespace compressd::engine {

uint64_t CgroupMemoryLimit(const std::string& v2_file, const std::string& v1_file) {
  for (const std::string& path : {v2_file, v1_file}) {
    std::ifstream in(path);
    std::string text;
    uint64_t limit = 0;
    // v2 says "max" without a limit; v1 a huge number (PAGE_COUNTER_MAX).
    if (in >> text && absl::SimpleAtoi(text, &limit) && limit > 0 && limit < (1ull << 60)) {
      return limit;
    }
  }
  return 0;
}

uint64_t DefaultMemoryBudgetBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  uint64_t memory = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  // In a container the cgroup's limit is what the OOM killer enforces.
  const uint64_t cgroup = CgroupMemoryLimit("/sys/fs/cgroup/memory.max",
                                            "/sys/fs/cgroup/memory/memory.limit_in_bytes");
  if (cgroup > 0) memory = std::min(memory, cgroup);
  return memory / 10 * 9;
}

absl::StatusOr<uint64_t> ParseByteSize(const std::string& text) {
  double value = 0;
  std::string number = text;
  uint64_t unit = 1;
  if (!text.empty()) {
    const char last = static_cast<char>(std::toupper(static_cast<unsigned char>(text.back())));
    const uint64_t units[] = {1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40};
    const size_t at = std::string("KMGT").find(last);
    if (at != std::string::npos) {
      unit = units[at];
      number.pop_back();
    }
  }
  if (!absl::SimpleAtod(number, &value) || !(value > 0) || value * unit > 1e18) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a size (e.g. 24G, 512M or a number of bytes)"));
  }
  return static_cast<uint64_t>(value * static_cast<double>(unit));
}

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

namespace {
constexpr char kMemoryNeededUrl[] = "type.compressd.dev/memory-needed-bytes";
}  // namespace

absl::Status MemoryRefusal(uint64_t needed, const std::string& message) {
  absl::Status st = absl::ResourceExhaustedError(message);
  st.SetPayload(kMemoryNeededUrl, absl::Cord(absl::StrCat(needed)));
  return st;
}

uint64_t MemoryNeeded(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted) return 0;
  const auto payload = status.GetPayload(kMemoryNeededUrl);
  uint64_t needed = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &needed)) return 0;
  return needed;
}

}  // namespace compressd::engine
