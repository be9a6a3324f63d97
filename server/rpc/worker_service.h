// The internal gRPC API for compress-worker processes (v1::WorkerService),
// callback flavour. Each method admits only worker keys (and, with
// --worker-ca, only callers with a verified client certificate), checks that
// a worker id or lease is the caller's own (a worker id carries the key id it
// was registered with), then forwards to the Scheduler (lease rules live
// there) or the CheckpointService, or streams from / into the BlobStore.
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include "compressd/v1/worker.grpc.pb.h"
#include "server/auth/authenticator.h"
#include "server/jobs/checkpoint_service.h"
#include "server/rpc/upload_idle_monitor.h"
#include "server/scheduler/scheduler.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

class WorkerServiceImpl final : public v1::WorkerService::CallbackService {
 public:
  WorkerServiceImpl(Scheduler& scheduler, Store& store, BlobStore& blobs, UploadIdleMonitor& idle,
                    Authenticator& auth, bool require_client_cert);

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* ctx,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  // Long-poll; never blocks a gRPC thread (the Scheduler finishes it later).
  grpc::ServerUnaryReactor* LeaseTask(grpc::CallbackServerContext* ctx,
                                      const v1::LeaseTaskRequest* request,
                                      v1::LeaseTaskResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportEvents(grpc::CallbackServerContext* ctx,
                                         const v1::ReportEventsRequest* request,
                                         v1::ReportEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::BlobChunk>* FetchBlob(grpc::CallbackServerContext* ctx,
                                                     const v1::FetchBlobRequest* request) override;
  grpc::ServerReadReactor<v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* ctx, v1::Artifact* response) override;
  grpc::ServerUnaryReactor* CompleteTask(grpc::CallbackServerContext* ctx,
                                         const v1::CompleteTaskRequest* request,
                                         v1::CompleteTaskResponse* response) override;
  grpc::ServerUnaryReactor* FailTask(grpc::CallbackServerContext* ctx,
                                     const v1::FailTaskRequest* request,
                                     v1::FailTaskResponse* response) override;
  grpc::ServerReadReactor<v1::PutCheckpointRequest>* PutCheckpoint(
      grpc::CallbackServerContext* ctx, v1::PutCheckpointResponse* response) override;
  grpc::ServerWriteReactor<v1::BlobChunk>* GetCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::GetCheckpointRequest* request) override;
  grpc::ServerUnaryReactor* SubmitParts(grpc::CallbackServerContext* ctx,
                                        const v1::SubmitPartsRequest* request,
                                        v1::SubmitPartsResponse* response) override;
  grpc::ServerUnaryReactor* ClaimPart(grpc::CallbackServerContext* ctx,
                                      const v1::ClaimPartRequest* request,
                                      v1::ClaimPartResponse* response) override;
  grpc::ServerUnaryReactor* GetParts(grpc::CallbackServerContext* ctx,
                                     const v1::GetPartsRequest* request,
                                     v1::GetPartsResponse* response) override;

 private:
  // The caller, if it may call `method` (role, client certificate) and
  // `worker_id` / `task_id` (either may be empty) are its own.
  absl::StatusOr<Principal> Admit(grpc::CallbackServerContext* ctx, absl::string_view method,
                                  const std::string& worker_id, const std::string& task_id);
  template <typename Fn>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, absl::string_view method,
                                  const std::string& worker_id, const std::string& task_id,
                                  Fn&& fn);

  Scheduler& scheduler_;
  Store& store_;
  Authenticator& auth_;
  const bool require_client_cert_;
  BlobStore& blobs_;
  UploadIdleMonitor& idle_;
  CheckpointService checkpoints_;
};

}  // namespace compressd
