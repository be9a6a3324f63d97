// The dashboard's JSON API and pages over a real socket, driven by the
// fixture's fake worker: newest-first pagination and filters, the events
// poll (and its long-poll wake-up), cancel and submit (with the CSRF header
// check), artifact downloads with ranges, workers, and the embedded assets.
#include <google/protobuf/util/json_util.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "common/recipe.h"
#include "nlohmann/json.hpp"
#include "server/http/dashboard.h"
#include "server/http/http_server.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

const httplib::Headers kCsrf = {{"X-Requested-By", "test"}};

class DashboardApiTest : public EdgeTest {
 protected:
  void SetUp() override {
    EdgeTest::SetUp();
    if (HasFatalFailure()) return;
    http_ = std::make_unique<HttpServer>(HttpServerOptions{}, *registry_, Core(), nullptr);
    ASSERT_TRUE(http_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", http_->port());
    client_->set_read_timeout(15);
  }
  void TearDown() override {
    if (http_) http_->Stop();
    EdgeTest::TearDown();
  }
  json GetJson(const std::string& path, int want = 200) {
    auto res = client_->Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return json();
    EXPECT_EQ(res->status, want) << path << ": " << res->body;
    return json::parse(res->body, nullptr, false);
  }

  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(DashboardApiTest, JobsPageNewestFirstWithoutOverlapAndFilteredByModel) {
  const v1::Model a = UploadFakeModel("a");
  const v1::Model b = UploadFakeModel("b");
  std::vector<std::string> a_jobs;
  for (int i = 0; i < 7; ++i) {
    a_jobs.push_back(Submit(a.id(), "a" + std::to_string(i)).id());
    Submit(b.id(), "b" + std::to_string(i));
  }
  std::vector<std::string> seen;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    json resp = GetJson("/api/jobs?order=newest&page_size=3&model=" + a.id() +
                        (token.empty() ? "" : "&page_token=" + token));
    for (const json& job : resp["jobs"]) {
      EXPECT_EQ(job["modelId"], a.id());
      seen.push_back(job["id"]);
    }
    token = resp.value("nextPageToken", "");
    if (token.empty()) break;
  }
  // Every job of model a exactly once, newest (last submitted) first.
  std::vector<std::string> want(a_jobs.rbegin(), a_jobs.rend());
  EXPECT_EQ(seen, want);
  EXPECT_EQ(GetJson("/api/jobs?order=sideways", 400)["message"],
            "order: must be newest or oldest, got \"sideways\"");
}

TEST_F(DashboardApiTest, EventsPollReturnsTheJobsEventsAndWakesOnNewOnes) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  const std::string worker = RegisterWorker();
  const v1::Task task = Lease(worker);
  ASSERT_EQ(task.job_id(), job.id());
  ASSERT_TRUE(ReportLog(task, "first line").ok());

  json resp = GetJson("/api/jobs/" + job.id() + "/events?after=0");
  EXPECT_EQ(resp["job"]["state"], "RUNNING");
  ASSERT_GE(resp["events"].size(), 2u);
  int64_t last = 0;
  for (const json& e : resp["events"]) {
    const int64_t seq = std::stoll(e["sequence"].get<std::string>());
    EXPECT_EQ(seq, last + 1);  // every event, in order, from 1
    last = seq;
  }
  EXPECT_EQ(resp["events"].back()["log"]["message"], "first line");

  // A long-poll after the last event returns as soon as the next arrives.
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(ReportLog(task, "second line").ok());
  });
  const auto start = std::chrono::steady_clock::now();
  resp = GetJson("/api/jobs/" + job.id() + "/events?wait_ms=10000&after=" + std::to_string(last));
  later.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  ASSERT_EQ(resp["events"].size(), 1u);
  EXPECT_EQ(resp["events"][0]["log"]["message"], "second line");

  EXPECT_THAT(GetJson("/api/jobs/nope/events", 404)["message"].get<std::string>(),
              HasSubstr("nope"));
  EXPECT_EQ(GetJson("/api/jobs/" + job.id() + "/events?wait_ms=60000", 400)["code"],
            "INVALID_ARGUMENT");
}

TEST_F(DashboardApiTest, CancelNeedsTheCsrfHeaderAndIsOnce) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  const std::string path = "/api/jobs/" + job.id() + "/cancel";
  auto forged = client_->Post(path.c_str(), "{}", "application/json");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 403);
  EXPECT_THAT(forged->body, HasSubstr("X-Requested-By"));
  EXPECT_EQ(GetJson("/api/jobs/" + job.id())["state"], "QUEUED");

  auto res = client_->Post(path.c_str(), kCsrf, "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(GetJson("/api/jobs/" + job.id())["state"], "CANCELLED");
  res = client_->Post(path.c_str(), kCsrf, "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 409);
  EXPECT_THAT(res->body, HasSubstr("already CANCELLED"));
}

TEST_F(DashboardApiTest, ResubmitTheRecipeYamlWithChanges) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  auto yaml = client_->Get(("/api/jobs/" + job.id() + "/recipe.yaml").c_str());
  ASSERT_TRUE(yaml);
  ASSERT_EQ(yaml->status, 200);
  const std::string text = json::parse(yaml->body).get<std::string>();
  absl::StatusOr<v1::Recipe> parsed = ParseRecipeText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->SerializeAsString(), job.recipe().SerializeAsString()) << text;

  // The same recipe at another sparsity, as the job page's form sends it.
  std::string changed = text;
  const size_t at = changed.find("sparsity: 0.5");
  ASSERT_NE(at, std::string::npos) << text;
  changed.replace(at, 13, "sparsity: 0.25");
  const json body = {{"model_id", model.id()}, {"recipe", changed}};
  auto res = client_->Post("/api/jobs", kCsrf, body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json created = json::parse(res->body);
  EXPECT_NE(created["id"], job.id());
  EXPECT_EQ(created["recipe"]["stages"][0]["magnitude"]["sparsity"], 0.25);

  const json bad = {{"model_id", model.id()}, {"recipe", "stages: [{magnitude: {sparsity: 2}}]"}};
  res = client_->Post("/api/jobs", kCsrf, bad.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("stages[0].magnitude.sparsity"));
  res = client_->Post("/api/jobs", kCsrf, "not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(DashboardApiTest, ArtifactDownloadsWholeAndByRange) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  const v1::Task task = Lease(RegisterWorker());
  v1::Artifact artifact;
  ASSERT_TRUE(UploadArtifact(task, "out/model.bin", "hello, world", &artifact).ok());
  const std::string path = "/api/artifacts/" + artifact.id();
  auto whole = client_->Get(path.c_str());
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->status, 200);
  EXPECT_EQ(whole->body, "hello, world");
  EXPECT_THAT(whole->get_header_value("Content-Disposition"), HasSubstr("model.bin"));
  EXPECT_EQ(whole->get_header_value("X-Content-Sha256"), artifact.sha256());

  auto tail = client_->Get(path.c_str(), {{"Range", "bytes=7-"}});
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->status, 206);
  EXPECT_EQ(tail->body, "world");
  EXPECT_EQ(tail->get_header_value("Content-Range"), "bytes 7-11/12");
  auto mid = client_->Get(path.c_str(), {{"Range", "bytes=0-4"}});
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->body, "hello");
  auto past = client_->Get(path.c_str(), {{"Range", "bytes=12-"}});
  ASSERT_TRUE(past);
  EXPECT_EQ(past->status, 416);
  EXPECT_EQ(GetJson("/api/artifacts/missing", 404)["code"], "NOT_FOUND");
}

TEST_F(DashboardApiTest, WorkersShowWhatEachHolds) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  const std::string busy = RegisterWorker();
  const std::string idle = RegisterWorker();
  ASSERT_EQ(Lease(busy).job_id(), job.id());
  const json resp = GetJson("/api/workers");
  ASSERT_EQ(resp["workers"].size(), 2u);
  std::set<std::string> states;
  for (const json& w : resp["workers"]) {
    EXPECT_EQ(w["device"], "cpu");
    if (w["worker_id"] == busy) {
      EXPECT_TRUE(w["busy"].get<bool>());
      EXPECT_EQ(w["job_id"], job.id());
      EXPECT_GE(w["lease_age_ms"].get<int64_t>(), 0);
    } else {
      EXPECT_EQ(w["worker_id"], idle);
      EXPECT_FALSE(w["busy"].get<bool>());
      EXPECT_EQ(w["job_id"], "");
    }
  }
}

TEST_F(DashboardApiTest, ModelPageHasItsJobsAndArchitecture) {
  const v1::Model a = UploadFakeModel("a");
  const v1::Model b = UploadFakeModel("b");
  const v1::Job job = Submit(a.id(), "r");
  Submit(b.id(), "other");
  const json resp = GetJson("/api/models/" + a.id());
  EXPECT_EQ(resp["model"]["id"], a.id());
  ASSERT_EQ(resp["jobs"]["jobs"].size(), 1u);
  EXPECT_EQ(resp["jobs"]["jobs"][0]["id"], job.id());
  // The fake HF model's config.json, read at upload.
  EXPECT_FALSE(resp["model"]["architecture"].empty()) << resp["model"].dump();
  EXPECT_EQ(GetJson("/api/models")["models"].size(), 2u);
  GetJson("/api/models/mdl-missing", 404);
}

TEST_F(DashboardApiTest, PagesAndEmbeddedAssets) {
  const v1::Model model = UploadFakeModel("m");
  const v1::Job job = Submit(model.id(), "r");
  for (const char* path : {"/", "/jobs", "/models", "/datasets", "/workers"}) {
    auto res = client_->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << path;
  }
  auto page = client_->Get(("/jobs/" + job.id()).c_str());
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("data-id=\"" + job.id() + "\""));
  auto missing = client_->Get("/jobs/job-nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, HasSubstr("job-nope"));

  auto chart = client_->Get("/static/chart.js");
  ASSERT_TRUE(chart);
  EXPECT_EQ(chart->status, 200);
  EXPECT_THAT(chart->body.substr(0, 200), HasSubstr("Chart.js v3"));
  EXPECT_EQ(chart->body, std::string(DashboardAsset("chart.js")));
  EXPECT_GT(DashboardAsset("app.js").size(), 1000u);
  EXPECT_THAT(std::string(DashboardAsset("app.css")), HasSubstr("@media"));
  EXPECT_EQ(client_->Get("/static/other.js")->status, 404);
}

}  // namespace
}  // namespace compressd::testing
