// An in-process compressd.v1.WorkerService for worker tests: hands out the
// queued tasks, serves blobs, records heartbeats, events, uploads and
// results, and lets a test wait for any of them. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "compressd/v1/worker.grpc.pb.h"

namespace compressd::testing {

class FakeWorkerService final : public v1::WorkerService::Service {
 public:
  struct Failure {
    std::string error;
    bool retryable;
    bool release;  // handed back by a stopping worker
  };

  // Configuration (set before the worker starts, or under mu).
  std::map<std::string, std::string> blobs;  // sha256 -> content
  std::deque<v1::Task> queue;
  int not_found_leases = 0;  // answer the first k LeaseTask calls with NOT_FOUND
  bool cancel_job = false;   // heartbeats answer cancel=true
  bool hold_fetch_until_cancel = false;

  // Observations.
  int registers = 0, lease_calls = 0, heartbeats = 0, cancels_sent = 0;
  std::vector<v1::JobEvent> events;
  std::map<std::string, std::string> artifacts;  // path -> content
  std::vector<std::string> completed;            // summaries
  std::vector<Failure> failed;

  std::mutex mu;
  std::condition_variable cv;

  template <typename Pred>
  bool WaitFor(Pred pred, int timeout_ms = 20000) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), pred);
  }

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    ++registers;
    resp->set_worker_id("worker-" + std::to_string(registers));
    resp->set_heartbeat_interval_ms(50);
    resp->set_lease_ttl_ms(5000);
    cv.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status LeaseTask(grpc::ServerContext* ctx, const v1::LeaseTaskRequest* req,
                         v1::LeaseTaskResponse* resp) override {
    std::unique_lock<std::mutex> lock(mu);
    ++lease_calls;
    cv.notify_all();
    if (not_found_leases > 0) {
      --not_found_leases;
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "worker is not registered");
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(req->wait_ms());
    while (queue.empty() && !ctx->IsCancelled() && std::chrono::steady_clock::now() < deadline) {
      cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    if (!queue.empty()) {
      *resp->mutable_task() = queue.front();
      queue.pop_front();
    }
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    ++heartbeats;
    if (cancel_job) {
      resp->set_cancel(true);
      ++cancels_sent;
    }
    cv.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status ReportEvents(grpc::ServerContext*, const v1::ReportEventsRequest* req,
                            v1::ReportEventsResponse*) override {
    std::lock_guard<std::mutex> lock(mu);
    events.insert(events.end(), req->events().begin(), req->events().end());
    cv.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status FetchBlob(grpc::ServerContext*, const v1::FetchBlobRequest* req,
                         grpc::ServerWriter<v1::BlobChunk>* writer) override {
    std::string content;
    {
      std::unique_lock<std::mutex> lock(mu);
      if (hold_fetch_until_cancel) {
        cv.wait_for(lock, std::chrono::seconds(10), [this] { return cancels_sent > 0; });
      }
      auto it = blobs.find(req->sha256());
      if (it == blobs.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such blob");
      content = it->second;
    }
    v1::BlobChunk chunk;
    for (size_t i = req->offset(); i < content.size(); i += 65536) {
      chunk.set_data(content.substr(i, 65536));
      if (!writer->Write(chunk)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status UploadArtifact(grpc::ServerContext*,
                              grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                              v1::Artifact* artifact) override {
    v1::UploadArtifactRequest msg;
    if (!reader->Read(&msg) || !msg.has_header()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "header first");
    }
    const v1::UploadArtifactHeader header = msg.header();
    std::string content;
    while (reader->Read(&msg)) {
      if (msg.chunk().size() > (1u << 20)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "chunk over 1 MiB");
      }
      content += msg.chunk();
    }
    if (content.size() != header.size() || Sha256Hex(content) != header.sha256()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "size or sha256 mismatch");
    }
    std::lock_guard<std::mutex> lock(mu);
    artifacts[header.path()] = content;
    artifact->set_path(header.path());
    artifact->set_size(header.size());
    artifact->set_sha256(header.sha256());
    cv.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status CompleteTask(grpc::ServerContext*, const v1::CompleteTaskRequest* req,
                            v1::CompleteTaskResponse*) override {
    std::lock_guard<std::mutex> lock(mu);
    completed.push_back(req->summary_json());
    cv.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status FailTask(grpc::ServerContext*, const v1::FailTaskRequest* req,
                        v1::FailTaskResponse*) override {
    std::lock_guard<std::mutex> lock(mu);
    failed.push_back({req->error(), req->retryable(), req->release()});
    cv.notify_all();
    return grpc::Status::OK;
  }
};

// Starts `service` on 127.0.0.1:`port` (0 picks a free port, stored back).
inline std::unique_ptr<grpc::Server> StartFakeServer(FakeWorkerService& service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(*port), grpc::InsecureServerCredentials(),
                           port);
  builder.RegisterService(&service);
  return builder.BuildAndStart();
}

}  // namespace compressd::testing
