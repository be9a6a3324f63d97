// Runs N local compress-worker processes for compressd (--local-workers):
// fork/exec of `<binary> --server <address> --cache-dir <cache_root>/<i>`
// (and `--device cuda:<gpus[i]>` for the first gpus.size() workers: one
// worker per GPU of `compressd --gpus`),
// restarts any that exits (exponential backoff, reset after a healthy run),
// and on Stop() sends SIGTERM, then SIGKILL after a grace period, reaping
// every child with waitpid. Workers' stdout goes to compressd's stderr so
// compressd's stdout stays machine-readable.
//
// Thread-safe. Owns one monitor thread between Start() and Stop().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

struct WorkerSupervisorOptions {
  std::string binary;          // path of compress-worker
  std::string server_address;  // host:port the workers dial
  std::string cache_root;      // worker i uses <cache_root>/<i>
  int count = 0;
  std::vector<int> gpus;  // worker i < gpus.size() runs on cuda:gpus[i]
  // Passed on to every worker as `--<flag> <value>` when not empty: the API
  // key file, and the TLS files (--ca-cert, --cert, --key).
  std::vector<std::pair<std::string, std::string>> extra_flags;
  int64_t min_backoff_ms = 500;
  int64_t max_backoff_ms = 10000;
  int64_t healthy_run_ms = 10000;  // a run this long resets the backoff
  int64_t grace_ms = 5000;         // SIGTERM -> SIGKILL
  int64_t poll_ms = 100;           // how often exits are checked
};

// "0,1,3" -> {0, 1, 3} ("" -> none). INVALID_ARGUMENT naming --gpus for an
// entry that is not a non-negative integer, or a repeated one.
absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& text);

class WorkerSupervisor {
 public:
  explicit WorkerSupervisor(WorkerSupervisorOptions options);
  ~WorkerSupervisor();  // Stop()

  // Checks the binary is executable, creates the cache directories, spawns
  // the workers and starts monitoring. FAILED_PRECONDITION if started twice.
  absl::Status Start();
  // Stops restarting, terminates every worker (SIGTERM, then SIGKILL after
  // grace_ms) and reaps them. Idempotent.
  void Stop();

  // Pids of the running workers (0 for a slot waiting to restart).
  std::vector<pid_t> pids() const;
  // Processes started so far, restarts included.
  int64_t spawn_count() const;

 private:
  struct Slot {
    pid_t pid = 0;
    int64_t started_ms = 0;
    int64_t restart_at_ms = 0;  // when pid == 0
    int64_t backoff_ms = 0;
  };

  void Run();
  // Reaps exited workers and restarts those whose backoff elapsed.
  void CheckSlotsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SpawnLocked(int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerSupervisorOptions options_;
  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  int64_t spawn_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
