// The dashboard's HTTP API and pages under the same policy as the RPCs they
// mirror (auth_matrix.h's fixture: tenant A's model, dataset and finished
// job with an artifact): every endpoint x every caller, by HTTP status.
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "server/http/http_server.h"
#include "tests/unit/server_edge/auth_matrix.h"

namespace compressd::testing::auth_matrix {
namespace {

using C = Caller;

struct HttpRow {
  std::string method;  // GET or POST
  std::string path;
  std::string body;
  std::map<Caller, int> want;  // status by caller
};

class HttpAuthMatrixTest : public AuthMatrixTest {
 protected:
  void SetUp() override {
    AuthMatrixTest::SetUp();
    if (HasFatalFailure()) return;
    HttpServerOptions options;
    options.auth = auth_.get();
    http_ = std::make_unique<HttpServer>(options, *registry_, Core(), nullptr);
    ASSERT_TRUE(http_->Start().ok());
  }
  void TearDown() override {
    if (http_) http_->Stop();
    AuthMatrixTest::TearDown();
  }
  int Call(const HttpRow& row, Caller caller, std::string* body) {
    httplib::Client client("127.0.0.1", http_->port());
    httplib::Headers headers = {{"X-Requested-By", "test"}};
    if (!keys_[caller].empty()) headers.emplace("Authorization", "Bearer " + keys_[caller]);
    auto res = row.method == "GET" ? client.Get(row.path.c_str(), headers)
                                   : client.Post(row.path.c_str(), headers, row.body,
                                                 "application/json");
    if (!res) return -1;
    *body = res->body;
    return res->status;
  }
  std::unique_ptr<HttpServer> http_;
};

// Reads: A's callers and the admin 200, B's 404 (as if it did not exist), a
// worker key 403, no key 401.
std::map<Caller, int> ReadOfA(int ok = 200) {
  return {{C::kAdmin, ok},     {C::kMemberA, ok},   {C::kViewerA, ok}, {C::kMemberB, 404},
          {C::kViewerB, 404}, {C::kWorker, 403}, {C::kNone, 401}};
}

TEST_F(HttpAuthMatrixTest, EveryEndpointForEveryRoleOnOwnAndForeignObjects) {
  const std::string submit =
      nlohmann::json{{"model_id", model_}, {"recipe", "stages: [{magnitude: {sparsity: 0.5}}]"}}
          .dump();
  std::map<Caller, int> pages = ReadOfA();
  pages[C::kWorker] = 401;  // the sign-in form, saying a worker key cannot open it
  const std::map<Caller, int> any_reader = {{C::kAdmin, 200},   {C::kMemberA, 200},
                                            {C::kViewerA, 200}, {C::kMemberB, 200},
                                            {C::kViewerB, 200}, {C::kWorker, 403},
                                            {C::kNone, 401}};
  const std::vector<HttpRow> rows = {
      {"GET", "/api/jobs/" + job_, "", ReadOfA()},
      {"GET", "/api/jobs/" + job_ + "/events", "", ReadOfA()},
      {"GET", "/api/jobs/" + job_ + "/recipe.yaml", "", ReadOfA()},
      {"GET", "/api/artifacts/" + artifact_, "", ReadOfA()},
      {"GET", "/api/models/" + model_, "", ReadOfA()},
      {"GET", "/jobs/" + job_, "", pages},
      {"GET", "/models/" + model_, "", pages},
      {"GET", "/api/jobs", "", any_reader},
      {"GET", "/api/models", "", any_reader},
      {"GET", "/api/datasets", "", any_reader},
      {"GET", "/api/workers", "", any_reader},
      {"GET", "/api/whoami", "", any_reader},
      // A's job is finished: those who may cancel it hear 409.
      {"POST", "/api/jobs/" + job_ + "/cancel", "{}",
       {{C::kAdmin, 409}, {C::kMemberA, 409}, {C::kViewerA, 403}, {C::kMemberB, 404},
        {C::kViewerB, 403}, {C::kWorker, 403}, {C::kNone, 401}}},
      {"POST", "/api/jobs", submit,
       {{C::kAdmin, 200}, {C::kMemberA, 200}, {C::kViewerA, 403}, {C::kMemberB, 404},
        {C::kViewerB, 403}, {C::kWorker, 403}, {C::kNone, 401}}},
  };
  for (const HttpRow& row : rows) {
    for (const auto& [caller, want] : row.want) {
      std::string body;
      EXPECT_EQ(Call(row, caller, &body), want)
          << row.method << " " << row.path << " as " << kCallerNames.at(caller) << ": " << body;
      // A foreign object's 404 says nothing about its tenant.
      if (want == 404) {
        EXPECT_EQ(body.find("team-a"), std::string::npos) << body;
      }
    }
  }
}

TEST_F(HttpAuthMatrixTest, ListsShowOnlyTheCallersTenant) {
  const HttpRow list = {"GET", "/api/jobs?order=newest", "", {}};
  std::string body;
  ASSERT_EQ(Call(list, C::kViewerA, &body), 200);
  EXPECT_NE(body.find(job_), std::string::npos);
  ASSERT_EQ(Call(list, C::kMemberB, &body), 200);
  EXPECT_EQ(body.find(job_), std::string::npos) << body;
  // A tenant filter from a non-admin is ignored, never widened.
  ASSERT_EQ(Call({"GET", "/api/jobs?tenant=team-a", "", {}}, C::kMemberB, &body), 200);
  EXPECT_EQ(body.find(job_), std::string::npos) << body;
  ASSERT_EQ(Call({"GET", "/api/jobs?tenant=team-b", "", {}}, C::kAdmin, &body), 200);
  EXPECT_EQ(body.find(job_), std::string::npos) << body;
  ASSERT_EQ(Call({"GET", "/api/jobs?tenant=team-a", "", {}}, C::kAdmin, &body), 200);
  EXPECT_NE(body.find(job_), std::string::npos) << body;
}

}  // namespace
}  // namespace compressd::testing::auth_matrix
