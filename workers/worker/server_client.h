// The worker's side of compressd.v1.WorkerService: one method per RPC, each
// returning absl::Status(Or) (converted via common/grpc_status.h) with a
// deadline. Thread-safe: calls may run concurrently from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.grpc.pb.h"

namespace compressd {

inline constexpr size_t kUploadChunkBytes = 1 << 20;  // 1 MiB

class WorkerClient {
 public:
  // `rpc_timeout_ms` bounds every call except the LeaseTask long poll (which
  // gets wait_ms more) and the streams (which get `stream_timeout_ms`).
  WorkerClient(std::shared_ptr<grpc::Channel> channel, int64_t rpc_timeout_ms = 30000,
               int64_t stream_timeout_ms = 3600000);

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& req);
  // Long poll; CancelLeaseTask() from another thread makes it return CANCELLED.
  absl::StatusOr<v1::LeaseTaskResponse> LeaseTask(const v1::LeaseTaskRequest& req);
  void CancelLeaseTask();
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req);
  absl::Status ReportEvents(const v1::ReportEventsRequest& req);
  absl::Status CompleteTask(const v1::CompleteTaskRequest& req);
  absl::Status FailTask(const v1::FailTaskRequest& req);
  // Fan-out (worker.proto Part), with the job's task lease.
  absl::StatusOr<v1::SubmitPartsResponse> SubmitParts(const v1::SubmitPartsRequest& req);
  absl::StatusOr<v1::ClaimPartResponse> ClaimPart(const v1::ClaimPartRequest& req);
  absl::StatusOr<v1::GetPartsResponse> GetParts(const v1::GetPartsRequest& req);

  // Streams the blob from `offset`, handing each chunk to `on_chunk` (an error
  // from it stops the stream and is returned).
  using ChunkFn = std::function<absl::Status(absl::string_view)>;
  absl::Status FetchBlob(const std::string& sha256, uint64_t offset, const ChunkFn& on_chunk);

  // Uploads the file at `local_path`; `header` carries task, lease, relative
  // path, size and sha256. Chunks are kUploadChunkBytes.
  absl::StatusOr<v1::Artifact> UploadArtifact(const v1::UploadArtifactHeader& header,
                                              const std::string& local_path);

  // Stores `bytes` as checkpoint header.name() of the task's job; `header`
  // carries task, lease, name, size and sha256. Chunks are kUploadChunkBytes.
  absl::StatusOr<v1::PutCheckpointResponse> PutCheckpoint(const v1::PutCheckpointHeader& header,
                                                          absl::string_view bytes);
  // Streams a checkpoint of the task's job from req.offset() to `on_chunk`
  // (as FetchBlob); NOT_FOUND when the job has none of that name.
  absl::Status GetCheckpoint(const v1::GetCheckpointRequest& req, const ChunkFn& on_chunk);

 private:
  void SetDeadline(grpc::ClientContext* ctx, int64_t ms) const;

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const int64_t rpc_timeout_ms_;
  const int64_t stream_timeout_ms_;
  absl::Mutex mu_;
  grpc::ClientContext* lease_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool lease_cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compressd
