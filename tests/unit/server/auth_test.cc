// API keys (wire form, salted HMAC, constant-time check), the Authenticator
// (revoked and expired keys, roles, key files), tenants in the Store (quota
// use, request ids per tenant, the upgrade of a schema-5 database), and the
// fair choice of the next job across tenants.
#include <sqlite3.h>
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth/api_key.h"
#include "server/auth/authenticator.h"
#include "server/auth/bootstrap.h"
#include "server/auth/permissions.h"
#include "server/scheduler/event_rate.h"
#include "tests/unit/server/test_util.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;
const std::string kSecret(64, 'c');

v1::ApiKey KeyOf(const std::string& tenant, v1::Role role) {
  v1::ApiKey key;
  key.set_tenant(tenant);
  key.set_role(role);
  return key;
}

TEST(ApiKeyTest, MintedKeyParsesAndMatchesOnlyItsOwnHash) {
  MintedKey minted = MintKey(kSecret, KeyOf("a", v1::ROLE_MEMBER));
  EXPECT_THAT(minted.key, ::testing::MatchesRegex("cmpd_k[0-9a-f]{16}_[0-9a-f]{64}"));
  absl::StatusOr<ParsedKey> parsed = ParseKey(minted.key);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->key_id, minted.record.key.key_id());
  // What is stored never contains the secret.
  EXPECT_EQ(minted.record.hash.find(parsed->secret), std::string::npos);
  EXPECT_EQ(minted.record.key.SerializeAsString().find(parsed->secret), std::string::npos);
  EXPECT_TRUE(KeyMatches(kSecret, minted.record, parsed->secret));
  std::string wrong = parsed->secret;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(KeyMatches(kSecret, minted.record, wrong));
  EXPECT_FALSE(KeyMatches(std::string(64, 'd'), minted.record, parsed->secret));
  // Salted: the same secret under another salt hashes differently.
  EXPECT_NE(KeyHash(kSecret, "00", parsed->secret), KeyHash(kSecret, "01", parsed->secret));
  // Two keys never share an id or a secret.
  MintedKey other = MintKey(kSecret, KeyOf("a", v1::ROLE_MEMBER));
  EXPECT_NE(other.record.key.key_id(), minted.record.key.key_id());
  EXPECT_NE(other.key, minted.key);
}

TEST(ApiKeyTest, MalformedKeysAreUnauthenticated) {
  for (const std::string& bad : {std::string(""), std::string("cmpd_"), std::string("Bearer x"),
                                 "cmpd_k0123456789abcdef_" + std::string(63, 'a'),
                                 "cmpd_k0123456789abcdeX_" + std::string(64, 'a'),
                                 "xxxx_k0123456789abcdef_" + std::string(64, 'a')}) {
    EXPECT_EQ(ParseKey(bad).status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
}

TEST(ApiKeyTest, ServerSecretFileIsCreatedPrivateAndMustStaySo) {
  TempDir dir;
  const std::string path = dir.path() + "/server.secret";
  absl::StatusOr<std::string> secret = LoadOrCreateServerSecret(path);
  ASSERT_TRUE(secret.ok()) << secret.status();
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(*LoadOrCreateServerSecret(path), *secret);  // read back, not replaced
  chmod(path.c_str(), 0644);
  EXPECT_THAT(LoadOrCreateServerSecret(path).status().message(), HasSubstr("chmod 600"));
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::Tenant tenant;
    tenant.set_name("team-a");
    ASSERT_TRUE(env_.store->InsertTenant(tenant).ok());
  }
  std::string NewKey(v1::Role role, int64_t expires_in_s = 0) {
    v1::CreateKeyRequest req;
    req.set_tenant("team-a");
    req.set_role(role);
    req.set_expires_in_seconds(expires_in_s);
    absl::StatusOr<v1::CreateKeyResponse> created = auth_.CreateKey(req);
    EXPECT_TRUE(created.ok()) << created.status();
    return created->secret();
  }
  CoreEnv env_;
  Authenticator auth_{*env_.store, kSecret, AuthMode::kKeys};
};

TEST_F(AuthenticatorTest, KeysAuthenticateUntilRevokedOrExpired) {
  const std::string key = NewKey(v1::ROLE_MEMBER);
  absl::StatusOr<Principal> who = auth_.Authenticate("Bearer " + key);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->tenant, "team-a");
  EXPECT_EQ(who->role, v1::ROLE_MEMBER);
  EXPECT_EQ(who->scope().tenant, "team-a");
  EXPECT_GT(env_.store->GetKey(who->key_id)->key.last_used_ms(), 0);

  EXPECT_EQ(auth_.Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_.Authenticate("Basic " + key).status().code(), absl::StatusCode::kUnauthenticated);
  std::string forged = key;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_THAT(auth_.Authenticate("Bearer " + forged).status().message(), HasSubstr("not valid"));

  ASSERT_TRUE(auth_.RevokeKey(who->key_id).ok());
  EXPECT_THAT(auth_.Authenticate("Bearer " + key).status().message(), HasSubstr("revoked"));

  const std::string expiring = NewKey(v1::ROLE_VIEWER, 3600);
  const std::string id = ParseKey(expiring)->key_id;
  v1::ApiKey record = env_.store->GetKey(id)->key;
  record.set_expire_time_ms(NowMs() - 1);
  ASSERT_TRUE(env_.store->UpdateKey(record).ok());
  EXPECT_THAT(auth_.Authenticate("Bearer " + expiring).status().message(), HasSubstr("expired"));
}

TEST_F(AuthenticatorTest, RolesAreCheckedPerMethod) {
  const std::string viewer = "Bearer " + NewKey(v1::ROLE_VIEWER);
  EXPECT_TRUE(auth_.Authorize(viewer, "CompressionService.GetJob").ok());
  absl::Status denied = auth_.Authorize(viewer, "CompressionService.SubmitJob").status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("role viewer may not call CompressionService.SubmitJob"));
  EXPECT_EQ(auth_.Authorize(viewer, "No.SuchMethod").status().code(), absl::StatusCode::kInternal);

  v1::CreateKeyRequest worker;
  worker.set_role(v1::ROLE_WORKER);
  absl::StatusOr<v1::CreateKeyResponse> created = auth_.CreateKey(worker);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->key().tenant(), kSystemTenant);
  const std::string bearer = "Bearer " + created->secret();
  EXPECT_TRUE(auth_.Authorize(bearer, "WorkerService.LeaseTask").ok());
  EXPECT_EQ(auth_.Authorize(bearer, "CompressionService.ListModels").status().code(),
            absl::StatusCode::kPermissionDenied);

  v1::CreateKeyRequest unknown;
  unknown.set_role(v1::ROLE_MEMBER);
  unknown.set_tenant("nobody");
  EXPECT_EQ(auth_.CreateKey(unknown).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AuthenticatorTest, KeyFilesAreWrittenOnceAndReplacedWhenTheirKeyStopsWorking) {
  const std::string path = env_.dir.path() + "/admin.key";
  EXPECT_TRUE(*auth_.EnsureKeyFile(path, "team-a", v1::ROLE_ADMIN, "first start"));
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string first = *ReadFileToString(path);
  EXPECT_FALSE(*auth_.EnsureKeyFile(path, "team-a", v1::ROLE_ADMIN, "second start"));
  EXPECT_EQ(*ReadFileToString(path), first);
  ASSERT_TRUE(auth_.RevokeKey(ParseKey(first.substr(0, first.size() - 1))->key_id).ok());
  EXPECT_TRUE(*auth_.EnsureKeyFile(path, "team-a", v1::ROLE_ADMIN, "after revocation"));
  EXPECT_NE(*ReadFileToString(path), first);
}

TEST_F(AuthenticatorTest, NoAuthModeMakesEveryCallerAnAdmin) {
  Authenticator none(*env_.store, kSecret, AuthMode::kNone);
  absl::StatusOr<Principal> who = none.Authorize("", "WorkerService.LeaseTask");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->role, v1::ROLE_ADMIN);
}

TEST(PermissionsTest, EveryRuleNamesAKnownServiceMethodOnce) {
  std::set<std::string> seen;
  for (const MethodRule& rule : MethodRules()) {
    const std::string method(rule.method);
    EXPECT_TRUE(seen.insert(method).second) << method << " listed twice";
    const size_t dot = method.find('.');
    const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
        "compressd.v1." + method.substr(0, dot));
    ASSERT_NE(service, nullptr) << method;
    EXPECT_NE(service->FindMethodByName(method.substr(dot + 1)), nullptr) << method;
  }
}

TEST(TenantStoreTest, RecordsAreScopedAndRequestIdsArePerTenant) {
  CoreEnv env;
  for (const char* name : {"a", "b"}) {
    v1::Tenant t;
    t.set_name(name);
    ASSERT_TRUE(env.store->InsertTenant(t).ok());
  }
  v1::Tenant again;
  again.set_name("a");
  EXPECT_EQ(env.store->InsertTenant(again).code(), absl::StatusCode::kAlreadyExists);
  v1::Model ma = MakeModel("mdl-a", 1), mb = MakeModel("mdl-b", 2);
  ma.set_tenant("a");
  mb.set_tenant("b");
  ASSERT_TRUE(env.store->InsertModel(ma).ok());
  ASSERT_TRUE(env.store->InsertModel(mb).ok());
  EXPECT_EQ(env.store->ListModels(10, "", "a")->items.size(), 1u);
  EXPECT_EQ(env.store->ListModels(10, "")->items.size(), 2u);

  bool created = false;
  v1::Job ja = MakeQueuedJob("job-a", "mdl-a", 1, "same-request");
  ja.set_tenant("a");
  v1::Job jb = MakeQueuedJob("job-b", "mdl-b", 2, "same-request");
  jb.set_tenant("b");
  ASSERT_TRUE(env.store->CreateJob(ja, QueuedEvent(), &created).ok());
  EXPECT_TRUE(created);
  // B reusing A's request id gets its own job, never A's.
  absl::StatusOr<v1::Job> b = env.store->CreateJob(jb, QueuedEvent(), &created);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(created);
  EXPECT_EQ(b->id(), "job-b");
  // A job cannot name another tenant's model.
  v1::Job cross = MakeQueuedJob("job-x", "mdl-a", 3);
  cross.set_tenant("b");
  EXPECT_EQ(env.store->CreateJob(cross, QueuedEvent(), &created).status().code(),
            absl::StatusCode::kNotFound);
  const TenantUsage usage = *env.store->Usage("a");
  EXPECT_EQ(usage.stored_bytes, 2u);
  EXPECT_EQ(usage.queued_jobs, 1);
}

TEST(TenantStoreTest, NextJobIsRoundRobinByTenantThenPriorityThenAge) {
  CoreEnv env;
  for (const char* name : {"busy", "quiet"}) {
    v1::Tenant t;
    t.set_name(name);
    ASSERT_TRUE(env.store->InsertTenant(t).ok());
    v1::Model m = MakeModel(std::string("mdl-") + name, 1);
    m.set_tenant(name);
    ASSERT_TRUE(env.store->InsertModel(m).ok());
  }
  bool created = false;
  auto add = [&](const std::string& id, const std::string& tenant, int64_t t, v1::Priority p) {
    v1::Job job = MakeQueuedJob(id, "mdl-" + tenant, t);
    job.set_tenant(tenant);
    job.set_priority(p);
    ASSERT_TRUE(env.store->CreateJob(job, QueuedEvent(), &created).ok());
  };
  for (int i = 0; i < 5; ++i) add("busy-" + std::to_string(i), "busy", i, v1::PRIORITY_NORMAL);
  add("busy-urgent", "busy", 10, v1::PRIORITY_HIGH);
  add("quiet-0", "quiet", 20, v1::PRIORITY_NORMAL);
  std::vector<std::string> order;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::optional<std::string>> next = env.store->OldestQueuedJob();
    ASSERT_TRUE(next.ok() && next->has_value());
    order.push_back(**next);
    ASSERT_TRUE(env.store
                    ->UpdateJob(**next,
                                [](v1::Job& job, TaskRecord&, std::vector<v1::JobEvent>&) {
                                  job.set_state(v1::RUNNING);
                                  return absl::OkStatus();
                                })
                    .ok());
  }
  // busy's high-priority job first (tie on turns: priority), then quiet's
  // turn, then busy's oldest.
  EXPECT_THAT(order, ::testing::ElementsAre("busy-urgent", "quiet-0", "busy-0", "busy-1"));
  // A tenant at max_running_jobs is skipped.
  v1::Quota quota;
  quota.set_max_running_jobs(3);
  ASSERT_TRUE(env.store->SetQuota("busy", quota).ok());
  EXPECT_FALSE(env.store->OldestQueuedJob()->has_value());
}

TEST(TenantStoreTest, ASchemaFiveDatabaseIsUpgradedToTheDefaultTenant) {
  if (testing::TestStoreIsPostgres()) GTEST_SKIP() << "a SQLite file's migration";
  TempDir dir;
  const std::string path = dir.path() + "/old.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  v1::Model model = MakeModel("mdl-old", 1);  // no tenant in the record
  const std::string blob = model.SerializeAsString();
  const std::string sql =
      "CREATE TABLE models (id TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,"
      " proto BLOB NOT NULL);"
      "CREATE TABLE jobs (id TEXT PRIMARY KEY, model_id TEXT NOT NULL, state INTEGER NOT NULL,"
      " request_id TEXT NOT NULL DEFAULT '', create_time_ms INTEGER NOT NULL,"
      " proto BLOB NOT NULL, memory_needed INTEGER NOT NULL DEFAULT 0,"
      " device_needed INTEGER NOT NULL DEFAULT 0);"
      "CREATE UNIQUE INDEX jobs_by_request_id ON jobs(request_id) WHERE request_id <> '';"
      "CREATE TABLE datasets (id TEXT PRIMARY KEY, create_time_ms INTEGER NOT NULL,"
      " proto BLOB NOT NULL);"
      "PRAGMA user_version=5;";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_stmt* insert = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "INSERT INTO models VALUES ('mdl-old', 1, ?)", -1, &insert, nullptr),
      SQLITE_OK);
  sqlite3_bind_blob(insert, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(insert), SQLITE_DONE);
  sqlite3_finalize(insert);
  sqlite3_close(db);

  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->GetModel("mdl-old")->tenant(), kDefaultTenant);
  EXPECT_EQ((*store)->ListModels(10, "", kDefaultTenant)->items.size(), 1u);
  EXPECT_TRUE((*store)->GetTenant(kDefaultTenant).ok());
}

}  // namespace
}  // namespace compressd::testing

namespace compressd::testing {
namespace {

TEST(TenantSchedulingTest, ATenantAtItsRunningQuotaWaitsSayingWhy) {
  JobsEnv env;
  v1::Quota quota;
  quota.set_max_running_jobs(1);
  ASSERT_TRUE(env.store->SetQuota(kDefaultTenant, quota).ok());
  std::vector<std::string> workers;
  for (const char* name : {"w1", "w2"}) {
    v1::RegisterWorkerRequest req;
    req.set_name(name);
    workers.push_back(env.scheduler.RegisterWorker(req)->worker_id());
  }
  std::vector<std::string> jobs;
  for (int i = 0; i < 2; ++i) {
    v1::SubmitJobRequest req;
    req.set_model_id("mdl-1");
    *req.mutable_recipe() = ValidRecipe();
    jobs.push_back(env.jobs.Submit(req)->id());
  }
  auto first = env.Lease(workers[0]);
  ASSERT_TRUE(first.ok() && first->job_id() == jobs[0]);
  auto second = env.Lease(workers[1]);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->task_id().empty()) << "leased " << second->job_id() << " over the quota";
  env.scheduler.Tick();
  EXPECT_THAT(env.store->GetJob(jobs[1])->waiting_reason(),
              HasSubstr("at its quota max_running_jobs (1 RUNNING)"));
}

TEST(AuthSetupTest, NoAuthIsRefusedOffLoopback) {
  CoreEnv env;
  absl::StatusOr<AuthSetup> open =
      SetUpAuth(*env.store, env.dir.path(), AuthMode::kNone, "0.0.0.0");
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(open.status().message(), HasSubstr("loopback"));
  EXPECT_TRUE(SetUpAuth(*env.store, env.dir.path(), AuthMode::kNone, "127.0.0.1").ok());
  absl::StatusOr<AuthSetup> keys =
      SetUpAuth(*env.store, env.dir.path(), AuthMode::kKeys, "0.0.0.0");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->admin_key_created);
  EXPECT_TRUE(ReadFileToString(keys->worker_key_path).ok());
}

}  // namespace
}  // namespace compressd::testing

namespace compressd::testing {
namespace {

TEST(EventRateTest, ATaskOverItsEventBudgetIsRefusedThenRefilled) {
  EventRateLimiter limiter(/*per_second=*/100, /*burst=*/500);
  EXPECT_TRUE(limiter.Take("task-1", 500, 0).ok());  // the whole burst at once
  absl::Status over = limiter.Take("task-1", 1, 0);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(over.message(), HasSubstr("max_events_per_task_per_s"));
  EXPECT_TRUE(limiter.Take("task-2", 10, 0).ok());     // other tasks have their own budget
  EXPECT_FALSE(limiter.Take("task-1", 200, 1000).ok());  // 1 s refills 100, not 200
  EXPECT_TRUE(limiter.Take("task-1", 100, 1000).ok());
  limiter.Forget("task-1");
  EXPECT_TRUE(limiter.Take("task-1", 500, 1000).ok());  // a new lease starts full
  EXPECT_TRUE(EventRateLimiter(0, 0).Take("t", 1000000, 0).ok());  // 0: unlimited
}

}  // namespace
}  // namespace compressd::testing
