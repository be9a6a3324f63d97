#include "server/rpc/compression_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "server/rpc/blob_stream_reactor.h"
#include "server/rpc/rpc_auth.h"
#include "server/rpc/unary.h"
#include "server/rpc/upload_reactor.h"
#include "server/rpc/watch_job_reactor.h"

namespace compressd {

CompressionServiceImpl::CompressionServiceImpl(Store& store, BlobStore& blobs, EventBus& bus,
                                               ModelRegistry& models, JobService& jobs,
                                               ServerMetrics& metrics, UploadIdleMonitor& idle,
                                               Authenticator& auth, AuditLog& audit,
                                               int max_watch_streams_per_key)
    : store_(store),
      auth_(auth),
      audit_(audit),
      blobs_(blobs),
      bus_(bus),
      models_(models),
      jobs_(jobs),
      metrics_(metrics),
      idle_(idle),
      watch_streams_(max_watch_streams_per_key) {}

grpc::ServerReadReactor<v1::UploadModelRequest>* CompressionServiceImpl::UploadModel(
    grpc::CallbackServerContext* ctx, v1::Model* response) {
  absl::StatusOr<Principal> who = AuthorizeCall(auth_, *ctx, "CompressionService.UploadModel");
  if (!who.ok()) return new FailedReadReactor<v1::UploadModelRequest>(who.status());
  return new UploadReactor<ModelUploadKind>(ctx, &idle_, models_.StartUpload(who->tenant), response,
                                            [this, who = *who](const v1::Model& m) {
                                              audit_.Record(who, "UploadModel", m.tenant(), m.id(),
                                                            m.name());
                                            });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetModel(grpc::CallbackServerContext* ctx,
                                                           const v1::GetModelRequest* request,
                                                           v1::Model* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.GetModel", [&](const Principal& who) {
    return AssignTo(models_.GetModel(request->model_id(), who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                             const v1::ListModelsRequest* request,
                                                             v1::ListModelsResponse* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.ListModels", [&](const Principal& who) {
    return AssignTo(models_.ListModels(*request, who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteModel(
    grpc::CallbackServerContext* ctx, const v1::DeleteModelRequest* request,
    v1::DeleteModelResponse* /*response*/) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.DeleteModel", [&](const Principal& who) {
    absl::StatusOr<v1::Model> model = models_.GetModel(request->model_id(), who.scope());
    if (!model.ok()) return model.status();
    absl::Status deleted = models_.DeleteModel(request->model_id(), who.scope());
    if (deleted.ok()) audit_.Record(who, "DeleteModel", model->tenant(), model->id());
    return deleted;
  });
}

grpc::ServerReadReactor<v1::UploadDatasetRequest>* CompressionServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, v1::Dataset* response) {
  absl::StatusOr<Principal> who = AuthorizeCall(auth_, *ctx, "CompressionService.UploadDataset");
  if (!who.ok()) return new FailedReadReactor<v1::UploadDatasetRequest>(who.status());
  return new UploadReactor<DatasetUploadKind>(ctx, &idle_, models_.StartUpload(who->tenant),
                                              response, [this, who = *who](const v1::Dataset& d) {
                                                audit_.Record(who, "UploadDataset", d.tenant(),
                                                              d.id(), d.name());
                                              });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteDataset(
    grpc::CallbackServerContext* ctx, const v1::DeleteDatasetRequest* request,
    v1::DeleteDatasetResponse* /*response*/) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.DeleteDataset", [&](const Principal& who) {
    absl::StatusOr<v1::Dataset> dataset = models_.GetDataset(request->dataset_id(), who.scope());
    if (!dataset.ok()) return dataset.status();
    absl::Status deleted = models_.DeleteDataset(request->dataset_id(), who.scope());
    if (deleted.ok()) audit_.Record(who, "DeleteDataset", dataset->tenant(), dataset->id());
    return deleted;
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteJobRequest* request,
                                                            v1::DeleteJobResponse* /*response*/) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.DeleteJob", [&](const Principal& who) {
    absl::StatusOr<v1::Job> job = jobs_.Get(request->job_id(), who.scope());
    if (!job.ok()) return job.status();
    absl::Status deleted = jobs_.Delete(request->job_id(), who.scope());
    if (deleted.ok()) audit_.Record(who, "DeleteJob", job->tenant(), job->id());
    return deleted;
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                             const v1::GetDatasetRequest* request,
                                                             v1::Dataset* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.GetDataset", [&](const Principal& who) {
    return AssignTo(models_.GetDataset(request->dataset_id(), who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListDatasets(
    grpc::CallbackServerContext* ctx, const v1::ListDatasetsRequest* request,
    v1::ListDatasetsResponse* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.ListDatasets", [&](const Principal& who) {
    return AssignTo(models_.ListDatasets(*request, who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                            const v1::SubmitJobRequest* request,
                                                            v1::Job* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.SubmitJob", [&](const Principal& who) {
    absl::StatusOr<v1::Job> job = jobs_.Submit(*request, who.scope(), who.key_id);
    if (job.ok() && job->submitted_by() == who.key_id) {
      audit_.Record(who, "SubmitJob", job->tenant(), job->id(), job->model_id());
    }
    return AssignTo(std::move(job), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                         const v1::GetJobRequest* request,
                                                         v1::Job* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.GetJob", [&](const Principal& who) {
    return AssignTo(jobs_.Get(request->job_id(), who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                           const v1::ListJobsRequest* request,
                                                           v1::ListJobsResponse* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.ListJobs", [&](const Principal& who) {
    return AssignTo(jobs_.List(*request, who.scope()), response);
  });
}

grpc::ServerUnaryReactor* CompressionServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                            const v1::CancelJobRequest* request,
                                                            v1::Job* response) {
  return AuthorizedUnary(ctx, auth_, "CompressionService.CancelJob", [&](const Principal& who) {
    absl::StatusOr<v1::Job> job = jobs_.Cancel(request->job_id(), who.scope());
    if (job.ok()) audit_.Record(who, "CancelJob", job->tenant(), job->id());
    return AssignTo(std::move(job), response);
  });
}

grpc::ServerWriteReactor<v1::JobEvent>* CompressionServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* request) {
  absl::StatusOr<Principal> who = AuthorizeCall(auth_, *ctx, "CompressionService.WatchJob");
  if (!who.ok()) return new FailedWriteReactor<v1::JobEvent>(who.status());
  // The tenant is checked once: a job never changes tenant.
  absl::Status visible = jobs_.Get(request->job_id(), who->scope()).status();
  if (!visible.ok()) return new FailedWriteReactor<v1::JobEvent>(visible);
  absl::StatusOr<std::shared_ptr<void>> hold = watch_streams_.Acquire(who->key_id, "WatchJob");
  if (!hold.ok()) return new FailedWriteReactor<v1::JobEvent>(hold.status());
  return WatchJobReactor::Start(jobs_, bus_, *request, *std::move(hold));
}

grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* CompressionServiceImpl::DownloadArtifact(
    grpc::CallbackServerContext* ctx, const v1::DownloadArtifactRequest* request) {
  using Reactor = BlobStreamReactor<v1::DownloadArtifactResponse>;
  using Failed = FailedWriteReactor<v1::DownloadArtifactResponse>;
  absl::StatusOr<Principal> who = AuthorizeCall(auth_, *ctx, "CompressionService.DownloadArtifact");
  if (!who.ok()) return new Failed(who.status());
  absl::StatusOr<v1::Artifact> artifact = store_.GetArtifact(request->artifact_id());
  if (artifact.ok() && !jobs_.Get(artifact->job_id(), who->scope()).ok()) {
    artifact = absl::NotFoundError(absl::StrCat("artifact ", request->artifact_id(), " not found"));
  }
  if (!artifact.ok()) return new Failed(artifact.status());
  if (request->offset() > artifact->size()) {
    return new Failed(absl::OutOfRangeError(
        absl::StrCat("offset: ", request->offset(), " is past the end of artifact ", artifact->id(),
                     " (", artifact->size(), " bytes)")));
  }
  v1::DownloadArtifactResponse info;
  *info.mutable_info() = *artifact;
  return new Reactor(blobs_, artifact->sha256(), request->offset(), std::move(info),
                     &metrics_.bytes_downloaded());
}

}  // namespace compressd
