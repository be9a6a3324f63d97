// The operator HTTP endpoints over a real socket (cpp-httplib client), and
// the per-RPC metrics recorded by the gRPC interceptor.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "server/http/dashboard.h"
#include "server/http/http_auth.h"
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
    http_ = std::make_unique<HttpServer>(HttpServerOptions{}, *registry_, Core(),
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

// DNS rebinding: a page elsewhere that resolves its own name to 127.0.0.1
// reaches the port with its own Host header, and gets nothing.
TEST_F(HttpServerTest, ForeignHostHeaderIsMisdirected) {
  auto res = client_->Get("/api/jobs", {{"Host", "attacker.example:80"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 421);
  EXPECT_THAT(res->body, HasSubstr("attacker.example"));
  EXPECT_THAT(res->body, Not(HasSubstr("jobs")));
  res = client_->Get("/api/jobs", {{"Host", "localhost"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

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

TEST_F(HttpServerTest, DashboardShellAndJsonListJobs) {
  const v1::Model model = UploadFakeModel("tiny");
  const v1::Job job = Submit(model.id(), "r1");

  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr("data-page=\"jobs\""));
  EXPECT_THAT(page->body, HasSubstr("/static/chart.js"));

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
  EXPECT_THAT(bad->body, HasSubstr("SLEEPING"));
}

TEST_F(HttpServerTest, PortInUseIsAnError) {
  HttpServerOptions options;
  options.port = http_->port();
  HttpServer second(options, *registry_, Core(), nullptr);
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);
}

TEST(DashboardTest, EscapesUserText) {
  const std::string html = RenderPage("job", "x\"><script>", "<script>alert('x')</script>");
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("data-id=\"x&quot;&gt;&lt;script&gt;\""));
}

// The login form's `next` never leaves the server (an open redirect otherwise).
TEST(LoginTest, NextIsAPathOnThisServerOnly) {
  EXPECT_EQ(SafeNextPath("/jobs/job-1"), "/jobs/job-1");
  EXPECT_EQ(SafeNextPath("/models/m?x=1"), "/models/m?x=1");
  for (const char* bad : {"", "jobs", "//evil.example/", "/\\evil.example", "https://evil.example/",
                          "/a b", "/\"onmouseover=x", "/a\\b"}) {
    EXPECT_EQ(SafeNextPath(bad), "/") << bad;
  }
  const std::string form = RenderLogin("sign in", "/jobs/x\"><script>");
  EXPECT_THAT(form, HasSubstr("name=\"next\" value=\"/\""));
}

// Found by an adversarial probe: eight slow HTTP connections blocked every
// endpoint, /healthz included (a Kubernetes liveness failure). Connections
// now time out, and the probes have their own pool and port.
TEST_F(HttpServerTest, SlowClientsCannotStarveTheProbes) {
  HttpServerOptions options;
  options.probe_port = 0;
  options.threads = 2;
  options.io_timeout_ms = 1000;
  HttpServer http(options, *registry_, Core(), [] { return absl::OkStatus(); });
  ASSERT_TRUE(http.Start().ok());
  ASSERT_GT(http.probe_port(), 0);
  // Eight connections that send half a request line and stall.
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(http.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(send(fd, "GET /heal", 9, 0), 9);
    slow.push_back(fd);
  }
  httplib::Client probes("127.0.0.1", http.probe_port());
  probes.set_connection_timeout(1);
  probes.set_read_timeout(1);
  const auto start = std::chrono::steady_clock::now();
  auto res = probes.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(probes.Get("/metrics")->status, 404);  // probes only
  // The stalled connections are dropped after the I/O timeout: the main
  // port answers again.
  httplib::Client main_port("127.0.0.1", http.port());
  main_port.set_read_timeout(10);
  auto later = main_port.Get("/healthz");
  ASSERT_TRUE(later);
  EXPECT_EQ(later->status, 200);
  for (int fd : slow) close(fd);
  http.Stop();
}

TEST_F(HttpServerTest, ApiJobsIsPaginatedByDefault) {
  const v1::Model model = UploadFakeModel("tiny");
  for (int i = 0; i < 25; ++i) Submit(model.id(), "req-" + std::to_string(i));
  auto res = client_->Get("/api/jobs");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  v1::ListJobsResponse page;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(res->body, &page).ok());
  EXPECT_EQ(page.jobs_size(), 20);
  EXPECT_FALSE(page.next_page_token().empty());
  EXPECT_EQ(client_->Get("/api/jobs?page_size=1000")->status, 400);
}

}  // namespace
}  // namespace compressd::testing

namespace compressd::testing {
namespace {

TEST(HostCheckTest, LoopbackServesOnlyLoopbackNames) {
  const std::vector<std::string> loopback = DefaultAllowedHosts("127.0.0.1");
  EXPECT_TRUE(HostAllowed("127.0.0.1:8080", loopback));
  EXPECT_TRUE(HostAllowed("LOCALHOST:8080", loopback));
  EXPECT_TRUE(HostAllowed("localhost", loopback));
  EXPECT_TRUE(HostAllowed("[::1]:8080", loopback));
  EXPECT_FALSE(HostAllowed("attacker.example:8080", loopback));
  EXPECT_FALSE(HostAllowed("localhost.attacker.example", loopback));
  EXPECT_FALSE(HostAllowed("", loopback));
  EXPECT_FALSE(HostAllowed("[::1", loopback));
  EXPECT_FALSE(HostAllowed(":8080", loopback));
  // Bound elsewhere: any, unless named.
  EXPECT_TRUE(HostAllowed("10.0.0.7:8080", DefaultAllowedHosts("0.0.0.0")));
  EXPECT_TRUE(HostAllowed("compressd.internal:80", {"compressd.internal"}));
  EXPECT_FALSE(HostAllowed("10.0.0.7:8080", {"compressd.internal"}));
}

}  // namespace
}  // namespace compressd::testing
