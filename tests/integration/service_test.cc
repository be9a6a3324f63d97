// End-to-end tests of the real binaries: compressd with local workers,
// compressctl, and compress-worker, on loopback ports.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_split.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "server/store/s3/s3_client.h"
#include "tests/integration/postgres.h"
#include "tests/integration/seaweed.h"
#include "tests/integration/safetensors_check.h"

namespace compressd::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::compressd::v1;
using std::chrono::milliseconds;

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \n\r\t");
  size_t e = s.find_last_not_of(" \n\r\t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Every test runs three times: the SQLite store with blobs in DATA/blobs
// ("local"); SQLite with blobs in an S3 bucket (SeaweedFS on loopback) and
// DATA/blobs as the cache ("s3"); and the store a cluster runs, PostgreSQL
// (a throwaway server, tests/integration/postgres.h) with S3 ("postgresql_s3").
class ServiceTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() {
    delete object_store_;
    object_store_ = nullptr;
    delete database_;
    database_ = nullptr;
  }
  bool WithS3() const { return GetParam() != "local"; }
  // The S3 flags of the "s3" variant (the object store started on first use).
  std::vector<std::string> BlobFlags() const {
    if (!WithS3()) return {};
    if (object_store_ == nullptr) {
      object_store_ = new SeaweedS3();
      std::string error;
      EXPECT_TRUE(object_store_->Start(MakeTempDir("object-store"), &error)) << error;
      ::setenv("AWS_ACCESS_KEY_ID", SeaweedS3::kAccessKey, 1);
      ::setenv("AWS_SECRET_ACCESS_KEY", SeaweedS3::kSecretKey, 1);
    }
    return {"--blobs", "s3://compressd/service-test", "--s3-endpoint", object_store_->endpoint()};
  }
  static SeaweedS3* object_store_;
  // The --store flag of the "postgresql_s3" variant: one database per test,
  // kept across the test's server restarts.
  std::vector<std::string> StoreFlags() {
    if (GetParam() != "postgresql_s3") return {};
    if (database_ == nullptr) {
      database_ = new PostgresServer();
      absl::Status started = database_->Start();
      EXPECT_TRUE(started.ok()) << started;
    }
    if (store_url_.empty()) store_url_ = database_->NewDatabase().value_or("");
    return {"--store", store_url_};
  }
  static PostgresServer* database_;
  std::string store_url_;

  void SetUp() override {
    root_ = MakeTempDir("root");
    model_dir_ = root_ + "/tiny-llama";
    CliResult made = RunBinary({BinDir() + "/make-tiny-llama", model_dir_});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    recipe_ = root_ + "/recipe.yaml";
    std::ofstream(recipe_) << "stages:\n  - magnitude: {sparsity: 0.5}\n"
                              "targets: {include: \".*_proj$\", ignore: [\"lm_head\"]}\n"
                              "output: {format: hf_safetensors}\n";
  }

  void StartServer(std::vector<std::string> flags) {
    for (const std::string& f : BlobFlags()) flags.push_back(f);
    for (const std::string& f : StoreFlags()) flags.push_back(f);
    ASSERT_TRUE(server_.Start(root_ + "/data", flags)) << ReadFile(root_ + "/compressd.stderr.log");
  }

  CliResult Cli(const std::vector<std::string>& args) { return RunCli(server_, args); }

  std::string UploadModel() {
    CliResult r = Cli({"models", "upload", model_dir_, "--name", "tiny"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }

  std::string Submit(const std::string& model_id, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"jobs", "submit", "--model", model_id, "--recipe", recipe_};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }

  v1::Job GetJob(const std::string& id) {
    auto stub = Stub();
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    grpc::Status st = stub->GetJob(&ctx, req, &job);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return job;
  }

  bool WaitForState(const std::string& id, v1::JobState state, milliseconds timeout) {
    return WaitFor([&] { return GetJob(id).state() == state; }, timeout);
  }

  std::unique_ptr<v1::CompressionService::Stub> Stub() {
    return v1::CompressionService::NewStub(server_.Channel());
  }

  // Checks the downloaded model: every targeted weight exactly 50% zeros and
  // every other tensor bit-identical to the input.
  void ExpectPrunedModel(const std::string& out_dir) {
    auto in = ReadSafetensorsDir(model_dir_);
    auto out = ReadSafetensorsDir(out_dir);
    ASSERT_FALSE(in.empty());
    ASSERT_EQ(in.size(), out.size());
    std::regex target(".*_proj\\.weight");
    int pruned = 0;
    for (const auto& [name, t] : in) {
      ASSERT_TRUE(out.count(name)) << name;
      const RawTensor& o = out.at(name);
      EXPECT_EQ(o.dtype, t.dtype) << name;
      EXPECT_EQ(o.shape, t.shape) << name;
      if (std::regex_match(name, target)) {
        EXPECT_NEAR(ZeroFraction(o), 0.5, 1e-9) << name;
        ++pruned;
      } else {
        EXPECT_TRUE(o.bytes == t.bytes) << name << " changed but is not targeted";
      }
    }
    EXPECT_EQ(pruned, 2 * 7);  // 2 layers x (q,k,v,o,gate,up,down)
    EXPECT_EQ(ReadFile(out_dir + "/config.json"), ReadFile(model_dir_ + "/config.json"));
  }

  std::string root_, model_dir_, recipe_;
  Server server_;
};
SeaweedS3* ServiceTest::object_store_ = nullptr;
PostgresServer* ServiceTest::database_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Stores, ServiceTest, ::testing::Values("local", "s3", "postgresql_s3"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST_P(ServiceTest, UploadSubmitWatchDownloadMagnitude) {
  StartServer({"--local-workers", "1"});
  std::string model_id = UploadModel();
  ASSERT_THAT(model_id, ::testing::StartsWith("mdl-"));

  std::string job_id = Submit(model_id);
  ASSERT_THAT(job_id, ::testing::StartsWith("job-"));
  CliResult watch = Cli({"jobs", "watch", job_id});
  EXPECT_EQ(watch.exit_code, 0) << watch.out << watch.err;
  EXPECT_THAT(watch.out, ::testing::HasSubstr("SUCCEEDED"));
  EXPECT_THAT(watch.out, ::testing::HasSubstr("model.layers.1.mlp.down_proj"));

  std::string out_dir = root_ + "/download";
  CliResult dl = Cli({"artifacts", "download", job_id, "--out", out_dir});
  ASSERT_EQ(dl.exit_code, 0) << dl.err;
  ExpectPrunedModel(out_dir);

  // A second download finds everything in place and changes nothing.
  CliResult again = Cli({"artifacts", "download", job_id, "--out", out_dir});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  ExpectPrunedModel(out_dir);
  if (WithS3()) {
    // The model's files and the job's outputs are objects in the bucket.
    s3::Client bucket({object_store_->endpoint(), "compressd",
                       {SeaweedS3::kAccessKey, SeaweedS3::kSecretKey}, 30, 1, ""});
    absl::StatusOr<std::vector<s3::ObjectInfo>> objects = bucket.List("service-test/sha256/");
    ASSERT_TRUE(objects.ok()) << objects.status();
    std::set<std::string> stored;
    for (const s3::ObjectInfo& o : *objects) stored.insert(o.key.substr(o.key.rfind('/') + 1));
    const v1::Job job = GetJob(job_id);
    for (const v1::Artifact& a : job.artifacts()) {
      EXPECT_EQ(stored.count(a.sha256()), 1u) << a.path();
    }
    EXPECT_GE(stored.size(), 3u);  // config.json (the same in and out) and two safetensors
  }
}

// A replica that starts with an empty cache (a new pod) serves every blob
// from the bucket: downloads, and the model a new job's worker fetches.
TEST_P(ServiceTest, BlobsOutliveTheLocalCache) {
  if (!WithS3()) GTEST_SKIP() << "only with an object store behind DATA/blobs";
  StartServer({"--local-workers", "1"});
  const std::string model_id = UploadModel();
  const std::string first = Submit(model_id);
  ASSERT_TRUE(WaitForState(first, v1::SUCCEEDED, milliseconds(60000)));
  ASSERT_EQ(server_.Stop(), 0);
  std::filesystem::remove_all(root_ + "/data/blobs");
  StartServer({"--local-workers", "1"});
  const std::string out_dir = root_ + "/download";
  CliResult dl = Cli({"artifacts", "download", first, "--out", out_dir});
  ASSERT_EQ(dl.exit_code, 0) << dl.err;
  ExpectPrunedModel(out_dir);
  const std::string second = Submit(model_id, {"--request-id", "after-cache-loss"});
  ASSERT_TRUE(WaitForState(second, v1::SUCCEEDED, milliseconds(60000)))
      << GetJob(second).DebugString();
}

TEST_P(ServiceTest, WatchResumesAfterSequenceWithoutGapsOrDuplicates) {
  StartServer({"--local-workers", "1"});
  std::string job_id = Submit(UploadModel());
  ASSERT_TRUE(WaitForState(job_id, v1::SUCCEEDED, milliseconds(60000)));

  auto read_all = [&](int64_t after) {
    auto stub = Stub();
    grpc::ClientContext ctx;
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_after_sequence(after);
    auto reader = stub->WatchJob(&ctx, req);
    std::vector<v1::JobEvent> events;
    v1::JobEvent ev;
    while (reader->Read(&ev)) events.push_back(ev);
    EXPECT_TRUE(reader->Finish().ok());
    return events;
  };
  std::vector<v1::JobEvent> all = read_all(0);
  ASSERT_GT(all.size(), 6u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].sequence(), static_cast<int64_t>(i + 1));
  EXPECT_EQ(all.back().state().to(), v1::SUCCEEDED);

  const int64_t k = 5;
  std::vector<v1::JobEvent> rest = read_all(k);
  ASSERT_EQ(rest.size(), all.size() - k);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].SerializeAsString(), all[i + k].SerializeAsString());
  }
}

TEST_P(ServiceTest, SubmitIsIdempotentByRequestId) {
  StartServer({});
  std::string model_id = UploadModel();
  std::string a = Submit(model_id, {"--request-id", "retry-me"});
  std::string b = Submit(model_id, {"--request-id", "retry-me"});
  std::string c = Submit(model_id, {"--request-id", "another"});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  CliResult list = Cli({"jobs", "list", "--state", "queued"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_THAT(list.out, ::testing::HasSubstr(a));
  EXPECT_THAT(list.out, ::testing::HasSubstr(c));
}

TEST_P(ServiceTest, CancelQueuedJobAndDeleteModelRules) {
  StartServer({});  // no workers: the job stays queued
  std::string model_id = UploadModel();
  std::string job_id = Submit(model_id);
  CliResult del = Cli({"models", "delete", model_id});
  EXPECT_NE(del.exit_code, 0);
  EXPECT_THAT(del.err, ::testing::HasSubstr("FAILED_PRECONDITION"));

  CliResult cancel = Cli({"jobs", "cancel", job_id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(GetJob(job_id).state(), v1::CANCELLED);
  CliResult again = Cli({"jobs", "cancel", job_id});
  EXPECT_THAT(again.err, ::testing::HasSubstr("FAILED_PRECONDITION"));
  CliResult watch = Cli({"jobs", "watch", job_id});
  EXPECT_NE(watch.exit_code, 0);

  EXPECT_EQ(Cli({"models", "delete", model_id}).exit_code, 0);
  CliResult get = Cli({"models", "get", model_id});
  EXPECT_THAT(get.err, ::testing::HasSubstr("NOT_FOUND"));
}

TEST_P(ServiceTest, QueuedJobSurvivesServerRestart) {
  StartServer({});
  std::string job_id = Submit(UploadModel());
  EXPECT_EQ(GetJob(job_id).state(), v1::QUEUED);
  ASSERT_EQ(server_.Stop(), 0);

  StartServer({"--local-workers", "1"});
  ASSERT_TRUE(WaitForState(job_id, v1::SUCCEEDED, milliseconds(60000)));
  std::string out_dir = root_ + "/download";
  ASSERT_EQ(Cli({"artifacts", "download", job_id, "--out", out_dir}).exit_code, 0);
  ExpectPrunedModel(out_dir);
}

// Drain: on SIGTERM an idle WatchJob stream ends at once with UNAVAILABLE
// naming the sequence to resume after (its client moves to another replica),
// not at the end of the 30 s shutdown grace.
TEST_P(ServiceTest, SigtermEndsIdleWatchStreamsAtOnceForClientsToReconnect) {
  StartServer({"--shutdown-grace-ms", "30000"});
  const std::string job_id = Submit(UploadModel());  // no worker: stays QUEUED
  auto stub = Stub();
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_job_id(job_id);
  auto reader = stub->WatchJob(&ctx, req);
  v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  const auto start = std::chrono::steady_clock::now();
  server_.process().Signal(SIGTERM);
  while (reader->Read(&event)) {
  }
  const grpc::Status status = reader->Finish();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("after_sequence 1"));
  EXPECT_EQ(server_.process().Wait(milliseconds(30000)), 0);
}

// Starts a compress-worker outside compressd (as on another machine), slowed
// down so that the test can act while a job is mid-run.
void StartSlowWorker(Process& worker, const Server& server, const std::string& dir, int slow_ms) {
  fs::create_directories(dir);
  ASSERT_TRUE(worker.Start({BinDir() + "/compress-worker", "--server", server.grpc_address(),
                            "--key-file", server.worker_key_file(), "--cache-dir", dir + "/cache",
                            "--slow-ms-per-layer", std::to_string(slow_ms)},
                           dir + "/worker.stderr.log"));
}

std::vector<v1::JobEvent> AllEvents(v1::CompressionService::Stub& stub, const std::string& job) {
  grpc::ClientContext ctx;
  v1::WatchJobRequest req;
  req.set_job_id(job);
  auto reader = stub.WatchJob(&ctx, req);
  std::vector<v1::JobEvent> events;
  v1::JobEvent ev;
  while (reader->Read(&ev)) events.push_back(ev);
  EXPECT_TRUE(reader->Finish().ok());
  return events;
}

TEST_P(ServiceTest, KilledWorkerLosesLeaseAndTheJobIsRetried) {
  StartServer({"--lease-ttl-ms", "1500", "--heartbeat-interval-ms", "300"});
  std::string job_id = Submit(UploadModel());
  Process doomed;
  StartSlowWorker(doomed, server_, root_ + "/worker-a", 400);
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::Job job = GetJob(job_id);
        return job.state() == v1::RUNNING && job.progress().stage() == "prune" &&
               job.progress().current() >= 2;
      },
      milliseconds(60000)));
  doomed.Signal(SIGKILL);
  EXPECT_EQ(doomed.Wait(milliseconds(5000)), 128 + SIGKILL);

  Process rescuer;
  StartSlowWorker(rescuer, server_, root_ + "/worker-b", 0);
  ASSERT_TRUE(WaitForState(job_id, v1::SUCCEEDED, milliseconds(60000)));
  v1::Job job = GetJob(job_id);
  EXPECT_EQ(job.attempts(), 2);

  // The history shows the lost lease and the second attempt.
  std::vector<v1::JobEvent> events = AllEvents(*Stub(), job_id);
  std::vector<std::pair<v1::JobState, v1::JobState>> transitions;
  for (const auto& e : events) {
    if (e.has_state()) transitions.push_back({e.state().from(), e.state().to()});
  }
  std::vector<std::pair<v1::JobState, v1::JobState>> expected = {
      {v1::JOB_STATE_UNSPECIFIED, v1::QUEUED}, {v1::QUEUED, v1::RUNNING},
      {v1::RUNNING, v1::QUEUED},               {v1::QUEUED, v1::RUNNING},
      {v1::RUNNING, v1::SUCCEEDED}};
  EXPECT_EQ(transitions, expected);

  std::string out_dir = root_ + "/download";
  ASSERT_EQ(Cli({"artifacts", "download", job_id, "--out", out_dir}).exit_code, 0);
  ExpectPrunedModel(out_dir);
}

// A worker whose --memory-budget is under a job's estimate refuses it
// without spending an attempt; the job waits, its reason in `jobs get`,
// until a worker with enough memory connects and runs it.
TEST_P(ServiceTest, AJobTooLargeForTheWorkerWaitsForOneWithEnoughMemory) {
  StartServer({"--heartbeat-interval-ms", "300"});
  std::ofstream(recipe_) << "stages:\n  - rtn: {grid: {bits: 8}}\n"
                            "targets: {include: \".*_proj$\"}\n";  // the model path: estimated
  const std::string job_id = Submit(UploadModel());
  auto start = [&](Process& worker, const std::string& name, const std::string& budget) {
    fs::create_directories(root_ + "/" + name);
    ASSERT_TRUE(worker.Start({BinDir() + "/compress-worker", "--server", server_.grpc_address(),
                              "--key-file", server_.worker_key_file(), "--cache-dir",
                              root_ + "/" + name + "/cache", "--memory-budget", budget},
                             root_ + "/" + name + "/worker.stderr.log"));
  };
  Process small;
  start(small, "small", "32M");  // under the process alone
  ASSERT_TRUE(WaitFor([&] { return !GetJob(job_id).waiting_reason().empty(); },
                      milliseconds(60000)));
  v1::Job waiting = GetJob(job_id);
  EXPECT_EQ(waiting.state(), v1::QUEUED);
  EXPECT_EQ(waiting.attempts(), 0);
  EXPECT_GT(waiting.memory_needed_bytes(), uint64_t{32} << 20);
  EXPECT_THAT(waiting.waiting_reason(), ::testing::HasSubstr("needs an estimated"));
  CliResult get = Cli({"jobs", "get", job_id});
  EXPECT_THAT(get.out, ::testing::HasSubstr("waiting:"));
  EXPECT_THAT(get.out, ::testing::HasSubstr("--memory-budget"));
  Process large;
  start(large, "large", "8G");
  ASSERT_TRUE(WaitForState(job_id, v1::SUCCEEDED, milliseconds(60000)));
  EXPECT_EQ(GetJob(job_id).attempts(), 1);
}

TEST_P(ServiceTest, JobFailsWhenEveryAttemptLosesItsWorker) {
  StartServer({"--lease-ttl-ms", "1000", "--heartbeat-interval-ms", "200"});
  std::string job_id = Submit(UploadModel(), {"--max-attempts", "1"});
  Process doomed;
  StartSlowWorker(doomed, server_, root_ + "/worker-a", 400);
  ASSERT_TRUE(WaitForState(job_id, v1::RUNNING, milliseconds(60000)));
  doomed.Signal(SIGKILL);
  doomed.Wait(milliseconds(5000));
  ASSERT_TRUE(WaitForState(job_id, v1::FAILED, milliseconds(30000)));
  EXPECT_THAT(GetJob(job_id).error(), ::testing::HasSubstr("lease expired"));
  CliResult watch = Cli({"jobs", "watch", job_id});
  EXPECT_NE(watch.exit_code, 0);
}

TEST_P(ServiceTest, CancelReachesRunningWorkerWhichTakesTheNextJob) {
  StartServer({"--heartbeat-interval-ms", "300"});
  std::string model_id = UploadModel();
  std::string first = Submit(model_id);
  Process worker;
  StartSlowWorker(worker, server_, root_ + "/worker", 300);
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::Job job = GetJob(first);
        return job.state() == v1::RUNNING && job.progress().stage() == "prune";
      },
      milliseconds(60000)));
  CliResult cancel = Cli({"jobs", "cancel", first});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(GetJob(first).state(), v1::CANCELLED);

  // The same (only) worker is freed by its next heartbeat and runs the next job;
  // at 300 ms per layer, finishing 14 layers of the first job would take 4 s more.
  std::string second = Submit(model_id);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitForState(second, v1::RUNNING, milliseconds(30000)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3000));
  EXPECT_TRUE(GetJob(first).artifacts().empty());
  ASSERT_TRUE(WaitForState(second, v1::SUCCEEDED, milliseconds(60000)));
  EXPECT_EQ(GetJob(first).state(), v1::CANCELLED);
}

TEST_P(ServiceTest, LocalRunTakesACheckpointDir) {
  const std::string out = root_ + "/local-out";
  CliResult run = RunBinary({BinDir() + "/compress-worker", "run", "--model", model_dir_, "--recipe",
                             recipe_, "--out", out, "--checkpoint-dir", root_ + "/ckpt"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ExpectPrunedModel(out);
  CliResult empty = RunBinary({BinDir() + "/compress-worker", "run", "--model", model_dir_,
                               "--recipe", recipe_, "--out", out, "--checkpoint-dir", ""});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_THAT(empty.err, ::testing::HasSubstr("--checkpoint-dir"));
}

TEST_P(ServiceTest, HealthReadinessAndMetricsOverHttp) {
  StartServer({"--local-workers", "1"});
  std::string job_id = Submit(UploadModel());
  ASSERT_TRUE(WaitForState(job_id, v1::SUCCEEDED, milliseconds(60000)));
  auto get = [&](const std::string& path, const std::string& key = "") {
    std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-w", "\n%{http_code}",
                                     "http://" + server_.http_address() + path};
    if (!key.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + key});
    return RunBinary(argv);
  };
  EXPECT_THAT(get("/healthz").out, ::testing::EndsWith("200"));
  EXPECT_THAT(get("/readyz").out, ::testing::EndsWith("200"));
  std::string metrics = get("/metrics").out;
  EXPECT_THAT(metrics, ::testing::HasSubstr("compressd_jobs{state=\"SUCCEEDED\"} 1"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("compressd_queue_depth 0"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("compressd_workers_connected 1"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("compressd_rpc_total{"));
  EXPECT_THAT(metrics, ::testing::HasSubstr("compressd_bytes_uploaded_total"));
  // The dashboard needs a key: the login form (401) without one.
  EXPECT_THAT(get("/").out, ::testing::EndsWith("401"));
  EXPECT_THAT(get("/api/jobs").out, ::testing::EndsWith("401"));
  EXPECT_THAT(get("/", server_.admin_key()).out, ::testing::HasSubstr("data-page=\"jobs\""));
  EXPECT_THAT(get("/api/jobs?order=newest", server_.admin_key()).out,
              ::testing::HasSubstr(job_id));
  EXPECT_THAT(get("/jobs/" + job_id, server_.admin_key()).out, ::testing::EndsWith("200"));
}

}  // namespace
}  // namespace compressd::testing
