// Ends upload streams that stop sending: each client-streaming upload
// (models, datasets, artifacts, checkpoints) holds a temporary file and a
// file descriptor until it ends, so a client that opens streams and goes
// quiet would otherwise hold them forever. A stream with no message for
// `idle_timeout_ms` is cancelled (ServerContext::TryCancel); its reactor then
// ends as for a client cancel and nothing of it is committed.
//
// Thread-safe: reactors register, touch and unregister from gRPC's threads;
// one background thread checks. Must outlive every registered stream.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class UploadIdleMonitor {
 public:
  explicit UploadIdleMonitor(int64_t idle_timeout_ms);
  ~UploadIdleMonitor();

  // A new stream on `ctx` (active now); the id for Touch / Unregister.
  int64_t Register(grpc::CallbackServerContext* ctx);
  // A message arrived on stream `id`.
  void Touch(int64_t id);
  // Stream `id` is done: never touched again (call before the reactor goes away).
  void Unregister(int64_t id);
  // Whether stream `id` was cancelled for being idle.
  bool TimedOut(int64_t id);
  // Streams cancelled for idleness since construction.
  int64_t timed_out() const;

 private:
  struct Stream {
    grpc::CallbackServerContext* ctx = nullptr;
    int64_t last_ms = 0;
    bool cancelled = false;
  };
  void Run();

  const int64_t idle_timeout_ms_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Stream> streams_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t timed_out_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
