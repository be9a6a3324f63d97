#include "workers/worker/worker.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/job_runner.h"
#include "workers/worker/heartbeater.h"
#include "workers/worker/server_checkpoints.h"
#include "workers/worker/server_fanout.h"
#include "workers/worker/task_files.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

bool Transient(const absl::Status& st) {
  return st.code() == absl::StatusCode::kUnavailable ||
         st.code() == absl::StatusCode::kDeadlineExceeded;
}

// Errors no retry can fix: the model or recipe is bad.
bool RetryableFailure(const absl::Status& st) {
  return st.code() != absl::StatusCode::kInvalidArgument &&
         st.code() != absl::StatusCode::kUnimplemented &&
         st.code() != absl::StatusCode::kFailedPrecondition;
}

std::string DefaultName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  return absl::StrCat(host, ":", ::getpid());
}

uint64_t PhysicalMemory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

}  // namespace

Worker::Worker(WorkerOptions options, WorkerClient& client)
    : options_(std::move(options)),
      client_(client),
      blobs_((fs::path(options_.cache_dir) / "blobs").string(), options_.blobs) {}

void Worker::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
  }
  client_.CancelLeaseTask();
}

bool Worker::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Worker::WaitForStats(const std::function<bool(const WorkerStats&)>& pred,
                          int64_t timeout_ms) const {
  absl::MutexLock lock(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(stats_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), absl::Milliseconds(timeout_ms));
}

void Worker::CountRpcFailure() {
  absl::MutexLock lock(&mu_);
  ++stats_.rpc_failures;
}

bool Worker::SleepUnlessShutdown(int64_t ms) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), absl::Milliseconds(ms));
  return !shutdown_;
}

absl::Status Worker::Register() {
  v1::RegisterWorkerRequest req;
  req.set_name(options_.name.empty() ? DefaultName() : options_.name);
  req.set_device(options_.device);
  req.set_threads(options_.threads);
  req.set_memory_bytes(options_.memory_bytes ? options_.memory_bytes : PhysicalMemory());
  ASSIGN_OR_RETURN(v1::RegisterWorkerResponse resp, client_.RegisterWorker(req));
  worker_id_ = resp.worker_id();
  if (resp.heartbeat_interval_ms() > 0) heartbeat_interval_ms_ = resp.heartbeat_interval_ms();
  std::fprintf(stderr, "compress-worker: registered as %s (%s)\n", worker_id_.c_str(),
               req.name().c_str());
  return absl::OkStatus();
}

absl::Status Worker::Run() {
  int64_t backoff = options_.initial_backoff_ms;
  while (!shutting_down()) {
    if (worker_id_.empty()) {
      absl::Status st = Register();
      if (!st.ok()) {
        std::fprintf(stderr, "compress-worker: register failed: %s\n", st.ToString().c_str());
        CountRpcFailure();
        SleepUnlessShutdown(backoff);
        backoff = std::min(backoff * 2, options_.max_backoff_ms);
        continue;
      }
    }
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id_);
    req.set_wait_ms(options_.lease_wait_ms);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<v1::LeaseTaskResponse> resp = client_.LeaseTask(req);
    // A task leased just as Shutdown() came is still run: it is ours now.
    if (shutting_down() && !(resp.ok() && resp->has_task())) break;
    if (!resp.ok()) {
      if (resp.status().code() == absl::StatusCode::kNotFound) {
        worker_id_.clear();  // the server forgot us (restart): register again
        continue;
      }
      std::fprintf(stderr, "compress-worker: LeaseTask failed: %s\n",
                   resp.status().ToString().c_str());
      CountRpcFailure();
      SleepUnlessShutdown(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff_ms);
      continue;
    }
    backoff = options_.initial_backoff_ms;
    if (resp->has_task()) {
      if (resp->task().has_part()) {
        RunPart(resp->task());
      } else {
        RunTask(resp->task());
      }
    } else if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(100)) {
      SleepUnlessShutdown(100);  // a server answering at once: do not spin
    }
  }
  std::fprintf(stderr, "compress-worker: shut down\n");
  return absl::OkStatus();
}

void Worker::RunTask(const v1::Task& task) {
  part_runner_.reset();  // another job's parts are done with: free its model
  part_runner_key_.clear();
  std::fprintf(stderr, "compress-worker: task %s (job %s, attempt %d)\n", task.task_id().c_str(),
               task.job_id().c_str(), task.attempt());
  CancelToken cancel;
  std::atomic<bool> lease_lost{false};
  auto on_lease_lost = [&] {
    lease_lost = true;
    cancel.Cancel();
  };
  EventReporter events(
      [&](const std::vector<v1::JobEvent>& batch) {
        v1::ReportEventsRequest req;
        req.set_task_id(task.task_id());
        req.set_lease_token(task.lease_token());
        for (const v1::JobEvent& e : batch) *req.add_events() = e;
        return client_.ReportEvents(req);
      },
      on_lease_lost, options_.events);
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker_id_);
  beat.set_task_id(task.task_id());
  beat.set_lease_token(task.lease_token());
  Heartbeater heartbeats([&](const v1::HeartbeatRequest& r) { return client_.Heartbeat(r); },
                         beat, heartbeat_interval_ms_, [&] { return events.LatestProgress(); },
                         cancel);

  absl::StatusOr<std::string> task_dir = TaskDir(task);
  const absl::StatusOr<std::string> result =
      task_dir.ok() ? ExecuteTask(task, *task_dir, events, cancel, lease_lost)
                    : absl::StatusOr<std::string>(task_dir.status());
  if (!result.ok() && !cancel.cancelled()) EmitLog(events, "error", result.status().ToString());
  events.Stop();  // the events reach the server before the result does
  if (cancel.cancelled() || lease_lost || heartbeats.lease_lost()) {
    std::fprintf(stderr, "compress-worker: task %s stopped: %s\n", task.task_id().c_str(),
                 heartbeats.job_cancelled() ? "job cancelled" : "lease lost");
    absl::MutexLock lock(&mu_);
    ++stats_.cancelled;
  } else {
    FinishTask(task, result);
  }
  heartbeats.Stop();
  if (task_dir.ok()) RemoveTree(*task_dir);
}

namespace {

using DatasetFiles = std::map<std::pair<std::string, std::string>, std::string>;

// Where leased EvoPress jobs and their parts keep the levels database: the
// model's shared checkpoints (server/jobs/checkpoint_service.h), so every
// later job on the same model and calibration set reuses it. The database's
// keys carry the digests of the model, the calibration windows and the
// algorithm's parameters (evopress/levels_db.h).
constexpr char kSharedLevelsPrefix[] = "shared/levels/";

// The RunOptions of a leased task or part: its datasets are the fetched
// files (`datasets` must outlive the run), never worker-local paths.
RunOptions LeasedRunOptions(int threads, const DatasetFiles& datasets) {
  RunOptions run;
  run.threads = threads;
  run.allow_local_paths = false;
  run.dataset_file = [&datasets](const std::string& id,
                                 const std::string& file) -> absl::StatusOr<std::string> {
    auto it = datasets.find({id, file});
    if (it == datasets.end()) {
      return absl::NotFoundError(absl::StrCat("dataset ", id, " file ", file, " was not fetched"));
    }
    return it->second;
  };
  return run;
}

// A part's events: log lines go to stderr, the rest is dropped (the job's
// own task reports the job's progress).
class PartLogSink : public EventSink {
 public:
  explicit PartLogSink(std::string part) : part_(std::move(part)) {}
  void Emit(const v1::JobEvent& e) override {
    if (e.has_log()) {
      std::fprintf(stderr, "compress-worker: part %s: %s\n", part_.c_str(),
                   e.log().message().c_str());
    }
  }

 private:
  const std::string part_;
};

}  // namespace

void Worker::RunPart(const v1::Task& task) {
  std::fprintf(stderr, "compress-worker: part %s of job %s (%s)\n", task.part().name().c_str(),
               task.job_id().c_str(), task.task_id().c_str());
  CancelToken cancel;
  std::atomic<bool> lease_lost{false};
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker_id_);
  beat.set_task_id(task.task_id());
  beat.set_lease_token(task.lease_token());
  Heartbeater heartbeats([&](const v1::HeartbeatRequest& r) { return client_.Heartbeat(r); },
                         beat, heartbeat_interval_ms_, [] { return v1::Progress(); }, cancel);
  PartLogSink events(task.part().name());
  absl::StatusOr<std::string> task_dir = TaskDir(task);
  absl::StatusOr<std::string> result =
      task_dir.ok() ? ExecutePart(task, *task_dir, events, cancel, lease_lost)
                    : absl::StatusOr<std::string>(task_dir.status());
  if (cancel.cancelled() || lease_lost || heartbeats.lease_lost()) {
    std::fprintf(stderr, "compress-worker: part %s stopped: %s\n", task.part().name().c_str(),
                 heartbeats.job_cancelled() ? "job no longer running" : "lease lost");
    absl::MutexLock lock(&mu_);
    ++stats_.cancelled;
  } else if (result.ok()) {
    v1::CompleteTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    absl::Status st = WithRetry([&] { return client_.CompleteTask(req); });
    std::fprintf(stderr, "compress-worker: part %s completed%s\n", task.part().name().c_str(),
                 st.ok() ? "" : absl::StrCat(" (reporting it failed: ", st.ToString(), ")").c_str());
    absl::MutexLock lock(&mu_);
    ++stats_.parts_completed;
  } else {
    std::fprintf(stderr, "compress-worker: part %s failed: %s\n", task.part().name().c_str(),
                 result.status().ToString().c_str());
    v1::FailTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_error(result.status().ToString());
    req.set_retryable(RetryableFailure(result.status()));
    (void)WithRetry([&] { return client_.FailTask(req); });
    part_runner_.reset();  // rebuilt for the next part
    part_runner_key_.clear();
    absl::MutexLock lock(&mu_);
    ++stats_.failed;
  }
  heartbeats.Stop();
  if (task_dir.ok()) RemoveTree(*task_dir);
}

absl::StatusOr<std::string> Worker::ExecutePart(const v1::Task& task, const std::string& task_dir,
                                                EventSink& events, CancelToken& cancel,
                                                std::atomic<bool>& lease_lost) {
  auto on_lost = [&] {
    lease_lost = true;
    cancel.Cancel();
  };
  ServerCheckpointStore store(
      client_, task.task_id(), task.lease_token(),
      [this](const std::function<absl::Status()>& call) { return WithRetry(call); }, on_lost);
  const std::string key = absl::StrCat(task.job_id(), "#", task.attempt());
  if (part_runner_ == nullptr || part_runner_key_ != key) {
    part_runner_.reset();
    RemoveTree(task_dir);
    const std::string model_dir = (fs::path(task_dir) / "model").string();
    RETURN_IF_ERROR(FetchModel(task, model_dir, events, cancel));
    ASSIGN_OR_RETURN(DatasetFiles datasets,
                     FetchDatasets(task, (fs::path(task_dir) / "datasets").string(), events,
                                   cancel));
    const RunOptions run = LeasedRunOptions(options_.threads, datasets);
    ASSIGN_OR_RETURN(part_runner_, CreatePartRunner(model_dir, task.recipe(), run, events, cancel));
    part_runner_key_ = key;
  }
  WorkPart part{task.part().name(), task.part().payload()};
  PrefixedCheckpointStore shared_levels(store, kSharedLevelsPrefix);
  absl::StatusOr<std::string> result;
  try {
    result = part_runner_->Run(part, &shared_levels, events, cancel);
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("part ", part.name, ": ", e.what()));
  }
  RETURN_IF_ERROR(result.status());
  RETURN_IF_ERROR(store.Put(task.part().result(), *result));
  return result;
}

absl::StatusOr<std::string> Worker::TaskDir(const v1::Task& task) const {
  RETURN_IF_ERROR(ValidateRelativePath(task.task_id(), "task.task_id"));
  if (task.task_id().find('/') != std::string::npos) {
    return absl::InvalidArgumentError("task.task_id: must not contain '/'");
  }
  return (fs::path(options_.cache_dir) / "tasks" / task.task_id()).string();
}

void Worker::FinishTask(const v1::Task& task, const absl::StatusOr<std::string>& result) {
  absl::Status st;
  if (result.ok()) {
    v1::CompleteTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_summary_json(*result);
    st = WithRetry([&] { return client_.CompleteTask(req); });
  } else {
    v1::FailTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_error(result.status().ToString());
    req.set_retryable(RetryableFailure(result.status()));
    st = WithRetry([&] { return client_.FailTask(req); });
  }
  std::fprintf(stderr, "compress-worker: task %s %s%s%s\n", task.task_id().c_str(),
               result.ok() ? "completed" : "failed: ",
               result.ok() ? "" : result.status().ToString().c_str(),
               st.ok() ? "" : absl::StrCat(" (reporting it failed: ", st.ToString(), ")").c_str());
  absl::MutexLock lock(&mu_);
  ++(result.ok() ? stats_.completed : stats_.failed);
}

absl::Status Worker::WithRetry(const std::function<absl::Status()>& call) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.finish_retry_ms);
  int64_t backoff = options_.initial_backoff_ms;
  while (true) {
    absl::Status st = call();
    if (!Transient(st) || std::chrono::steady_clock::now() >= deadline) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

namespace {

// Forwards events; after each per-layer progress event of a compression stage
// it pauses for `pause_ms` (in short steps, so cancellation stays prompt).
class SlowSink : public EventSink {
 public:
  SlowSink(EventSink& inner, int64_t pause_ms, const CancelToken& cancel)
      : inner_(inner), pause_ms_(pause_ms), cancel_(cancel) {}
  void Emit(const v1::JobEvent& event) override {
    inner_.Emit(event);
    if (!event.has_progress() || event.progress().stage() != "prune") return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(pause_ms_);
    while (!cancel_.cancelled() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  EventSink& inner_;
  const int64_t pause_ms_;
  const CancelToken& cancel_;
};

}  // namespace

absl::StatusOr<std::string> Worker::ExecuteTask(const v1::Task& task, const std::string& task_dir,
                                                EventReporter& events, CancelToken& cancel,
                                                std::atomic<bool>& lease_lost) {
  RemoveTree(task_dir);  // leftovers of a crashed run
  const std::string model_dir = (fs::path(task_dir) / "model").string();
  const std::string out_dir = (fs::path(task_dir) / "out").string();
  RETURN_IF_ERROR(FetchModel(task, model_dir, events, cancel));
  ASSIGN_OR_RETURN(DatasetFiles datasets,
                   FetchDatasets(task, (fs::path(task_dir) / "datasets").string(), events, cancel));
  RunOptions run = LeasedRunOptions(options_.threads, datasets);
  // Checkpoints outlive this attempt on the server; losing the lease while
  // writing one stops the task like a lost lease anywhere else.
  ServerCheckpointStore checkpoints(
      client_, task.task_id(), task.lease_token(),
      [this](const std::function<absl::Status()>& call) { return WithRetry(call); },
      [&] {
        lease_lost = true;
        cancel.Cancel();
      });
  run.checkpoints = &checkpoints;
  PrefixedCheckpointStore shared_levels(checkpoints, kSharedLevelsPrefix);
  run.levels_db = &shared_levels;
  ServerFanout fanout(
      client_, task.task_id(), task.lease_token(), checkpoints,
      [this](const std::function<absl::Status()>& call) { return WithRetry(call); },
      [&] {
        lease_lost = true;
        cancel.Cancel();
      });
  run.fanout = &fanout;
  SlowSink slow(events, options_.slow_ms_per_layer, cancel);
  EventSink& sink = options_.slow_ms_per_layer > 0 ? static_cast<EventSink&>(slow) : events;
  ASSIGN_OR_RETURN(std::string summary,
                   RunRecipe(model_dir, task.recipe(), out_dir, sink, cancel, run));
  absl::Status uploaded = UploadOutputs(task, out_dir, events, cancel);
  if (uploaded.code() == absl::StatusCode::kFailedPrecondition) {
    lease_lost = true;
    cancel.Cancel();
  }
  RETURN_IF_ERROR(uploaded);
  return summary;
}

absl::Status Worker::FetchModel(const v1::Task& task, const std::string& model_dir,
                                EventSink& events, const CancelToken& cancel) {
  const auto& files = task.model().files();
  std::vector<std::pair<std::string, std::string>> links;
  auto fetch = [this](const std::string& sha, uint64_t offset, const BlobCache::ChunkFn& fn) {
    return client_.FetchBlob(sha, offset, fn);
  };
  for (int i = 0; i < files.size(); ++i) {
    EmitProgress(events, "fetch", i, files.size(), files[i].path());
    ASSIGN_OR_RETURN(std::string blob, blobs_.Get(files[i], fetch, cancel));
    links.emplace_back(files[i].path(), blob);
  }
  EmitProgress(events, "fetch", files.size(), files.size(), task.model().id());
  return LinkFiles(links, model_dir);
}

absl::StatusOr<std::map<std::pair<std::string, std::string>, std::string>> Worker::FetchDatasets(
    const v1::Task& task, const std::string& datasets_dir, EventSink& events,
    const CancelToken& cancel) {
  std::map<std::pair<std::string, std::string>, std::string> local;
  auto fetch = [this](const std::string& sha, uint64_t offset, const BlobCache::ChunkFn& fn) {
    return client_.FetchBlob(sha, offset, fn);
  };
  // (dataset id, file or folder, the recipe field naming it).
  std::vector<std::tuple<std::string, std::string, std::string>> wanted;
  const auto& sets = task.recipe().evaluation().perplexity();
  for (int i = 0; i < sets.size(); ++i) {
    wanted.emplace_back(sets[i].dataset_id(), sets[i].file(),
                        absl::StrCat("recipe.evaluation.perplexity[", i, "]"));
  }
  const v1::Calibration& calib = task.recipe().calibration();
  wanted.emplace_back(calib.dataset_id(), calib.file(), "recipe.calibration");
  for (const auto& [id, name, field] : wanted) {
    if (id.empty() || local.count({id, name})) continue;
    auto dataset = std::find_if(task.datasets().begin(), task.datasets().end(),
                                [&](const v1::Dataset& d) { return d.id() == id; });
    if (dataset == task.datasets().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".dataset_id: \"", id, "\" is not a dataset of this job"));
    }
    // The file itself, or every file under the folder `name`.
    const std::string prefix = name + "/";
    std::vector<const v1::FileEntry*> files;
    for (const v1::FileEntry& f : dataset->files()) {
      if (f.path() == name || f.path().compare(0, prefix.size(), prefix) == 0) files.push_back(&f);
    }
    if (files.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".file: dataset ", dataset->id(),
                                                     " has no file or folder \"", name, "\""));
    }
    RETURN_IF_ERROR(ValidateRelativePath(dataset->id(), field + ".dataset_id"));
    const std::string dir = (fs::path(datasets_dir) / dataset->id()).string();
    std::vector<std::pair<std::string, std::string>> links;
    for (size_t k = 0; k < files.size(); ++k) {
      const std::string label = absl::StrCat(dataset->id(), "/", files[k]->path());
      EmitProgress(events, "fetch", static_cast<int>(k), static_cast<int>(files.size()), label);
      ASSIGN_OR_RETURN(std::string blob, blobs_.Get(*files[k], fetch, cancel));
      links.emplace_back(files[k]->path(), blob);
    }
    RETURN_IF_ERROR(LinkFiles(links, dir));
    local[{id, name}] = (fs::path(dir) / name).string();
    EmitProgress(events, "fetch", static_cast<int>(files.size()), static_cast<int>(files.size()),
                 absl::StrCat(dataset->id(), "/", name));
  }
  return local;
}

absl::Status Worker::UploadOutputs(const v1::Task& task, const std::string& out_dir,
                                   EventSink& events, const CancelToken& cancel) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ListFilesRecursive(out_dir));
  for (size_t i = 0; i < files.size(); ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled during upload");
    const std::string path = (fs::path(out_dir) / files[i]).string();
    EmitProgress(events, "upload", static_cast<int>(i), static_cast<int>(files.size()), files[i]);
    v1::UploadArtifactHeader header;
    header.set_task_id(task.task_id());
    header.set_lease_token(task.lease_token());
    header.set_path(files[i]);
    std::error_code ec;
    header.set_size(fs::file_size(path, ec));
    if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
    ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    header.set_sha256(sha);
    RETURN_IF_ERROR(WithRetry([&] { return client_.UploadArtifact(header, path).status(); }));
  }
  EmitProgress(events, "upload", static_cast<int>(files.size()), static_cast<int>(files.size()),
               "");
  EmitLog(events, "info", absl::StrCat("uploaded ", files.size(), " output files"));
  return absl::OkStatus();
}

}  // namespace compressd
