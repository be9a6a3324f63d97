// Several compressd replicas on one PostgreSQL database and one S3 bucket,
// with the real binaries: jobs submitted round-robin, workers on different
// replicas, one replica killed with SIGKILL and restarted mid-way, watch
// streams moving to another replica; and replicas leasing to many workers at
// once. PostgreSQL and SeaweedFS are started on loopback by the test.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "compressd/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/postgres.h"
#include "tests/integration/seaweed.h"

namespace compressd::testing {
namespace {

namespace v1 = ::compressd::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("root");
    absl::Status started = database_.Start();
    ASSERT_TRUE(started.ok()) << started;
    absl::StatusOr<std::string> url = database_.NewDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    std::string error;
    ASSERT_TRUE(bucket_.Start(root_ + "/s3", &error)) << error;
    ::setenv("AWS_ACCESS_KEY_ID", SeaweedS3::kAccessKey, 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", SeaweedS3::kSecretKey, 1);
    // The secret keys are hashed with: one for every replica (a Kubernetes Secret).
    std::ofstream(root_ + "/server.secret") << std::string(64, 'a') << "\n";
    std::filesystem::permissions(root_ + "/server.secret", std::filesystem::perms::owner_read |
                                                                std::filesystem::perms::owner_write);
    model_dir_ = root_ + "/tiny-llama";
    ASSERT_EQ(RunBinary({BinDir() + "/make-tiny-llama", model_dir_}).exit_code, 0);
    recipe_ = root_ + "/recipe.yaml";
    std::ofstream(recipe_) << "stages:\n  - magnitude: {sparsity: 0.5}\n"
                              "targets: {include: \".*_proj$\", ignore: [\"lm_head\"]}\n"
                              "output: {format: hf_safetensors}\n";
  }

  // Replica i on data directory ROOT/rI/data; `port` 0: any.
  void StartReplica(int i, int port = 0) {
    std::vector<std::string> flags = {
        "--store", url_, "--blobs", "s3://compressd/replicas", "--s3-endpoint",
        bucket_.endpoint(), "--server-secret-file", root_ + "/server.secret", "--lease-ttl-ms",
        "4000", "--heartbeat-interval-ms", "500"};
    if (port > 0) flags.insert(flags.end(), {"--grpc-port", std::to_string(port)});
    ASSERT_TRUE(replicas_[i].Start(absl::StrCat(root_, "/r", i, "/data"), flags))
        << ReadFile(absl::StrCat(root_, "/r", i, "/compressd.stderr.log"));
  }
  int PortOf(int i) {
    const std::string& a = replicas_[i].grpc_address();
    return std::atoi(a.substr(a.rfind(':') + 1).c_str());
  }
  std::unique_ptr<v1::CompressionService::Stub> Api(int i) {
    return v1::CompressionService::NewStub(replicas_[i].Channel());
  }
  v1::Job GetJob(int i, const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    (void)Api(i)->GetJob(&ctx, req, &job);
    return job;
  }
  std::string Submit(int i, const std::string& model) {
    CliResult r = RunCli(replicas_[i].grpc_address(),
                         {"jobs", "submit", "--model", model, "--recipe", recipe_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }

  PostgresServer database_;
  SeaweedS3 bucket_;
  std::string root_, url_, model_dir_, recipe_;
  Server replicas_[3];
};

// Follows a job's events from replica `first`, moving to the next replica
// (after_sequence: the last one seen) whenever its stream breaks, until the
// job's terminal event.
std::vector<v1::JobEvent> Follow(Server* replicas, const std::string& job,
                                 int first, std::chrono::steady_clock::time_point deadline) {
  std::vector<v1::JobEvent> events;
  for (int r = first; std::chrono::steady_clock::now() < deadline; r = (r + 1) % 3) {
    std::shared_ptr<grpc::Channel> channel = replicas[r].Channel();
    if (channel == nullptr) continue;
    auto stub = v1::CompressionService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(60));
    v1::WatchJobRequest req;
    req.set_job_id(job);
    req.set_after_sequence(events.empty() ? 0 : events.back().sequence());
    auto reader = stub->WatchJob(&ctx, req);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      events.push_back(event);
      if (event.has_state() && event.state().to() == v1::SUCCEEDED) return events;
    }
    (void)reader->Finish();
    std::this_thread::sleep_for(milliseconds(200));
  }
  return events;
}

// Downloads the artifact whole: its size and sha256 as recorded.
void ExpectDownloads(v1::CompressionService::Stub& api, const v1::Artifact& artifact) {
  grpc::ClientContext ctx;
  v1::DownloadArtifactRequest req;
  req.set_artifact_id(artifact.id());
  auto reader = api.DownloadArtifact(&ctx, req);
  v1::DownloadArtifactResponse chunk;
  Sha256 hash;
  uint64_t bytes = 0;
  while (reader->Read(&chunk)) {
    if (chunk.has_chunk()) {
      hash.Update(chunk.chunk());
      bytes += chunk.chunk().size();
    }
  }
  ASSERT_TRUE(reader->Finish().ok()) << artifact.id();
  EXPECT_EQ(bytes, artifact.size());
  EXPECT_EQ(hash.HexDigest(), artifact.sha256());
}

TEST_F(ReplicaTest, ThreeReplicasTwentyJobsOneReplicaKilledAndRestarted) {
  for (int i = 0; i < 3; ++i) StartReplica(i);
  CliResult up = RunCli(replicas_[0].grpc_address(), {"models", "upload", model_dir_, "--name", "tiny"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  const std::string model = Trim(up.out);
  // Two workers, on replicas 1 and 2. Worker 0 is given the list "replica 1,
  // replica 2": it works through replica 1 and, when that one dies, fails
  // over to replica 2 (gRPC pick_first over a list, common/channel.h).
  Process workers[2];
  const std::string servers[2] = {
      replicas_[1].grpc_address() + "," + replicas_[2].grpc_address(),
      replicas_[2].grpc_address()};
  for (int w = 0; w < 2; ++w) {
    ASSERT_TRUE(workers[w].Start(
        {BinDir() + "/compress-worker", "--server", servers[w], "--key-file",
         replicas_[w + 1].worker_key_file(), "--cache-dir", absl::StrCat(root_, "/w", w),
         "--threads", "1"},
        absl::StrCat(root_, "/w", w, ".log")));
  }
  constexpr int kJobs = 20;
  std::vector<std::string> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(Submit(i % 3, model));
  // compressctl given every replica spreads its calls over them (round_robin).
  const std::string all = replicas_[0].grpc_address() + "," + replicas_[1].grpc_address() + "," +
                          replicas_[2].grpc_address();
  CliResult listed = RunCli(all, {"jobs", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  for (const std::string& job : jobs) EXPECT_THAT(listed.out, ::testing::HasSubstr(job));
  const auto deadline = std::chrono::steady_clock::now() + seconds(600);
  std::vector<std::vector<v1::JobEvent>> watched(kJobs);
  std::vector<std::thread> watchers;
  for (int i = 0; i < kJobs; ++i) {
    watchers.emplace_back([&, i] { watched[i] = Follow(replicas_, jobs[i], i % 3, deadline); });
  }
  // Mid-way, replica 1 (a worker's, a third of the streams') dies and comes back on its port.
  ASSERT_TRUE(WaitFor([&] { return GetJob(0, jobs[4]).state() == v1::SUCCEEDED; }, seconds(300)));
  const int port = PortOf(1);
  replicas_[1].process().Signal(SIGKILL);
  replicas_[1].process().Wait(seconds(10));
  std::this_thread::sleep_for(seconds(1));
  StartReplica(1, port);
  for (std::thread& t : watchers) t.join();

  std::set<std::string> artifacts_checked;
  for (int i = 0; i < kJobs; ++i) {
    SCOPED_TRACE(jobs[i]);
    const v1::Job job = GetJob(2, jobs[i]);
    EXPECT_EQ(job.state(), v1::SUCCEEDED);
    // The stream saw every event once, in order, as the Store has them.
    const std::vector<v1::JobEvent> all = Follow(replicas_, jobs[i], 2, deadline);
    ASSERT_FALSE(watched[i].empty());
    ASSERT_EQ(watched[i].size(), all.size());
    int succeeded = 0;
    for (size_t k = 0; k < all.size(); ++k) {
      EXPECT_EQ(watched[i][k].sequence(), static_cast<int64_t>(k + 1));
      EXPECT_EQ(watched[i][k].SerializeAsString(), all[k].SerializeAsString());
      succeeded += all[k].has_state() && all[k].state().to() == v1::SUCCEEDED;
    }
    EXPECT_EQ(succeeded, 1);
    // Every artifact downloads (from another replica than the job's) with its sha256.
    ASSERT_GT(job.artifacts_size(), 0);
    for (const v1::Artifact& artifact : job.artifacts()) {
      ExpectDownloads(*Api((i + 1) % 3), artifact);
      artifacts_checked.insert(artifact.id());
    }
  }
  EXPECT_GE(artifacts_checked.size(), static_cast<size_t>(kJobs));
  // Worker 0 moved to replica 2 when replica 1 died (registering there).
  const std::string log = ReadFile(root_ + "/w0.log");
  size_t registrations = 0;
  for (size_t at = log.find("registered as"); at != std::string::npos;
       at = log.find("registered as", at + 1)) {
    ++registrations;
  }
  EXPECT_GE(registrations, 2u) << log;
}

// 8 workers (the worker protocol, driven here) on 2 replicas lease and finish
// jobs as fast as they can while jobs keep arriving: no job is ever leased
// twice. COMPRESSD_REPLICA_LEASE_S sets the duration (default 60 s).
TEST_F(ReplicaTest, TwoReplicasEightWorkersNeverLeaseAJobTwice) {
  for (int i = 0; i < 2; ++i) StartReplica(i);
  CliResult up = RunCli(replicas_[0].grpc_address(), {"models", "upload", model_dir_, "--name", "tiny"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  const std::string model = Trim(up.out);
  const v1::Job first = GetJob(0, Submit(0, model));
  const char* env = std::getenv("COMPRESSD_REPLICA_LEASE_S");
  const auto end = std::chrono::steady_clock::now() + seconds(env ? std::atoi(env) : 60);
  std::mutex mu;
  std::map<std::string, int> leases;  // job -> times leased
  std::atomic<int> submitted{1};
  std::thread submitter([&] {
    for (int n = 0; std::chrono::steady_clock::now() < end; ++n) {
      grpc::ClientContext ctx;
      v1::SubmitJobRequest req;
      req.set_model_id(model);
      *req.mutable_recipe() = first.recipe();
      v1::Job job;
      if (Api(n % 2)->SubmitJob(&ctx, req, &job).ok()) ++submitted;
      if (n % 16 == 15) std::this_thread::sleep_for(milliseconds(50));
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      const std::string key = Trim(ReadFile(replicas_[w % 2].worker_key_file()));
      auto stub = v1::WorkerService::NewStub(replicas_[w % 2].Channel(key));
      grpc::ClientContext rctx;
      v1::RegisterWorkerRequest reg;
      reg.set_name(absl::StrCat("fake-", w));
      reg.set_device("cpu");
      v1::RegisterWorkerResponse registered;
      ASSERT_TRUE(stub->RegisterWorker(&rctx, reg, &registered).ok());
      while (std::chrono::steady_clock::now() < end + seconds(5)) {
        grpc::ClientContext ctx;
        v1::LeaseTaskRequest req;
        req.set_worker_id(registered.worker_id());
        req.set_wait_ms(500);
        v1::LeaseTaskResponse leased;
        if (!stub->LeaseTask(&ctx, req, &leased).ok() || !leased.has_task()) continue;
        {
          std::lock_guard<std::mutex> lock(mu);
          ++leases[leased.task().job_id()];
        }
        grpc::ClientContext fctx;
        v1::FailTaskRequest fail;
        fail.set_task_id(leased.task().task_id());
        fail.set_lease_token(leased.task().lease_token());
        fail.set_error("the test's worker does no work");
        fail.set_retryable(false);
        v1::FailTaskResponse failed;
        EXPECT_TRUE(stub->FailTask(&fctx, fail, &failed).ok());
      }
    });
  }
  submitter.join();
  for (std::thread& t : workers) t.join();
  std::printf("%d jobs submitted, %zu leased by 8 workers on 2 replicas\n", submitted.load(),
              leases.size());
  EXPECT_GT(leases.size(), 100u);
  for (const auto& [job, n] : leases) EXPECT_EQ(n, 1) << job;
}

}  // namespace
}  // namespace compressd::testing
