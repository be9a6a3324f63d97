#include "server/scheduler/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/util.h"

namespace compressd {

WorkerRegistry::WorkerRegistry(ServerMetrics& metrics, SchedulerOptions options)
    : metrics_(metrics), options_(std::move(options)) {}

std::string WorkerKeyId(const std::string& worker_id) {
  constexpr std::string_view kPrefix = "wkr-";
  const size_t last = worker_id.rfind('-');
  if (worker_id.rfind(kPrefix, 0) != 0 || last <= kPrefix.size()) return "";
  return worker_id.substr(kPrefix.size(), last - kPrefix.size());
}

std::string WorkerRegistry::Register(const v1::RegisterWorkerRequest& info,
                                     const std::string& key_id) {
  std::string worker_id = NewId(key_id.empty() ? "wkr-" : absl::StrCat("wkr-", key_id, "-"));
  absl::MutexLock lock(&mu_);
  Worker& worker = workers_[worker_id];
  worker.info = info;
  worker.last_seen_ms = options_.Now();
  worker.registered_ms = worker.last_seen_ms;
  UpdateGaugesLocked();
  return worker_id;
}

absl::Status WorkerRegistry::Touch(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: worker \"", worker_id,
                                            "\" is not registered; call RegisterWorker"));
  }
  it->second.last_seen_ms = options_.Now();
  return absl::OkStatus();
}

void WorkerRegistry::SetTask(const std::string& worker_id, const std::string& task_id, bool admit) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    if (!admit) return;
    it = workers_.emplace(worker_id, Worker()).first;
    it->second.registered_ms = options_.Now();
  }
  SwitchTaskLocked(it->second, task_id);
  it->second.last_seen_ms = options_.Now();
  UpdateGaugesLocked();
}

void WorkerRegistry::Release(const std::string& worker_id, const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end() && it->second.task_id == task_id) SwitchTaskLocked(it->second, "");
  UpdateGaugesLocked();
}

void WorkerRegistry::SwitchTaskLocked(Worker& w, const std::string& task_id) {
  if (w.task_id == task_id) return;
  const int64_t now = options_.Now();
  if (!w.task_id.empty()) w.busy_ms += now - w.task_since_ms;
  w.task_id = task_id;
  w.task_since_ms = task_id.empty() ? 0 : now;
}

std::vector<WorkerView> WorkerRegistry::Snapshot() {
  absl::MutexLock lock(&mu_);
  const int64_t now = options_.Now();
  std::vector<WorkerView> out;
  out.reserve(workers_.size());
  for (const auto& [id, w] : workers_) {
    out.push_back({id, w.info, w.registered_ms, w.last_seen_ms, w.task_id, w.task_since_ms,
                   w.busy_ms + (w.task_id.empty() ? 0 : now - w.task_since_ms)});
  }
  return out;
}

void WorkerRegistry::ExpireSilent(int64_t now, const std::vector<std::string>& heard,
                                  const std::set<std::string>& waiting) {
  absl::MutexLock lock(&mu_);
  for (const std::string& worker_id : heard) {
    auto it = workers_.find(worker_id);
    if (it != workers_.end()) it->second.last_seen_ms = now;
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    bool silent = now - it->second.last_seen_ms > options_.worker_timeout_ms;
    if (silent && waiting.count(it->first) == 0) {
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  UpdateGaugesLocked();
}

size_t WorkerRegistry::Count() {
  absl::MutexLock lock(&mu_);
  return workers_.size();
}

void WorkerRegistry::SetMemory(const std::string& worker_id, uint64_t memory_bytes) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.info.set_memory_bytes(memory_bytes);
}

uint64_t WorkerRegistry::MemoryOf(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? 0 : it->second.info.memory_bytes();
}

DeviceNeed WorkerRegistry::KindOf(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? DeviceNeed::kCpu : WorkerDeviceKind(it->second.info.device());
}

size_t WorkerRegistry::CountOf(DeviceNeed kind) {
  absl::MutexLock lock(&mu_);
  return std::count_if(workers_.begin(), workers_.end(), [kind](const auto& w) {
    return WorkerDeviceKind(w.second.info.device()) == kind;
  });
}

size_t WorkerRegistry::IdleOf(DeviceNeed kind) {
  absl::MutexLock lock(&mu_);
  return std::count_if(workers_.begin(), workers_.end(), [kind](const auto& w) {
    return w.second.task_id.empty() && WorkerDeviceKind(w.second.info.device()) == kind;
  });
}

void WorkerRegistry::UpdateGaugesLocked() {
  int64_t busy = std::count_if(workers_.begin(), workers_.end(),
                               [](const auto& w) { return !w.second.task_id.empty(); });
  metrics_.workers_connected().Set(static_cast<double>(workers_.size()));
  metrics_.workers_busy().Set(static_cast<double>(busy));
  double gpus = 0, gpus_busy = 0, gpu_memory = 0;
  for (const auto& [id, w] : workers_) {
    if (WorkerDeviceKind(w.info.device()) != DeviceNeed::kCuda) continue;
    ++gpus;
    gpus_busy += w.task_id.empty() ? 0 : 1;
    gpu_memory += static_cast<double>(w.info.device_memory_bytes());
  }
  metrics_.gpu_workers_connected().Set(gpus);
  metrics_.gpu_workers_busy().Set(gpus_busy);
  metrics_.gpu_memory_bytes().Set(gpu_memory);
}

}  // namespace compressd
