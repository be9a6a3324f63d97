// Shared fixtures for the server-core unit tests: a temporary directory, a
// Store + BlobStore + metrics bundle, and small valid models and recipes.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "common/util.h"
#include "server/core/event_bus.h"
#include "server/jobs/job_service.h"
#include "server/scheduler/scheduler.h"
#include "server/metrics/server_metrics.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"
#include "tests/integration/postgres.h"

namespace compressd::testing {

// A fresh directory under the test temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/compressd_test_XXXXXX";
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
    EXPECT_FALSE(path_.empty()) << "mkdtemp failed";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline v1::FileEntry Entry(const std::string& path, const std::string& content) {
  v1::FileEntry e;
  e.set_path(path);
  e.set_size(content.size());
  e.set_sha256(Sha256Hex(content));
  return e;
}

inline v1::Model MakeModel(const std::string& id, int64_t create_ms) {
  v1::Model m;
  m.set_id(id);
  m.set_name("tiny-" + id);
  m.set_format(v1::HF_SAFETENSORS);
  *m.add_files() = Entry("config.json", "{}");
  m.set_total_bytes(2);
  m.set_create_time_ms(create_ms);
  return m;
}

// One magnitude stage at 50% sparsity: valid after ApplyRecipeDefaults.
inline v1::Recipe ValidRecipe() {
  v1::Recipe r;
  r.add_stages()->mutable_magnitude()->set_sparsity(0.5);
  return r;
}

inline v1::Job MakeQueuedJob(const std::string& id, const std::string& model_id,
                             int64_t create_ms, const std::string& request_id = "") {
  v1::Job j;
  j.set_id(id);
  j.set_model_id(model_id);
  j.set_state(v1::QUEUED);
  j.set_request_id(request_id);
  j.set_max_attempts(3);
  j.set_create_time_ms(create_ms);
  *j.mutable_recipe() = ValidRecipe();
  return j;
}

inline v1::JobEvent QueuedEvent() {
  v1::JobEvent e;
  e.mutable_state()->set_to(v1::QUEUED);
  e.mutable_state()->set_reason("submitted");
  return e;
}

// Store, blob store and metrics in a temporary directory.
struct CoreEnv {
  CoreEnv() : metrics(registry) {
    auto s = Store::Open(store_target);
    EXPECT_TRUE(s.ok()) << s.status();
    store = *std::move(s);
    auto b = BlobStore::Open(dir.path() + "/blobs");
    EXPECT_TRUE(b.ok()) << b.status();
    blobs = *std::move(b);
  }
  TempDir dir;
  // SQLite in `dir`, or a PostgreSQL database (tests/integration/postgres.h).
  const std::string store_target = TestStoreTarget(dir.path() + "/state.db");
  prometheus::Registry registry;
  ServerMetrics metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<BlobStore> blobs;
};

// CoreEnv plus an event bus, a scheduler on a fake clock and a job service,
// with one model "mdl-1" in the store.
struct JobsEnv : CoreEnv {
  static constexpr int64_t kTtl = 10000;
  static constexpr int64_t kWorkerTimeout = 60000;

  explicit JobsEnv(int64_t tick_ms = 200)
      : scheduler(*store, bus, metrics, Options(tick_ms)),
        jobs(*store, bus, scheduler, metrics) {
    EXPECT_TRUE(store->InsertModel(MakeModel("mdl-1", 1)).ok());
  }

  SchedulerOptions Options(int64_t tick_ms) {
    SchedulerOptions o;
    o.lease_ttl_ms = kTtl;
    o.worker_timeout_ms = kWorkerTimeout;
    o.tick_ms = tick_ms;
    o.clock = [this] { return now.load(); };
    return o;
  }

  std::string Worker(const std::string& name = "w", uint64_t memory_bytes = 0) {
    v1::RegisterWorkerRequest req;
    req.set_name(name);
    req.set_memory_bytes(memory_bytes);
    auto resp = scheduler.RegisterWorker(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->worker_id() : "";
  }

  v1::Job Submit(int max_attempts = 0, const std::string& request_id = "") {
    v1::SubmitJobRequest req;
    req.set_model_id("mdl-1");
    *req.mutable_recipe() = ValidRecipe();
    req.set_max_attempts(max_attempts);
    req.set_request_id(request_id);
    auto job = jobs.Submit(req);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  // LeaseTask with wait_ms 0; an empty Task when nothing is queued.
  absl::StatusOr<v1::Task> Lease(const std::string& worker_id) {
    v1::LeaseTaskRequest req;
    req.set_worker_id(worker_id);
    absl::StatusOr<v1::LeaseTaskResponse> out = absl::InternalError("callback not called");
    EXPECT_EQ(scheduler.LeaseTask(req, [&](auto r) { out = std::move(r); }), 0);
    if (!out.ok()) return out.status();
    return out->task();
  }

  v1::JobState State(const std::string& job_id) {
    auto job = store->GetJob(job_id);
    return job.ok() ? job->state() : v1::JOB_STATE_UNSPECIFIED;
  }

  std::atomic<int64_t> now{1000000};
  EventBus bus;
  Scheduler scheduler;
  JobService jobs;
};

// Collects the result of an asynchronous LeaseTask.
struct LeaseResult {
  void Set(absl::StatusOr<v1::LeaseTaskResponse> r) {
    absl::MutexLock lock(&mu);
    ++calls;
    result = std::move(r);
  }
  int Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }
  // Waits (bounded) for the first call.
  bool Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto called = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return calls > 0; };
    return mu.AwaitWithTimeout(absl::Condition(&called), timeout);
  }
  Scheduler::LeaseCallback Callback() {
    return [this](absl::StatusOr<v1::LeaseTaskResponse> r) { Set(std::move(r)); };
  }

  absl::Mutex mu;
  int calls ABSL_GUARDED_BY(mu) = 0;
  absl::StatusOr<v1::LeaseTaskResponse> result ABSL_GUARDED_BY(mu) =
      absl::InternalError("not called");
};

}  // namespace compressd::testing
