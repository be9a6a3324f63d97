#include "server/rpc/compression_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "server/rpc/blob_stream_reactor.h"
#include "server/rpc/unary.h"
#include "server/rpc/upload_reactor.h"
#include "server/rpc/watch_job_reactor.h"

namespace compressd {

CompressionServiceImpl::CompressionServiceImpl(Store& store, BlobStore& blobs, EventBus& bus,
                                               ModelRegistry& models, JobService& jobs,
                                               ServerMetrics& metrics, UploadIdleMonitor& idle)
    : store_(store),
      blobs_(blobs),
      bus_(bus),
      models_(models),
      jobs_(jobs),
      metrics_(metrics),
      idle_(idle) {}

grpc::ServerReadReactor<v1::UploadModelRequest>* CompressionServiceImpl::UploadModel(
    grpc::CallbackServerContext* ctx, v1::Model* response) {
  return new UploadReactor<ModelUploadKind>(ctx, &idle_, models_.StartUpload(), response);
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetModel(grpc::CallbackServerContext* ctx,
                                                           const v1::GetModelRequest* request,
                                                           v1::Model* response) {
  return FinishUnary(ctx, AssignTo(models_.GetModel(request->model_id()), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                             const v1::ListModelsRequest* request,
                                                             v1::ListModelsResponse* response) {
  return FinishUnary(ctx, AssignTo(models_.ListModels(*request), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteModel(
    grpc::CallbackServerContext* ctx, const v1::DeleteModelRequest* request,
    v1::DeleteModelResponse* /*response*/) {
  return FinishUnary(ctx, models_.DeleteModel(request->model_id()));
}

grpc::ServerReadReactor<v1::UploadDatasetRequest>* CompressionServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, v1::Dataset* response) {
  return new UploadReactor<DatasetUploadKind>(ctx, &idle_, models_.StartUpload(), response);
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteDataset(
    grpc::CallbackServerContext* ctx, const v1::DeleteDatasetRequest* request,
    v1::DeleteDatasetResponse* /*response*/) {
  return FinishUnary(ctx, models_.DeleteDataset(request->dataset_id()));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteJobRequest* request,
                                                            v1::DeleteJobResponse* /*response*/) {
  return FinishUnary(ctx, jobs_.Delete(request->job_id()));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                             const v1::GetDatasetRequest* request,
                                                             v1::Dataset* response) {
  return FinishUnary(ctx, AssignTo(models_.GetDataset(request->dataset_id()), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListDatasets(
    grpc::CallbackServerContext* ctx, const v1::ListDatasetsRequest* request,
    v1::ListDatasetsResponse* response) {
  return FinishUnary(ctx, AssignTo(models_.ListDatasets(*request), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                            const v1::SubmitJobRequest* request,
                                                            v1::Job* response) {
  return FinishUnary(ctx, AssignTo(jobs_.Submit(*request), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                         const v1::GetJobRequest* request,
                                                         v1::Job* response) {
  return FinishUnary(ctx, AssignTo(jobs_.Get(request->job_id()), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                           const v1::ListJobsRequest* request,
                                                           v1::ListJobsResponse* response) {
  return FinishUnary(ctx, AssignTo(jobs_.List(*request), response));
}

grpc::ServerUnaryReactor* CompressionServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                            const v1::CancelJobRequest* request,
                                                            v1::Job* response) {
  return FinishUnary(ctx, AssignTo(jobs_.Cancel(request->job_id()), response));
}

grpc::ServerWriteReactor<v1::JobEvent>* CompressionServiceImpl::WatchJob(
    grpc::CallbackServerContext* /*ctx*/, const v1::WatchJobRequest* request) {
  return WatchJobReactor::Start(jobs_, bus_, *request);
}

grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* CompressionServiceImpl::DownloadArtifact(
    grpc::CallbackServerContext* /*ctx*/, const v1::DownloadArtifactRequest* request) {
  using Reactor = BlobStreamReactor<v1::DownloadArtifactResponse>;
  absl::StatusOr<v1::Artifact> artifact = store_.GetArtifact(request->artifact_id());
  if (!artifact.ok()) {
    return new FailedWriteReactor<v1::DownloadArtifactResponse>(artifact.status());
  }
  if (request->offset() > artifact->size()) {
    return new FailedWriteReactor<v1::DownloadArtifactResponse>(absl::OutOfRangeError(
        absl::StrCat("offset: ", request->offset(), " is past the end of artifact ", artifact->id(),
                     " (", artifact->size(), " bytes)")));
  }
  v1::DownloadArtifactResponse info;
  *info.mutable_info() = *artifact;
  return new Reactor(blobs_, artifact->sha256(), request->offset(), std::move(info),
                     &metrics_.bytes_downloaded());
}

}  // namespace compressd
