// The client's network behaviour against an in-process fake server: watch
// reconnects without missing or repeating events, submit retries reuse the
// request id, downloads resume and verify, uploads send what was listed.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/app.h"
#include "client/cli/connection.h"
#include "client/cli/context.h"
#include "client/commands/artifacts.h"
#include "client/commands/jobs.h"
#include "client/commands/watch.h"
#include "common/sha256.h"
#include "fake_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace compressd::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using testing::FakeServer;
using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::JobEvent StateEvent(int64_t seq, v1::JobState from, v1::JobState to) {
  v1::JobEvent e;
  e.set_sequence(seq);
  e.mutable_state()->set_from(from);
  e.mutable_state()->set_to(to);
  return e;
}

v1::JobEvent MetricEvent(int64_t seq, const std::string& name, double value) {
  v1::JobEvent e;
  e.set_sequence(seq);
  e.mutable_metric()->set_name(name);
  e.mutable_metric()->set_value(value);
  (*e.mutable_metric()->mutable_labels())["layer"] = "model.layers.0.mlp.up_proj";
  return e;
}

v1::JobEvent LogEvent(int64_t seq, const std::string& message) {
  v1::JobEvent e;
  e.set_sequence(seq);
  e.mutable_log()->set_level("info");
  e.mutable_log()->set_message(message);
  return e;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class FakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.service().job.set_id("job-1");
    server_.service().job.set_state(v1::SUCCEEDED);
    std::string templ = ::testing::TempDir() + "/fake_server_test_XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Connection> Connect() {
    absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(server_.address());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  absl::Status Watch(bool json) {
    invocation_.json = json;
    CommandContext context(invocation_, Io{out_, err_, false}, Connect());
    WatchOptions options;
    options.initial_backoff = std::chrono::milliseconds(1);
    return WatchUntilDone(context, "job-1", options);
  }

  FakeServer server_;
  fs::path dir_;
  Invocation invocation_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(FakeServerTest, WatchReconnectsFromLastSequenceWithoutDuplicates) {
  auto& svc = server_.service();
  svc.events = {StateEvent(1, v1::QUEUED, v1::RUNNING), MetricEvent(2, "sparsity", 0.5),
                MetricEvent(3, "seconds", 0.0125), LogEvent(4, "exported"),
                StateEvent(5, v1::RUNNING, v1::SUCCEEDED)};
  svc.break_after = {3, 4};
  svc.resend_last_on_reconnect = true;
  ASSERT_TRUE(Watch(false).ok()) << err_.str();
  EXPECT_THAT(svc.WatchAfterSequences(), ElementsAre(0, 3, 4));
  EXPECT_THAT(Lines(out_.str()),
              ElementsAre("state QUEUED -> RUNNING",
                          "layer model.layers.0.mlp.up_proj sparsity=0.500 seconds=0.01",
                          "[info] exported", "state RUNNING -> SUCCEEDED"));
  EXPECT_THAT(err_.str(), HasSubstr("reconnecting"));
}

TEST_F(FakeServerTest, WatchJsonLinesAndFailedJob) {
  auto& svc = server_.service();
  svc.job.set_state(v1::FAILED);
  svc.job.set_error("worker crashed");
  svc.events = {StateEvent(1, v1::QUEUED, v1::RUNNING), StateEvent(2, v1::RUNNING, v1::FAILED)};
  absl::Status s = Watch(true);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(s.message(), HasSubstr("worker crashed"));
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["state"]["to"], "FAILED");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["sequence"], "2");
}

TEST_F(FakeServerTest, WatchGivesUpAfterRepeatedFailures) {
  auto& svc = server_.service();
  svc.job.set_state(v1::RUNNING);
  svc.events = {StateEvent(1, v1::QUEUED, v1::RUNNING)};
  svc.break_after = {1};  // later calls send nothing and end OK while the job still runs
  EXPECT_EQ(Watch(false).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(svc.WatchAfterSequences().size(), WatchOptions().max_reconnects + 1u);
}

TEST_F(FakeServerTest, SubmitRetriesWithTheSameRequestId) {
  server_.service().submit_unavailable = 2;
  std::unique_ptr<Connection> connection = Connect();
  v1::SubmitJobRequest request;
  request.set_model_id("m-1");
  request.set_request_id("req-abc");
  RetryPolicy policy;
  policy.initial_backoff = std::chrono::milliseconds(1);
  absl::StatusOr<v1::Job> job = SubmitWithRetry(*connection, request, policy, err_);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), "job-1");
  EXPECT_THAT(server_.service().SubmitRequestIds(), ElementsAre("req-abc", "req-abc", "req-abc"));

  request.clear_model_id();  // INVALID_ARGUMENT is not retried
  EXPECT_EQ(SubmitWithRetry(*connection, request, policy, err_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.service().SubmitRequestIds().size(), 4u);
}

TEST_F(FakeServerTest, SubmitNamesTheRecipeFileInTheServersRecipeErrors) {
  const std::string recipe = (dir_ / "bad.yaml").string();
  std::ofstream(recipe) << "stages: [{magnitude: {pattern: \"4:2\"}}]\n";
  const int code = RunCompressctl(
      {"--server", server_.address(), "jobs", "submit", "--model", "m-1", "--recipe", recipe},
      Io{out_, err_, false}, nullptr);
  EXPECT_EQ(code, kExitFailure);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT: " + recipe + ": stages[0].magnitude.pattern"));
  EXPECT_THAT(err_.str(), HasSubstr("\"4:2\""));
}

TEST_F(FakeServerTest, DownloadResumesFromPartFileAndVerifies) {
  auto& svc = server_.service();
  svc.artifact_content = std::string(1 << 20, 'x') + std::string(700000, 'y');
  svc.artifact_sha256 = Sha256Hex(svc.artifact_content);
  svc.download_break_at = 1 << 20;  // the first stream breaks after its 4th chunk
  v1::Artifact artifact;
  artifact.set_id("art-1");
  artifact.set_path("model.safetensors");
  artifact.set_size(svc.artifact_content.size());
  artifact.set_sha256(svc.artifact_sha256);
  const std::string dest = (dir_ / "out/model.safetensors").string();
  fs::create_directories(dir_ / "out");
  std::ofstream(dest + ".part", std::ios::binary) << svc.artifact_content.substr(0, 1000);

  std::unique_ptr<Connection> connection = Connect();
  absl::StatusOr<DownloadResult> result = DownloadArtifactTo(*connection, artifact, dest, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, DownloadResult::kDownloaded);
  EXPECT_THAT(svc.DownloadOffsets(), ElementsAre(1000u, 1000u + 4 * 256 * 1024));
  EXPECT_EQ(*Sha256File(dest), svc.artifact_sha256);
  EXPECT_FALSE(fs::exists(dest + ".part"));

  result = DownloadArtifactTo(*connection, artifact, dest, nullptr);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, DownloadResult::kUpToDate);
  EXPECT_EQ(svc.DownloadOffsets().size(), 2u);  // no new request
}

TEST_F(FakeServerTest, DownloadRestartsWhenResumedPartIsCorrupt) {
  auto& svc = server_.service();
  svc.artifact_content = std::string(300000, 'a');
  svc.artifact_sha256 = Sha256Hex(svc.artifact_content);
  v1::Artifact artifact;
  artifact.set_id("art-1");
  artifact.set_path("model.safetensors");
  artifact.set_size(svc.artifact_content.size());
  artifact.set_sha256(svc.artifact_sha256);
  const std::string dest = (dir_ / "model.safetensors").string();
  std::ofstream(dest + ".part", std::ios::binary) << std::string(1000, 'z');  // not a prefix
  std::unique_ptr<Connection> connection = Connect();
  absl::StatusOr<DownloadResult> result = DownloadArtifactTo(*connection, artifact, dest, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(svc.DownloadOffsets(), ElementsAre(1000u, 0u));
  EXPECT_EQ(*Sha256File(dest), svc.artifact_sha256);
}

TEST_F(FakeServerTest, DownloadChecksumMismatchIsDataLoss) {
  auto& svc = server_.service();
  svc.artifact_content = "tensor bytes";
  svc.artifact_sha256 = Sha256Hex("other bytes");
  v1::Artifact artifact;
  artifact.set_id("art-1");
  artifact.set_path("model.safetensors");
  artifact.set_size(svc.artifact_content.size());
  const std::string dest = (dir_ / "model.safetensors").string();
  std::unique_ptr<Connection> connection = Connect();
  absl::Status s = DownloadArtifactTo(*connection, artifact, dest, nullptr).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("sha256 mismatch"));
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_FALSE(fs::exists(dest + ".part"));
}

TEST_F(FakeServerTest, ModelsUploadPrintsIdAndSendsEveryFile) {
  fs::create_directories(dir_ / "tiny");
  std::ofstream(dir_ / "tiny/config.json") << "{\"model_type\": \"llama\"}";
  const std::string weights(1500000, 'w');
  std::ofstream(dir_ / "tiny/model.safetensors", std::ios::binary) << weights;
  const int code = RunCompressctl({"--server", server_.address(), "models", "upload",
                                   (dir_ / "tiny").string(), "--name", "tiny-llama"},
                                  Io{out_, err_, false}, nullptr);
  ASSERT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "model-fake1\n");
  v1::UploadModelHeader header = server_.service().UploadedHeader();
  EXPECT_EQ(header.name(), "tiny-llama");
  EXPECT_EQ(header.format(), v1::HF_SAFETENSORS);
  ASSERT_EQ(header.files_size(), 2);
  EXPECT_EQ(header.files(1).path(), "model.safetensors");
  EXPECT_EQ(header.files(1).size(), weights.size());
  EXPECT_EQ(header.files(1).sha256(), Sha256Hex(weights));
  EXPECT_THAT(server_.service().UploadedData(),
              ElementsAre("{\"model_type\": \"llama\"}", weights));
}

TEST_F(FakeServerTest, JsonOutputUsesProtoFieldNames) {
  const int code = RunCompressctl({"--server", server_.address(), "--json", "jobs", "get", "job-1"},
                                  Io{out_, err_, false}, nullptr);
  ASSERT_EQ(code, kExitOk) << err_.str();
  nlohmann::json job = nlohmann::json::parse(out_.str());
  EXPECT_EQ(job["id"], "job-1");
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_TRUE(job.contains("model_id"));

  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(RunCompressctl({"--server", server_.address(), "jobs", "get", "job-404"},
                           Io{out, err, false}, nullptr),
            kExitFailure);
  EXPECT_EQ(err.str(), "error: NOT_FOUND: no job\n");
}

TEST(ConnectionTest, UnreachableServerFailsFast) {
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Open("127.0.0.1:1", {}, std::chrono::milliseconds(200));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(c.status().message(), "cannot reach compressd at 127.0.0.1:1");
}

}  // namespace
}  // namespace compressd::client
