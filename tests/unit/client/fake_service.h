// An in-process fake of CompressionService for the client's retry, reconnect,
// resume and upload logic. Scripted per test; thread-safe (gRPC's sync server
// calls it from its own threads).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/compressd.grpc.pb.h"

namespace compressd::client::testing {

class FakeService final : public v1::CompressionService::Service {
 public:
  // --- scripts (set before the client runs) ---
  v1::Job job;                       // returned by GetJob / SubmitJob
  std::vector<v1::JobEvent> events;  // WatchJob's events, sequence 1..n
  std::vector<int64_t>
      break_after;  // per WatchJob call: end with UNAVAILABLE after this sequence (-1: no break)
  bool resend_last_on_reconnect = false;  // WatchJob re-sends event `after_sequence` (an overlap)
  int submit_unavailable = 0;             // SubmitJob fails UNAVAILABLE this many times first
  std::string artifact_content;           // DownloadArtifact serves this
  std::string artifact_sha256;            // ... announcing this digest
  int64_t download_break_at =
      -1;  // first DownloadArtifact call ends UNAVAILABLE after this many bytes

  // --- observations ---
  std::vector<int64_t> WatchAfterSequences() {
    absl::MutexLock lock(&mu_);
    return watch_after_;
  }
  std::vector<std::string> SubmitRequestIds() {
    absl::MutexLock lock(&mu_);
    return submit_request_ids_;
  }
  std::vector<uint64_t> DownloadOffsets() {
    absl::MutexLock lock(&mu_);
    return download_offsets_;
  }
  v1::UploadModelHeader UploadedHeader() {
    absl::MutexLock lock(&mu_);
    return upload_header_;
  }
  std::vector<std::string> UploadedData() {
    absl::MutexLock lock(&mu_);
    return upload_data_;
  }

  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* request,
                         v1::Job* response) override;
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status DownloadArtifact(grpc::ServerContext*, const v1::DownloadArtifactRequest* request,
                                grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) override;
  grpc::Status UploadModel(grpc::ServerContext*, grpc::ServerReader<v1::UploadModelRequest>* reader,
                           v1::Model* response) override;

 private:
  absl::Mutex mu_;
  std::vector<int64_t> watch_after_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> submit_request_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> download_offsets_ ABSL_GUARDED_BY(mu_);
  v1::UploadModelHeader upload_header_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> upload_data_ ABSL_GUARDED_BY(mu_);
};

// Runs a FakeService on a free loopback port.
class FakeServer {
 public:
  FakeServer();
  ~FakeServer() { server_->Shutdown(); }
  FakeService& service() { return service_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace compressd::client::testing
