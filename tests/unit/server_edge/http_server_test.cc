// The operator HTTP endpoints over a real socket (cpp-httplib client), and
// the per-RPC metrics recorded by the gRPC interceptor.
#include "server/http/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>

#include "server/http/dashboard.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class HttpServerTest : public EdgeTest {
 protected:
  void SetUp() override {
    EdgeTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    http_ = std::make_unique<HttpServer>(HttpServerOptions{}, *registry_, *jobs_, *metrics_,
                                         [this]() -> absl::Status {
                                           if (ready_.load()) {
                                             return absl::OkStatus();
                                           }
                                           return absl::UnavailableError("not serving yet");
                                         });
    ASSERT_TRUE(http_->Start().ok());
    ASSERT_GT(http_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", http_->port());
  }
  void TearDown() override {
    if (http_) {
      http_->Stop();
    }
    EdgeTest::TearDown();
  }

  std::atomic<bool> ready_{true};
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpServerTest, HealthzIsOk) {
  auto res = client_->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(HttpServerTest, ReadyzFollowsTheReadinessCheck) {
  auto ready = client_->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  ready_ = false;
  auto not_ready = client_->Get("/readyz");
  ASSERT_TRUE(not_ready);
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_THAT(not_ready->body, HasSubstr("not serving yet"));
}

TEST_F(HttpServerTest, MetricsExposeRpcAndJobFamilies) {
  const v1::Model model = UploadFakeModel("tiny");
  Submit(model.id(), "r1");
  v1::GetModelRequest get;
  get.set_model_id("missing");
  v1::Model unused;
  ASSERT_EQ(api_->GetModel(Context().get(), get, &unused).error_code(),
            grpc::StatusCode::NOT_FOUND);

  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain"));
  const std::string& body = res->body;
  EXPECT_THAT(body, HasSubstr("compressd_rpc_total"));
  EXPECT_THAT(body, HasSubstr("compressd_rpc_latency_seconds"));
  EXPECT_THAT(body, HasSubstr("compressd_jobs"));
  EXPECT_THAT(body, HasSubstr("compressd_queue_depth"));
  // The interceptor labels each call with its method and final code.
  EXPECT_THAT(body, HasSubstr("compressd.v1.CompressionService/UploadModel"));
  EXPECT_THAT(body, HasSubstr("compressd.v1.CompressionService/SubmitJob"));
  EXPECT_THAT(body, HasSubstr("NOT_FOUND"));
}

TEST_F(HttpServerTest, DashboardAndJsonListJobs) {
  const v1::Model model = UploadFakeModel("tiny");
  const v1::Job job = Submit(model.id(), "r1");

  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr(job.id()));
  EXPECT_THAT(page->body, HasSubstr("QUEUED"));
  EXPECT_THAT(page->body, HasSubstr("http-equiv=\"refresh\""));

  auto json = client_->Get("/api/jobs");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->status, 200);
  EXPECT_THAT(json->body, HasSubstr(job.id()));

  auto running = client_->Get("/api/jobs?state=RUNNING");
  ASSERT_TRUE(running);
  EXPECT_EQ(running->status, 200);
  EXPECT_THAT(running->body, Not(HasSubstr(job.id())));

  auto bad = client_->Get("/api/jobs?state=SLEEPING");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

TEST_F(HttpServerTest, PortInUseIsAnError) {
  HttpServerOptions options;
  options.port = http_->port();
  HttpServer second(options, *registry_, *jobs_, *metrics_, nullptr);
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);
}

TEST(DashboardTest, EscapesUserText) {
  DashboardData data;
  v1::Job* job = data.jobs.add_jobs();
  job->set_id("job-1");
  job->set_state(v1::FAILED);
  job->set_error("<script>alert('x')</script>");
  const std::string html = RenderDashboard(data);
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
}

}  // namespace
}  // namespace compressd::testing
