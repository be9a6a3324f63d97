// Test fixture for the network edge: the real server core on a temporary data
// dir, the gRPC services on a free loopback port, and stubs talking to them.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "compressd/v1/worker.grpc.pb.h"
#include "server/core/event_bus.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"
#include "server/models/model_registry.h"
#include "server/rpc/grpc_server.h"
#include "server/scheduler/scheduler.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd::testing {

// One file of a fake upload.
struct TestFile {
  std::string path;
  std::string content;
};

// Header plus 1-chunk-per-file messages of a model upload (sizes and sha256s
// computed from the contents).
std::vector<v1::UploadModelRequest> ModelUploadMessages(const std::string& name,
                                                        v1::ModelFormat format,
                                                        const std::vector<TestFile>& files);
// A small fake HF model: config.json and a tiny .safetensors byte blob.
std::vector<TestFile> FakeHfModelFiles();
// A valid recipe: unstructured magnitude pruning to 50 %.
v1::Recipe MagnitudeRecipe();
std::string RandomBytes(size_t n, uint32_t seed);

class EdgeTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Options the fixture starts the Scheduler with (override before SetUp).
  virtual SchedulerOptions MakeSchedulerOptions() const;
  // Options the fixture starts the gRPC server with.
  virtual GrpcServerOptions MakeGrpcOptions() const { return {}; }
  // kNone (every call an admin, as `compressd --auth=none`) unless a test of
  // authentication overrides it.
  virtual AuthMode MakeAuthMode() const { return AuthMode::kNone; }

  std::unique_ptr<grpc::ClientContext> Context(int timeout_ms = 10000) const;
  // The objects the servers forward to (valid after SetUp).
  ServerCore Core() const {
    return {*store_, *blobs_, *bus_, *models_, *jobs_, *scheduler_, *metrics_, *auth_};
  }
  // Writes `messages` (ignoring write failures: the server may finish early)
  // then returns the call's status; the model in *model on success.
  grpc::Status Upload(const std::vector<v1::UploadModelRequest>& messages, v1::Model* model);
  // Uploads FakeHfModelFiles(); fails the test on error.
  v1::Model UploadFakeModel(const std::string& name);
  v1::Job Submit(const std::string& model_id, const std::string& request_id);

  // ---- a fake worker, speaking WorkerService ----
  std::string RegisterWorker();
  // Leases with a short long-poll; an empty task if none came.
  v1::Task Lease(const std::string& worker_id, int64_t wait_ms = 2000);
  grpc::Status ReportLog(const v1::Task& task, const std::string& message);
  grpc::Status UploadArtifact(const v1::Task& task, const std::string& path,
                              const std::string& content, v1::Artifact* artifact);
  grpc::Status Complete(const v1::Task& task);
  // Reads a whole DownloadArtifact stream from `offset`.
  grpc::Status Download(const std::string& artifact_id, uint64_t offset, v1::Artifact* info,
                        std::string* data, int* messages = nullptr);

  std::string dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<EventBus> bus_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<JobService> jobs_;
  std::unique_ptr<ModelRegistry> models_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::CompressionService::Stub> api_;
  std::unique_ptr<v1::WorkerService::Stub> worker_api_;
};

}  // namespace compressd::testing
