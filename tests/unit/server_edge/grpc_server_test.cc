// GrpcServer wiring: the standard health service answers, addresses are
// formed correctly, Shutdown drains.
#include "server/rpc/grpc_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing {
namespace {

class GrpcServerTest : public EdgeTest {};

// grpc.health.v1.Health/Check with an empty request (service ""), sent as raw
// bytes: the health protos are not part of our generated code.
grpc::Status HealthCheck(const std::string& address, std::string* response_bytes) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1);  // empty HealthCheckRequest
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  std::vector<grpc::Slice> slices;
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      response_bytes->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  return status;
}

TEST_F(GrpcServerTest, HealthServiceReportsServing) {
  std::string response;
  grpc::Status status = HealthCheck(server_->address(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, std::string("\x08\x01"));  // status: SERVING
}

TEST_F(GrpcServerTest, ShutdownStopsServing) {
  EXPECT_TRUE(server_->serving());
  const std::string address = server_->address();
  server_->Shutdown(std::chrono::milliseconds(100));
  EXPECT_FALSE(server_->serving());
  std::string response;
  EXPECT_FALSE(HealthCheck(address, &response).ok());
}

TEST_F(GrpcServerTest, ShutdownEndsAnIdleWatch) {
  const v1::Model model = UploadFakeModel("tiny");
  const v1::Job job = Submit(model.id(), "");
  v1::WatchJobRequest req;
  req.set_job_id(job.id());
  auto ctx = Context();
  auto reader = api_->WatchJob(ctx.get(), req);
  v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));  // the stream is up; then it idles (job QUEUED)

  const auto start = std::chrono::steady_clock::now();
  server_->Shutdown(std::chrono::milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  while (reader->Read(&event)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
}

TEST_F(GrpcServerTest, LeaseTaskLongPollEndsBeforeTheClientDeadline) {
  const std::string worker_id = RegisterWorker();
  v1::LeaseTaskRequest req;
  req.set_worker_id(worker_id);
  req.set_wait_ms(20000);
  v1::LeaseTaskResponse resp;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = worker_api_->LeaseTask(Context(1000).get(), req, &resp);
  EXPECT_TRUE(status.ok()) << status.error_message();  // an empty answer, not DEADLINE_EXCEEDED
  EXPECT_FALSE(resp.has_task());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
}

TEST_F(GrpcServerTest, PortInUseIsAnError) {
  GrpcServerOptions options;
  options.port = server_->port();
  auto second = GrpcServer::Start(
      options, {*store_, *blobs_, *bus_, *models_, *jobs_, *scheduler_, *metrics_, *auth_});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(JoinHostPortTest, BracketsIpv6) {
  EXPECT_EQ(JoinHostPort("127.0.0.1", 50051), "127.0.0.1:50051");
  EXPECT_EQ(JoinHostPort("::1", 5), "[::1]:5");
  EXPECT_EQ(JoinHostPort("[::1]", 5), "[::1]:5");
}

}  // namespace
}  // namespace compressd::testing
