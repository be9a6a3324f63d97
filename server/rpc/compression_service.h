// The public gRPC API (v1::CompressionService), callback flavour. Thin: each
// method authorizes the caller (rpc_auth.h), forwards to ModelRegistry /
// JobService / the stores scoped to the caller's tenant, records changes in
// the audit trail and converts errors with ToGrpcStatus; the streaming
// methods use the reactors in this folder. Thread-safe (holds references to
// thread-safe services only).
#pragma once

#include <grpcpp/grpcpp.h>

#include "compressd/v1/compressd.grpc.pb.h"
#include "server/auth/audit_log.h"
#include "server/auth/authenticator.h"
#include "server/core/event_bus.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"
#include "server/models/model_registry.h"
#include "server/rpc/stream_limiter.h"
#include "server/rpc/upload_idle_monitor.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

class CompressionServiceImpl final : public v1::CompressionService::CallbackService {
 public:
  CompressionServiceImpl(Store& store, BlobStore& blobs, EventBus& bus, ModelRegistry& models,
                         JobService& jobs, ServerMetrics& metrics, UploadIdleMonitor& idle,
                         Authenticator& auth, AuditLog& audit, int max_watch_streams_per_key);

  grpc::ServerReadReactor<v1::UploadModelRequest>* UploadModel(grpc::CallbackServerContext* ctx,
                                                               v1::Model* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* request,
                                     v1::Model* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteModel(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteModelRequest* request,
                                        v1::DeleteModelResponse* response) override;
  grpc::ServerUnaryReactor* DeleteDataset(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteDatasetRequest* request,
                                          v1::DeleteDatasetResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* request,
                                      v1::DeleteJobResponse* response) override;

  grpc::ServerReadReactor<v1::UploadDatasetRequest>* UploadDataset(grpc::CallbackServerContext* ctx,
                                                                   v1::Dataset* response) override;
  grpc::ServerUnaryReactor* GetDataset(grpc::CallbackServerContext* ctx,
                                       const v1::GetDatasetRequest* request,
                                       v1::Dataset* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* ctx,
                                         const v1::ListDatasetsRequest* request,
                                         v1::ListDatasetsResponse* response) override;

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const v1::SubmitJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchJobRequest* request) override;

  grpc::ServerWriteReactor<v1::DownloadArtifactResponse>* DownloadArtifact(
      grpc::CallbackServerContext* ctx, const v1::DownloadArtifactRequest* request) override;

 private:
  Store& store_;
  Authenticator& auth_;
  AuditLog& audit_;
  BlobStore& blobs_;
  EventBus& bus_;
  ModelRegistry& models_;
  JobService& jobs_;
  ServerMetrics& metrics_;
  UploadIdleMonitor& idle_;
  StreamLimiter watch_streams_;
};

}  // namespace compressd
