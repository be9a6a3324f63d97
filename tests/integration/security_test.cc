// Keys, roles, tenant isolation, quotas, fair scheduling and the audit trail
// with the real binaries: compressd with its generated admin key, keys made
// by `compressctl admin keys create`, a compress-worker with a worker key.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <fstream>
#include <map>
#include <thread>

#include "compressd/v1/admin.grpc.pb.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "compressd/v1/worker.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace compressd::testing {
namespace {

namespace v1 = ::compressd::v1;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("root");
    model_dir_ = root_ + "/tiny";
    ASSERT_EQ(RunBinary({BinDir() + "/make-tiny-llama", model_dir_}).exit_code, 0);
    recipe_ = root_ + "/recipe.yaml";
    std::ofstream(recipe_)
        << "stages:\n  - magnitude: {sparsity: 0.5}\n"
           "targets: {include: \".*_proj$\"}\noutput: {format: hf_safetensors}\n";
    ASSERT_TRUE(server_.Start(root_ + "/data", {"--local-workers", "0"}))
        << ReadFile(root_ + "/compressd.stderr.log");
  }
  void TearDown() override { unsetenv("COMPRESSD_KEY"); }

  // compressctl with `key` ("" : the admin key from $COMPRESSD_KEY_FILE).
  CliResult CliAs(const std::string& key, const std::vector<std::string>& args) {
    if (key.empty()) {
      unsetenv("COMPRESSD_KEY");
    } else {
      setenv("COMPRESSD_KEY", key.c_str(), 1);
    }
    CliResult r = RunCli(server_, args);
    unsetenv("COMPRESSD_KEY");
    return r;
  }
  std::string MustCli(const std::string& key, const std::vector<std::string>& args) {
    CliResult r = CliAs(key, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }
  std::string NewKey(const std::string& tenant, const std::string& role,
                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"admin", "keys", "create", "--role", role};
    if (!tenant.empty()) args.insert(args.end(), {"--tenant", tenant});
    args.insert(args.end(), extra.begin(), extra.end());
    return MustCli("", args);
  }
  std::string Submit(const std::string& key, const std::string& model,
                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"jobs", "submit", "--model", model, "--recipe", recipe_};
    args.insert(args.end(), extra.begin(), extra.end());
    return MustCli(key, args);
  }
  v1::Job GetJob(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(v1::CompressionService::NewStub(server_.Channel())->GetJob(&ctx, req, &job).ok());
    return job;
  }
  void StartWorker(Process& worker, const std::string& name) {
    ASSERT_TRUE(worker.Start(
        {BinDir() + "/compress-worker", "--server", server_.grpc_address(), "--key-file",
         server_.worker_key_file(), "--cache-dir", root_ + "/" + name, "--threads", "1"},
        root_ + "/" + name + ".log"));
  }

  Server server_;
  std::string root_, model_dir_, recipe_;
};

grpc::StatusCode Code(const CliResult& r) {
  for (const auto& [name, code] :
       std::map<std::string, grpc::StatusCode>{{"UNAUTHENTICATED", grpc::UNAUTHENTICATED},
                                               {"PERMISSION_DENIED", grpc::PERMISSION_DENIED},
                                               {"NOT_FOUND", grpc::NOT_FOUND},
                                               {"RESOURCE_EXHAUSTED", grpc::RESOURCE_EXHAUSTED}}) {
    if (r.err.find(name) != std::string::npos) return code;
  }
  return r.exit_code == 0 ? grpc::OK : grpc::UNKNOWN;
}

// long: one end-to-end scenario on one server (tenants, keys, a job run by a
// worker), then every refusal the issue names, in order.
TEST_F(SecurityTest, KeysRolesAndTenantIsolationEndToEnd) {
  MustCli("", {"admin", "tenants", "create", "team-a"});
  MustCli("", {"admin", "tenants", "create", "team-b"});
  const std::string member_a = NewKey("team-a", "member");
  const std::string viewer_a = NewKey("team-a", "viewer");
  const std::string member_b = NewKey("team-b", "member");

  // No key at all: UNAUTHENTICATED, from compressctl and from a raw stub.
  setenv("COMPRESSD_KEY_FILE", "", 1);
  CliResult anonymous = RunCli(server_, {"models", "list"});
  setenv("COMPRESSD_KEY_FILE", (root_ + "/data/admin.key").c_str(), 1);
  EXPECT_EQ(Code(anonymous), grpc::UNAUTHENTICATED) << anonymous.err;
  {
    grpc::ClientContext ctx;
    v1::ListModelsResponse resp;
    EXPECT_EQ(v1::CompressionService::NewStub(server_.Channel("-"))
                  ->ListModels(&ctx, v1::ListModelsRequest(), &resp)
                  .error_code(),
              grpc::UNAUTHENTICATED);
  }

  const std::string model = MustCli(member_a, {"models", "upload", model_dir_, "--name", "a"});
  // A viewer reads but cannot submit.
  EXPECT_THAT(MustCli(viewer_a, {"models", "list"}), HasSubstr(model));
  EXPECT_EQ(Code(CliAs(viewer_a, {"jobs", "submit", "--model", model, "--recipe", recipe_})),
            grpc::PERMISSION_DENIED);
  const std::string job = Submit(member_a, model);

  // A member key is not a worker key.
  {
    grpc::ClientContext ctx;
    v1::LeaseTaskRequest req;
    v1::LeaseTaskResponse resp;
    EXPECT_EQ(v1::WorkerService::NewStub(server_.Channel(member_a))
                  ->LeaseTask(&ctx, req, &resp)
                  .error_code(),
              grpc::PERMISSION_DENIED);
  }

  Process worker;
  StartWorker(worker, "worker");
  ASSERT_TRUE(WaitFor([&] { return GetJob(job).state() == v1::SUCCEEDED; }, milliseconds(60000)))
      << GetJob(job).DebugString();
  const v1::Job done = GetJob(job);
  ASSERT_GT(done.artifacts_size(), 0);
  EXPECT_EQ(done.tenant(), "team-a");
  EXPECT_FALSE(done.submitted_by().empty());
  for (const v1::Artifact& a : done.artifacts()) EXPECT_THAT(a.worker_id(), HasSubstr("wkr-k"));

  // Tenant B can neither see nor touch any of it: NOT_FOUND, as if absent.
  EXPECT_THAT(MustCli(member_b, {"models", "list"}), ::testing::Not(HasSubstr(model)));
  EXPECT_THAT(MustCli(member_b, {"jobs", "list"}), ::testing::Not(HasSubstr(job)));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"models", "get", model},
           {"jobs", "get", job},
           {"jobs", "watch", job},
           {"artifacts", "list", job},
           {"artifacts", "download", job, "--out", root_ + "/b"},
           {"jobs", "cancel", job},
           {"jobs", "delete", job},
           {"models", "delete", model},
           {"jobs", "submit", "--model", model, "--recipe", recipe_}}) {
    CliResult r = CliAs(member_b, args);
    EXPECT_EQ(Code(r), grpc::NOT_FOUND) << args[0] << " " << args[1] << ": " << r.err;
  }
  // Tenant A downloads its own result.
  EXPECT_EQ(CliAs(member_a, {"artifacts", "download", job, "--out", root_ + "/a"}).exit_code, 0);

  // Revoked and expired keys stop working at once.
  const std::string short_lived = NewKey("team-a", "member", {"--expires-in", "2s"});
  EXPECT_EQ(CliAs(short_lived, {"models", "list"}).exit_code, 0);
  const std::string key_id = short_lived.substr(5, 17);
  MustCli("", {"admin", "keys", "revoke", key_id});
  EXPECT_THAT(CliAs(short_lived, {"models", "list"}).err, HasSubstr("was revoked"));
  const std::string expiring = NewKey("team-a", "viewer", {"--expires-in", "1s"});
  std::this_thread::sleep_for(milliseconds(1200));
  EXPECT_THAT(CliAs(expiring, {"models", "list"}).err, HasSubstr("expired"));

  // The audit trail names the key behind each change.
  const std::string audit = MustCli("", {"admin", "audit", "list", "--tenant", "team-a"});
  EXPECT_THAT(audit, HasSubstr("UploadModel"));
  EXPECT_THAT(audit, HasSubstr("SubmitJob"));
  EXPECT_THAT(audit, HasSubstr(done.submitted_by()));
  EXPECT_THAT(audit, HasSubstr("RevokeKey"));
  // Non-admins cannot read it.
  EXPECT_EQ(Code(CliAs(member_a, {"admin", "audit", "list"})), grpc::PERMISSION_DENIED);
}

TEST_F(SecurityTest, EveryQuotaIsEnforcedAndNamed) {
  MustCli("", {"admin", "tenants", "create", "small", "--max-queued-jobs", "2",
               "--max-running-jobs", "1"});
  const std::string key = NewKey("small", "member");
  const std::string model = MustCli(key, {"models", "upload", model_dir_});
  // Stored bytes: the model fits; a quota below it refuses the next upload.
  MustCli("", {"admin", "tenants", "quota", "small", "--max-stored-bytes", "1000"});
  CliResult over = CliAs(key, {"datasets", "upload", recipe_, "--name", "d"});
  EXPECT_EQ(Code(over), grpc::RESOURCE_EXHAUSTED) << over.err;
  EXPECT_THAT(over.err, HasSubstr("max_stored_bytes"));
  EXPECT_THAT(over.err, HasSubstr("limit 1000 bytes"));

  // Queued jobs: two are queued (no worker yet), the third is refused.
  const std::string first = Submit(key, model);
  const std::string second = Submit(key, model);
  CliResult third = CliAs(key, {"jobs", "submit", "--model", model, "--recipe", recipe_});
  EXPECT_EQ(Code(third), grpc::RESOURCE_EXHAUSTED) << third.err;
  EXPECT_THAT(third.err, HasSubstr("max_queued_jobs"));
  EXPECT_THAT(third.err, HasSubstr("limit 2 jobs"));

  // Running jobs: with two idle workers only one of the tenant's jobs runs at
  // a time, so the two never overlap.
  Process w1, w2;
  StartWorker(w1, "w1");
  StartWorker(w2, "w2");
  ASSERT_TRUE(WaitFor(
      [&] {
        return GetJob(first).state() == v1::SUCCEEDED && GetJob(second).state() == v1::SUCCEEDED;
      },
      milliseconds(60000)));
  const v1::Job a = GetJob(first), b = GetJob(second);
  EXPECT_TRUE(a.end_time_ms() <= b.start_time_ms() || b.end_time_ms() <= a.start_time_ms())
      << "ran concurrently: [" << a.start_time_ms() << ", " << a.end_time_ms() << "] and ["
      << b.start_time_ms() << ", " << b.end_time_ms() << "]";
}

TEST_F(SecurityTest, ATenantWithManyQueuedJobsDoesNotStarveAnother) {
  MustCli("", {"admin", "tenants", "create", "busy"});
  MustCli("", {"admin", "tenants", "create", "quiet"});
  const std::string busy = NewKey("busy", "member");
  const std::string quiet = NewKey("quiet", "member");
  const std::string busy_model = MustCli(busy, {"models", "upload", model_dir_});
  const std::string quiet_model = MustCli(quiet, {"models", "upload", model_dir_});
  std::vector<std::string> busy_jobs;
  for (int i = 0; i < 50; ++i) busy_jobs.push_back(Submit(busy, busy_model));
  const std::string quiet_job = Submit(quiet, quiet_model);
  Process worker;  // one worker: jobs start one after another
  StartWorker(worker, "worker");
  ASSERT_TRUE(
      WaitFor([&] { return GetJob(quiet_job).state() == v1::SUCCEEDED; }, milliseconds(120000)));
  const int64_t quiet_start = GetJob(quiet_job).start_time_ms();
  int started_before = 0;
  for (const std::string& id : busy_jobs) {
    const v1::Job j = GetJob(id);
    if (j.start_time_ms() != 0 && j.start_time_ms() < quiet_start) ++started_before;
  }
  // Round-robin by tenant: the quiet tenant's job is the second lease.
  EXPECT_LE(started_before, 1) << "the quiet tenant's job waited for " << started_before
                               << " of the busy tenant's jobs";
}

}  // namespace
}  // namespace compressd::testing
