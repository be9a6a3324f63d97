#include "workers/worker/lease_scope.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/worker/task_files.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

// Where leased EvoPress jobs and their parts keep the levels database: the
// model's shared checkpoints (server/jobs/checkpoint_service.h), so every
// later job on the same model and calibration set reuses it. The database's
// keys carry the digests of the model, the calibration windows and the
// algorithm's parameters (evopress/levels_db.h).
constexpr char kSharedLevelsPrefix[] = "shared/levels/";

absl::StatusOr<std::string> TaskDir(const std::string& cache_dir, const v1::Task& task) {
  RETURN_IF_ERROR(ValidateRelativePath(task.task_id(), "task.task_id"));
  if (task.task_id().find('/') != std::string::npos) {
    return absl::InvalidArgumentError("task.task_id: must not contain '/'");
  }
  // One directory per attempt and process: a worker still running an older
  // attempt (after a server restart) never shares its scratch files with
  // this one, and SweepDeadTaskDirs knows whose a leftover is.
  return (fs::path(cache_dir) / "tasks" /
          absl::StrCat(task.task_id(), ".a", task.attempt(), ".p", ::getpid()))
      .string();
}

}  // namespace

namespace {

// A process that exists and is not a zombie (a killed worker whose parent
// died too may stay a zombie until init reaps it).
bool ProcessAlive(int pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return true;  // no procfs: trust kill()
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

}  // namespace

int SweepDeadTaskDirs(const std::string& cache_dir) {
  int removed = 0;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(fs::path(cache_dir) / "tasks", ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".p");
    int pid = 0;
    if (at == std::string::npos || !absl::SimpleAtoi(name.substr(at + 2), &pid) || pid <= 0) {
      continue;  // not ours to judge
    }
    if (ProcessAlive(pid)) continue;
    RemoveTree(e.path().string());
    ++removed;
  }
  return removed;
}

void ShutdownSignal::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  if (token_ != nullptr) token_->Cancel();
}

bool ShutdownSignal::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

void ShutdownSignal::Attach(engine::CancelToken* token) {
  absl::MutexLock lock(&mu_);
  token_ = token;
  if (stopped_) token_->Cancel();
}

void ShutdownSignal::Detach() {
  absl::MutexLock lock(&mu_);
  token_ = nullptr;
}

LeaseScope::LeaseScope(WorkerClient& client, const TaskReporter& reporter, const v1::Task& task,
                       const Registration& registration, const std::string& cache_dir,
                       ShutdownSignal& shutdown)
    : client_(client),
      task_(task),
      registration_(registration),
      shutdown_(shutdown),
      dir_(TaskDir(cache_dir, task)),
      checkpoints_(client, task.task_id(), task.lease_token(), reporter.retry(), on_lease_lost()),
      levels_db_(checkpoints_, kSharedLevelsPrefix) {
  shutdown_.Attach(&cancel_);
}

LeaseScope::~LeaseScope() { Close(); }

void LeaseScope::Start(Heartbeater::ProgressFn progress) {
  v1::HeartbeatRequest beat;
  beat.set_worker_id(registration_.worker_id);
  beat.set_task_id(task_.task_id());
  beat.set_lease_token(task_.lease_token());
  heartbeats_ = std::make_unique<Heartbeater>(
      [this](const v1::HeartbeatRequest& r) { return client_.Heartbeat(r); }, beat,
      registration_.heartbeat_interval_ms, std::move(progress), cancel_);
  if (dir_.ok()) RemoveTree(*dir_);  // leftovers of a crashed run
}

void LeaseScope::LoseLease() {
  lease_lost_ = true;
  cancel_.Cancel();
}

bool LeaseScope::stopped() const {
  return cancel_.cancelled() || lease_lost_ || (heartbeats_ && heartbeats_->lease_lost());
}

bool LeaseScope::job_cancelled() const { return heartbeats_ && heartbeats_->job_cancelled(); }

std::string LeaseScope::EndStopped() {
  if (job_cancelled()) return "job cancelled";
  if (lease_lost_ || (heartbeats_ && heartbeats_->lease_lost())) return "lease lost";
  if (!shutdown_.stopped()) return "cancelled";
  v1::FailTaskRequest req;
  req.set_task_id(task_.task_id());
  req.set_lease_token(task_.lease_token());
  req.set_error("the worker is shutting down");
  req.set_release(true);
  const absl::Status handed = client_.FailTask(req);
  return handed.ok()
             ? "worker shutting down: lease handed back"
             : absl::StrCat(
                   "worker shutting down (handing the lease back failed: ", handed.ToString(), ")");
}

void LeaseScope::Close() {
  shutdown_.Detach();
  if (heartbeats_) heartbeats_->Stop();
  if (dir_.ok()) RemoveTree(*dir_);
}

}  // namespace compressd
