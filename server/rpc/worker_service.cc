#include "server/rpc/worker_service.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/rpc/blob_stream_reactor.h"
#include "server/rpc/blob_upload_reactor.h"
#include "server/rpc/rpc_auth.h"
#include "server/rpc/unary.h"

namespace compressd {
namespace {

// Time kept back from the client's deadline so an empty answer still arrives.
constexpr int64_t kDeadlineMarginMs = 200;

// Caps the long-poll at the client's deadline.
int64_t EffectiveWaitMs(const grpc::CallbackServerContext& ctx, int64_t wait_ms) {
  const auto deadline = ctx.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return wait_ms;
  }
  const int64_t left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::system_clock::now())
                              .count() -
                          kDeadlineMarginMs;
  return std::max<int64_t>(0, std::min(wait_ms, left_ms));
}

// Unary reactor finished from the Scheduler's callback, possibly on another
// thread; a client that goes away cancels the wait. Thread-safe.
class LeaseReactor : public grpc::ServerUnaryReactor {
 public:
  LeaseReactor(Scheduler& scheduler, v1::LeaseTaskResponse* response)
      : scheduler_(scheduler), response_(response) {}

  void Begin(const v1::LeaseTaskRequest& request) {
    // `done` may run before LeaseTask returns, so the handle is stored after.
    const int64_t handle = scheduler_.LeaseTask(
        request, [this](absl::StatusOr<v1::LeaseTaskResponse> result) { OnLeased(result); });
    bool cancel_now = false;
    {
      absl::MutexLock lock(&mu_);
      handle_ = handle;
      cancel_now = cancelled_;
    }
    if (cancel_now) {
      scheduler_.CancelWait(handle);
    }
  }

  void OnCancel() override {
    std::optional<int64_t> handle;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      handle = handle_;
    }
    if (handle.has_value()) {
      scheduler_.CancelWait(*handle);
    }
  }

  void OnDone() override { delete this; }

 private:
  // Called exactly once by the Scheduler; `this` is not touched after Finish.
  void OnLeased(absl::StatusOr<v1::LeaseTaskResponse>& result) {
    const grpc::Status status = ToGrpcStatus(result.status());
    if (result.ok()) {
      *response_ = *std::move(result);
    }
    Finish(status);
  }

  Scheduler& scheduler_;
  v1::LeaseTaskResponse* const response_;
  absl::Mutex mu_;
  std::optional<int64_t> handle_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// UploadArtifact: an output file of the task's job (Scheduler::AddArtifact).
struct ArtifactUpload {
  using Request = v1::UploadArtifactRequest;
  using Header = v1::UploadArtifactHeader;
  using Response = v1::Artifact;
  absl::Status Accept(const Header& header) {
    RETURN_IF_ERROR(owner(header.task_id()));
    RETURN_IF_ERROR(scheduler.CheckLease(header.task_id(), header.lease_token()));
    return ValidateRelativePath(header.path(), "header.path");
  }
  absl::StatusOr<Response> Record(const Header& header) { return scheduler.AddArtifact(header); }
  std::string What(const Header& header) const { return absl::StrCat("artifact ", header.path()); }
  Scheduler& scheduler;
  std::function<absl::Status(const std::string& task_id)> owner;
};

// PutCheckpoint: a checkpoint of the task's job (CheckpointService).
struct CheckpointUpload {
  using Request = v1::PutCheckpointRequest;
  using Header = v1::PutCheckpointHeader;
  using Response = v1::PutCheckpointResponse;
  absl::Status Accept(const Header& header) {
    RETURN_IF_ERROR(owner(header.task_id()));
    return checkpoints.CheckPut(header);
  }
  absl::StatusOr<Response> Record(const Header& header) { return checkpoints.RecordPut(header); }
  std::string What(const Header& header) const {
    return absl::StrCat("checkpoint ", header.name());
  }
  CheckpointService& checkpoints;
  std::function<absl::Status(const std::string& task_id)> owner;
};

// PERMISSION_DENIED unless worker id `worker_id` was issued to `who`'s key.
absl::Status CheckWorkerOwner(const Principal& who, const std::string& worker_id) {
  if (worker_id.empty() || WorkerKeyId(worker_id) == who.key_id) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "worker_id: worker ", worker_id, " was registered with another key than ", who.key_id));
}

// PERMISSION_DENIED unless the lease of `task_id` (a job's task or a part)
// is held by a worker of `who`'s key. An unknown or unleased task passes:
// the Scheduler answers those as before (NOT_FOUND, FAILED_PRECONDITION).
absl::Status CheckTaskOwner(Store& store, const Principal& who, const std::string& task_id) {
  if (task_id.empty()) return absl::OkStatus();
  absl::StatusOr<TaskRecord> task = store.GetTask(task_id);
  if (!task.ok() || task->worker_id.empty()) return absl::OkStatus();
  if (WorkerKeyId(task->worker_id) == who.key_id) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("task_id: task ", task_id, " is leased to another worker"));
}

}  // namespace

WorkerServiceImpl::WorkerServiceImpl(Scheduler& scheduler, Store& store, BlobStore& blobs,
                                     UploadIdleMonitor& idle, Authenticator& auth,
                                     bool require_client_cert)
    : scheduler_(scheduler),
      store_(store),
      auth_(auth),
      require_client_cert_(require_client_cert),
      blobs_(blobs),
      idle_(idle),
      checkpoints_(store, blobs) {}

absl::StatusOr<Principal> WorkerServiceImpl::Admit(grpc::CallbackServerContext* ctx,
                                                   absl::string_view method,
                                                   const std::string& worker_id,
                                                   const std::string& task_id) {
  if (require_client_cert_ && !ctx->auth_context()->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError(
        "a worker must present a client certificate signed by the server's --worker-ca");
  }
  ASSIGN_OR_RETURN(Principal who, AuthorizeCall(auth_, *ctx, method));
  RETURN_IF_ERROR(CheckWorkerOwner(who, worker_id));
  RETURN_IF_ERROR(CheckTaskOwner(store_, who, task_id));
  return who;
}

template <typename Fn>
grpc::ServerUnaryReactor* WorkerServiceImpl::Unary(grpc::CallbackServerContext* ctx,
                                                   absl::string_view method,
                                                   const std::string& worker_id,
                                                   const std::string& task_id, Fn&& fn) {
  absl::StatusOr<Principal> who = Admit(ctx, method, worker_id, task_id);
  if (!who.ok()) return FinishUnary(ctx, who.status());
  return FinishUnary(ctx, fn(*who));
}

grpc::ServerUnaryReactor* WorkerServiceImpl::RegisterWorker(
    grpc::CallbackServerContext* ctx, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  return Unary(ctx, "WorkerService.RegisterWorker", "", "", [&](const Principal& who) {
    return AssignTo(scheduler_.RegisterWorker(*request, who.key_id), response);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::LeaseTask(grpc::CallbackServerContext* ctx,
                                                       const v1::LeaseTaskRequest* request,
                                                       v1::LeaseTaskResponse* response) {
  absl::StatusOr<Principal> who = Admit(ctx, "WorkerService.LeaseTask", request->worker_id(), "");
  if (!who.ok()) return FinishUnary(ctx, who.status());
  v1::LeaseTaskRequest capped = *request;
  capped.set_wait_ms(EffectiveWaitMs(*ctx, request->wait_ms()));
  auto* reactor = new LeaseReactor(scheduler_, response);
  reactor->Begin(capped);
  return reactor;
}

grpc::ServerUnaryReactor* WorkerServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  return Unary(
      ctx, "WorkerService.Heartbeat", request->worker_id(), request->task_id(),
      [&](const Principal&) { return AssignTo(scheduler_.Heartbeat(*request), response); });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ReportEvents(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportEventsRequest* request,
                                                          v1::ReportEventsResponse* /*response*/) {
  return Unary(ctx, "WorkerService.ReportEvents", "", request->task_id(),
               [&](const Principal&) { return scheduler_.ReportEvents(*request); });
}

grpc::ServerWriteReactor<v1::BlobChunk>* WorkerServiceImpl::FetchBlob(
    grpc::CallbackServerContext* ctx, const v1::FetchBlobRequest* request) {
  absl::StatusOr<Principal> who = Admit(ctx, "WorkerService.FetchBlob", "", "");
  if (!who.ok()) return new FailedWriteReactor<v1::BlobChunk>(who.status());
  if (!IsSha256Hex(request->sha256())) {
    return new FailedWriteReactor<v1::BlobChunk>(absl::InvalidArgumentError(absl::StrCat(
        "sha256: expected 64 lowercase hex characters, got \"", request->sha256(), "\"")));
  }
  absl::StatusOr<uint64_t> size = blobs_.Size(request->sha256());
  if (!size.ok()) {
    return new FailedWriteReactor<v1::BlobChunk>(size.status());
  }
  if (request->offset() > *size) {
    return new FailedWriteReactor<v1::BlobChunk>(absl::OutOfRangeError(
        absl::StrCat("offset: ", request->offset(), " is past the end of blob ", request->sha256(),
                     " (", *size, " bytes)")));
  }
  return new BlobStreamReactor<v1::BlobChunk>(blobs_, request->sha256(), request->offset(),
                                              std::nullopt, nullptr);
}

grpc::ServerReadReactor<v1::UploadArtifactRequest>* WorkerServiceImpl::UploadArtifact(
    grpc::CallbackServerContext* ctx, v1::Artifact* response) {
  absl::StatusOr<Principal> who = Admit(ctx, "WorkerService.UploadArtifact", "", "");
  if (!who.ok()) return new FailedReadReactor<v1::UploadArtifactRequest>(who.status());
  auto owner = [this, who = *who](const std::string& task_id) {
    return CheckTaskOwner(store_, who, task_id);
  };
  return new BlobUploadReactor<ArtifactUpload>(ctx, &idle_, ArtifactUpload{scheduler_, owner},
                                               blobs_, response);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::CompleteTask(grpc::CallbackServerContext* ctx,
                                                          const v1::CompleteTaskRequest* request,
                                                          v1::CompleteTaskResponse* /*response*/) {
  return Unary(ctx, "WorkerService.CompleteTask", "", request->task_id(),
               [&](const Principal&) { return scheduler_.CompleteTask(*request); });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::FailTask(grpc::CallbackServerContext* ctx,
                                                      const v1::FailTaskRequest* request,
                                                      v1::FailTaskResponse* /*response*/) {
  return Unary(ctx, "WorkerService.FailTask", "", request->task_id(),
               [&](const Principal&) { return scheduler_.FailTask(*request); });
}

grpc::ServerReadReactor<v1::PutCheckpointRequest>* WorkerServiceImpl::PutCheckpoint(
    grpc::CallbackServerContext* ctx, v1::PutCheckpointResponse* response) {
  absl::StatusOr<Principal> who = Admit(ctx, "WorkerService.PutCheckpoint", "", "");
  if (!who.ok()) return new FailedReadReactor<v1::PutCheckpointRequest>(who.status());
  auto owner = [this, who = *who](const std::string& task_id) {
    return CheckTaskOwner(store_, who, task_id);
  };
  return new BlobUploadReactor<CheckpointUpload>(ctx, &idle_, CheckpointUpload{checkpoints_, owner},
                                                 blobs_, response);
}

grpc::ServerWriteReactor<v1::BlobChunk>* WorkerServiceImpl::GetCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointRequest* request) {
  absl::StatusOr<Principal> who = Admit(ctx, "WorkerService.GetCheckpoint", "", request->task_id());
  if (!who.ok()) return new FailedWriteReactor<v1::BlobChunk>(who.status());
  absl::StatusOr<CheckpointRecord> found = checkpoints_.Find(*request);
  if (!found.ok()) return new FailedWriteReactor<v1::BlobChunk>(found.status());
  return new BlobStreamReactor<v1::BlobChunk>(blobs_, found->sha256, request->offset(),
                                              std::nullopt, nullptr);
}

grpc::ServerUnaryReactor* WorkerServiceImpl::SubmitParts(grpc::CallbackServerContext* ctx,
                                                         const v1::SubmitPartsRequest* request,
                                                         v1::SubmitPartsResponse* response) {
  return Unary(ctx, "WorkerService.SubmitParts", "", request->task_id(), [&](const Principal&) {
    return AssignTo(scheduler_.SubmitParts(*request), response);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::ClaimPart(grpc::CallbackServerContext* ctx,
                                                       const v1::ClaimPartRequest* request,
                                                       v1::ClaimPartResponse* response) {
  return Unary(ctx, "WorkerService.ClaimPart", "", request->task_id(), [&](const Principal&) {
    return AssignTo(scheduler_.ClaimPart(*request), response);
  });
}

grpc::ServerUnaryReactor* WorkerServiceImpl::GetParts(grpc::CallbackServerContext* ctx,
                                                      const v1::GetPartsRequest* request,
                                                      v1::GetPartsResponse* response) {
  return Unary(ctx, "WorkerService.GetParts", "", request->task_id(),
               [&](const Principal&) { return AssignTo(scheduler_.GetParts(*request), response); });
}

}  // namespace compressd
