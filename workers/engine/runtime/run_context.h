// What a running job talks to: an EventSink for progress, metrics and logs,
// and a CancelToken checked between units of work.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "compressd/v1/compressd.pb.h"
#include "workers/engine/runtime/checkpoint.h"

namespace compressd::engine {

class SolverBackend;  // algorithms/solver_backend.h

class Fanout;

// Receives job events (time_ms set, sequence left 0: the server assigns it).
// Implementations must be thread-safe; Emit must not block for long.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Emit(const v1::JobEvent& event) = 0;
};

// Set once, from any thread; read by the job between tensors. Thread-safe.
class CancelToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

// How a job runs, set by its caller (the worker process or `compress-worker run`).
struct RunOptions {
  // Compute threads for model evaluation; <= 0: the hardware concurrency.
  // A recipe's evaluation.threads, when set, wins.
  int threads = 0;
  // The device the forward pass computes on (nn/backend_factory.h).
  std::string device = "cpu";
  // Where the layer solves (Hessians, factors, sweeps, errors) run: the
  // worker's --device (workers/cuda/devices.h; not owned). Null: the CPU.
  SolverBackend* solver = nullptr;
  // Whether evaluation sets may name local files (evaluation.perplexity[].path):
  // true for `compress-worker run`, false for leased tasks.
  bool allow_local_paths = true;
  // The local path of file `file` of dataset `dataset_id` (fetched by the
  // worker); unset: dataset sources are INVALID_ARGUMENT.
  std::function<absl::StatusOr<std::string>(const std::string& dataset_id, const std::string& file)>
      dataset_file;
  // Where a long job keeps its progress so a retry resumes (not owned; must
  // outlive the run): the server's blob store for leased tasks, a directory
  // for `compress-worker run --checkpoint-dir`; null: no checkpoints.
  CheckpointStore* checkpoints = nullptr;
  // Where an evopress stage keeps its levels database (evopress/levels_db.h:
  // about 1.7 bytes per targeted weight per level; not owned, must outlive
  // the run), so a later search on the same model and calibration set reuses
  // it: the --checkpoint-dir directory for `compress-worker run`, the
  // model's shared checkpoints on the server for leased tasks. Null: the
  // checkpoints, else a temporary directory removed after the run.
  CheckpointStore* levels_db = nullptr;
  // Where the job's independent pieces of work go (fanout.h): other workers
  // through the server for leased tasks; null: all computed here.
  Fanout* fanout = nullptr;
  // Load the whole model even where the plan would stream it block by block
  // (job_plan.h): `compress-worker run --whole-model`, to compare the two.
  bool whole_model = false;
  // Memory this job may use (compress-worker --memory-budget); a job whose
  // estimated peak is larger is refused up front with RESOURCE_EXHAUSTED
  // (pipeline/memory_estimate.h). 0: no limit.
  uint64_t memory_budget_bytes = 0;
};

// A worker's default memory budget: 90% of this machine's physical memory,
// or of its cgroup's memory limit when that is lower (a container).
uint64_t DefaultMemoryBudgetBytes();
// The memory limit in the first of these cgroup files that holds one (v2
// memory.max, v1 memory.limit_in_bytes); 0 when none does ("max", absent).
uint64_t CgroupMemoryLimit(const std::string& v2_file, const std::string& v1_file);
// "24G", "512M", "1.5G", "4096" (bytes): INVALID_ARGUMENT otherwise.
absl::StatusOr<uint64_t> ParseByteSize(const std::string& text);
// RESOURCE_EXHAUSTED for a job over the memory budget, carrying its estimated
// peak (`needed` bytes) as a payload that MemoryNeeded reads back: a leased
// task's FailTask then tells the scheduler (FailTaskRequest.memory_needed_bytes).
absl::Status MemoryRefusal(uint64_t needed, const std::string& message);
// The estimate a MemoryRefusal carries; 0 for any other status.
uint64_t MemoryNeeded(const absl::Status& status);

// Helpers that build and emit one event.
void EmitProgress(EventSink& sink, const std::string& stage, int current, int total,
                  const std::string& message);
void EmitMetric(EventSink& sink, const std::string& name, double value, const std::string& layer);
// A metric with any labels, e.g. perplexity {dataset: "ppl-persuasion", model: "dense"}.
void EmitLabeledMetric(EventSink& sink, const std::string& name, double value,
                       const std::map<std::string, std::string>& labels);
void EmitLog(EventSink& sink, const std::string& level, const std::string& message);

}  // namespace compressd::engine
