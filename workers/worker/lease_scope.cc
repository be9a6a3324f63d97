#include "workers/worker/lease_scope.h"

#include <filesystem>
#include <utility>

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
  // One directory per attempt: a worker still running an older attempt
  // (after a server restart) never shares its scratch files with this one.
  return (fs::path(cache_dir) / "tasks" / absl::StrCat(task.task_id(), ".a", task.attempt()))
      .string();
}

}  // namespace

LeaseScope::LeaseScope(WorkerClient& client, const TaskReporter& reporter, const v1::Task& task,
                       const Registration& registration, const std::string& cache_dir)
    : client_(client),
      task_(task),
      registration_(registration),
      dir_(TaskDir(cache_dir, task)),
      checkpoints_(client, task.task_id(), task.lease_token(), reporter.retry(), on_lease_lost()),
      levels_db_(checkpoints_, kSharedLevelsPrefix) {}

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

void LeaseScope::Close() {
  if (heartbeats_) heartbeats_->Stop();
  if (dir_.ok()) RemoveTree(*dir_);
}

}  // namespace compressd
