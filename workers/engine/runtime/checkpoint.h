// Where a long job keeps its progress so that a retried task resumes instead
// of starting over: named byte blobs ("calib/block-0007", ...), written once
// per unit of work. The worker process stores them in the server's blob store
// (worker/server_checkpoints.h, keyed by job, so another worker's retry sees
// them); `compress-worker run --checkpoint-dir` keeps them in a directory.
// Implementations are thread-safe.
#pragma once

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compressd::engine {

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  // Stores `bytes` under `name` (replacing an earlier value), durably: once OK
  // is returned a later Get sees it, across process restarts. Names are
  // relative paths of [A-Za-z0-9._/-] (ValidateRelativePath).
  virtual absl::Status Put(const std::string& name, const std::string& bytes) = 0;
  // NOT_FOUND when nothing was stored under `name`.
  virtual absl::StatusOr<std::string> Get(const std::string& name) = 0;
};

// A directory of files, one per name (written to a temporary file, fsync'ed
// and renamed into place).
class DirCheckpointStore : public CheckpointStore {
 public:
  explicit DirCheckpointStore(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Put(const std::string& name, const std::string& bytes) override;
  absl::StatusOr<std::string> Get(const std::string& name) override;

 private:
  std::string dir_;
};

// The names of `base` under `prefix` (e.g. "shared/levels/": the worker's
// view of a model's shared checkpoints, server/jobs/checkpoint_service.h).
class PrefixedCheckpointStore : public CheckpointStore {
 public:
  PrefixedCheckpointStore(CheckpointStore& base, std::string prefix)
      : base_(base), prefix_(std::move(prefix)) {}
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    return base_.Put(prefix_ + name, bytes);
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    return base_.Get(prefix_ + name);
  }

 private:
  CheckpointStore& base_;
  const std::string prefix_;
};

}  // namespace compressd::engine
