// WorkerService.PutCheckpoint / GetCheckpoint over a real gRPC connection:
// the worker's ServerCheckpointStore against the server's services, streams
// of several chunks, the error codes a worker sees, a retried job resuming
// from the first attempt's checkpoints and their deletion when the job ends.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "common/sha256.h"
#include "server/jobs/checkpoint_service.h"
#include "tests/unit/server_edge/edge_fixture.h"
#include "workers/worker/server_checkpoints.h"
#include "workers/worker/server_client.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;

class CheckpointRpcTest : public EdgeTest {
 protected:
  void SetUp() override {
    EdgeTest::SetUp();
    client_ = std::make_unique<WorkerClient>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()), 10000, 30000);
    job_ = Submit(UploadFakeModel("tiny").id(), "");
    worker_id_ = RegisterWorker();
    task_ = Lease(worker_id_);
    ASSERT_EQ(task_.job_id(), job_.id());
  }

  std::unique_ptr<ServerCheckpointStore> StoreFor(const v1::Task& task) {
    return std::make_unique<ServerCheckpointStore>(*client_, task.task_id(), task.lease_token(),
                                                   nullptr, [this] { ++leases_lost_; });
  }

  // A raw PutCheckpoint stream: `header`, then `content` in 64 KiB chunks.
  grpc::Status RawPut(const v1::PutCheckpointHeader& header, const std::string& content) {
    auto ctx = Context();
    v1::PutCheckpointResponse response;
    auto writer = worker_api_->PutCheckpoint(ctx.get(), &response);
    v1::PutCheckpointRequest msg;
    *msg.mutable_header() = header;
    bool ok = writer->Write(msg);
    for (size_t at = 0; ok && at < content.size(); at += 64 << 10) {
      msg.set_chunk(content.substr(at, 64 << 10));
      ok = writer->Write(msg);
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::PutCheckpointHeader Header(const std::string& name, const std::string& content) const {
    v1::PutCheckpointHeader h;
    h.set_task_id(task_.task_id());
    h.set_lease_token(task_.lease_token());
    h.set_name(name);
    h.set_size(content.size());
    h.set_sha256(Sha256Hex(content));
    return h;
  }

  grpc::Status FailRetryable(const v1::Task& task) {
    v1::FailTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_error("worker lost");
    req.set_retryable(true);
    v1::FailTaskResponse resp;
    return worker_api_->FailTask(Context().get(), req, &resp);
  }

  std::unique_ptr<WorkerClient> client_;
  v1::Job job_;
  std::string worker_id_;
  v1::Task task_;
  std::atomic<int> leases_lost_{0};
};

TEST_F(CheckpointRpcTest, PutGetReplaceAndNotFoundThroughTheWorkerStore) {
  auto store = StoreFor(task_);
  const std::string big = RandomBytes((5 << 20) / 2, 7);  // 2.5 MiB: three upload chunks
  ASSERT_TRUE(store->Put("calib/block-0000", big).ok());
  auto got = store->Get("calib/block-0000");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == big);

  ASSERT_TRUE(store->Put("calib/block-0000", "small now").ok());
  got = store->Get("calib/block-0000");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "small now");
  ASSERT_TRUE(store->Put("empty", "").ok());
  got = store->Get("empty");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "");

  EXPECT_EQ(store->Get("calib/block-0001").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Put("../x", "y").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(leases_lost_.load(), 0);
}

TEST_F(CheckpointRpcTest, GetResumesAtAnOffset) {
  ASSERT_TRUE(StoreFor(task_)->Put("a", "0123456789").ok());
  v1::GetCheckpointRequest req;
  req.set_task_id(task_.task_id());
  req.set_lease_token(task_.lease_token());
  req.set_name("a");
  req.set_offset(6);
  std::string tail;
  ASSERT_TRUE(client_
                  ->GetCheckpoint(req,
                                  [&](absl::string_view chunk) {
                                    tail.append(chunk.data(), chunk.size());
                                    return absl::OkStatus();
                                  })
                  .ok());
  EXPECT_EQ(tail, "6789");
  req.set_offset(11);
  EXPECT_EQ(client_->GetCheckpoint(req, [](absl::string_view) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(CheckpointRpcTest, BadUploadsAreRejected) {
  v1::PutCheckpointHeader lying = Header("a", "the declared content");
  grpc::Status st = RawPut(lying, "other content of the same size!!");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("checkpoint a"));

  v1::PutCheckpointHeader wrong_sha = Header("a", "abc");
  wrong_sha.set_sha256(Sha256Hex("abd"));
  st = RawPut(wrong_sha, "abc");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();

  v1::PutCheckpointHeader huge = Header("a", "x");
  huge.set_size(kMaxCheckpointBytes + 1);
  st = RawPut(huge, "x");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();

  v1::PutCheckpointHeader bad_name = Header("a b", "x");
  EXPECT_EQ(RawPut(bad_name, "x").error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  auto listed = store_->ListCheckpoints(job_.id());
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(CheckpointRpcTest, ALostLeaseIsFailedPreconditionAndReported) {
  v1::Task stale = task_;
  stale.set_lease_token("lease-stale");
  auto store = StoreFor(stale);
  EXPECT_EQ(store->Put("a", "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Get("a").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(leases_lost_.load(), 2);
}

TEST_F(CheckpointRpcTest, ARetryResumesFromTheFirstAttemptsCheckpointsThenTheyAreDeleted) {
  ASSERT_TRUE(StoreFor(task_)->Put("calib/block-0004", "after block 4").ok());
  ASSERT_TRUE(FailRetryable(task_).ok());
  EXPECT_EQ(StoreFor(task_)->Get("calib/block-0004").status().code(),
            absl::StatusCode::kFailedPrecondition);

  const v1::Task retry = Lease(RegisterWorker());  // another worker
  ASSERT_EQ(retry.job_id(), job_.id());
  ASSERT_EQ(retry.attempt(), 2);
  auto resumed = StoreFor(retry)->Get("calib/block-0004");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, "after block 4");

  ASSERT_TRUE(Complete(retry).ok());
  auto listed = store_->ListCheckpoints(job_.id());
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(CheckpointRpcTest, ArtifactUploadsStillWork) {
  // UploadArtifact shares the upload reactor with PutCheckpoint.
  v1::Artifact artifact;
  ASSERT_TRUE(UploadArtifact(task_, "out/model.safetensors", "weights", &artifact).ok());
  EXPECT_EQ(artifact.path(), "out/model.safetensors");
  EXPECT_EQ(artifact.sha256(), Sha256Hex("weights"));
  EXPECT_EQ(UploadArtifact(task_, "../evil", "x", &artifact).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace compressd::testing
