// Several processes on one PostgreSQL database, as several compressd
// replicas are: two Store objects (two connections, like two processes) on
// one database started by tests/integration/postgres.h.
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "server/store/sql/postgres_db.h"
#include "server/store/store.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::MakeModel;
using ::compressd::testing::MakeQueuedJob;
using ::compressd::testing::PostgresServer;
using ::compressd::testing::QueuedEvent;
using ::testing::HasSubstr;

TEST(PostgresParamsTest, NumbersParametersAsSqliteDoes) {
  EXPECT_EQ(sql::ToPostgresParams("a = ? AND b = ?3 AND c = ? AND d = ?"),
            "a = $1 AND b = $3 AND c = $4 AND d = $5");
  EXPECT_EQ(sql::ToPostgresParams("(?1 = 0 OR s = ?1) AND t = '?' LIMIT ?2"),
            "($1 = 0 OR s = $1) AND t = '?' LIMIT $2");
}

class SharedStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new PostgresServer();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    absl::StatusOr<std::string> url = server_->NewDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    a_ = Open();
    b_ = Open();
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
    ASSERT_TRUE(a_->InsertModel(MakeModel("mdl-1", 1)).ok());
  }
  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(url_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  void AddJob(Store& store, const std::string& id) {
    bool created = false;
    ASSERT_TRUE(store.CreateJob(MakeQueuedJob(id, "mdl-1", 1000), QueuedEvent(), &created).ok());
  }
  // The scheduler's lease of a queued job (task_leases.cc): QUEUED -> RUNNING
  // in one transaction, or ABORTED if another got there first.
  static absl::StatusOr<std::string> LeaseOne(Store& store, const std::string& worker) {
    for (int tries = 0; tries < 64; ++tries) {
      absl::StatusOr<std::optional<std::string>> id = store.OldestQueuedJob();
      if (!id.ok()) return id.status();
      if (!id->has_value()) return std::string();
      absl::StatusOr<int64_t> seq = store.UpdateJob(
          **id, [&](v1::Job& job, TaskRecord& rec, std::vector<v1::JobEvent>& events) {
            if (job.state() != v1::QUEUED) return absl::AbortedError("taken");
            job.set_state(v1::RUNNING);
            rec.worker_id = worker;
            rec.lease_token = NewId("lease-");
            events.emplace_back().mutable_state()->set_to(v1::RUNNING);
            return absl::OkStatus();
          });
      if (absl::IsAborted(seq.status())) continue;
      if (!seq.ok()) return seq.status();
      return **id;
    }
    return absl::UnavailableError("too much contention");
  }

  static PostgresServer* server_;
  std::string url_;
  std::unique_ptr<Store> a_, b_;
};
PostgresServer* SharedStoreTest::server_ = nullptr;

TEST_F(SharedStoreTest, TwoProcessesLeasingAtOnceNeverLeaseAJobOrPartTwice) {
  constexpr int kJobs = 60;
  for (int i = 0; i < kJobs; ++i) AddJob(i % 2 ? *a_ : *b_, absl::StrCat("job-", i));
  absl::Mutex mu;
  std::map<std::string, std::vector<std::string>> leased;  // job -> workers
  std::vector<std::thread> workers;
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      Store& store = w % 2 ? *a_ : *b_;
      const std::string name = absl::StrCat("w", w);
      while (true) {
        absl::StatusOr<std::string> job = LeaseOne(store, name);
        ASSERT_TRUE(job.ok()) << job.status();
        if (job->empty()) return;
        absl::MutexLock lock(&mu);
        leased[*job].push_back(name);
      }
    });
  }
  for (std::thread& t : workers) t.join();
  ASSERT_EQ(leased.size(), static_cast<size_t>(kJobs));
  for (const auto& [job, by] : leased) EXPECT_EQ(by.size(), 1u) << job;

  // Parts of one running job, leased from both stores at once.
  std::vector<PartRecord> parts(40);
  for (size_t i = 0; i < parts.size(); ++i) {
    parts[i].part_id = absl::StrCat("part-", i);
    parts[i].name = absl::StrCat("block-", i);
    parts[i].payload = "x";
  }
  auto accept = [](const v1::Job&, const TaskRecord&) { return absl::OkStatus(); };
  ASSERT_EQ(a_->SubmitParts("job-0", parts, accept).value(), 40);
  std::map<std::string, int> part_leases;
  workers.clear();
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      Store& store = w % 2 ? *a_ : *b_;
      while (true) {
        absl::StatusOr<std::optional<PartRecord>> part =
            store.LeaseQueuedPart("", absl::StrCat("w", w), NewId("lease-"), NowMs() + 60000,
                                  nullptr);
        ASSERT_TRUE(part.ok()) << part.status();
        if (!part->has_value()) return;
        absl::MutexLock lock(&mu);
        ++part_leases[(*part)->part_id];
      }
    });
  }
  for (std::thread& t : workers) t.join();
  ASSERT_EQ(part_leases.size(), parts.size());
  for (const auto& [part, n] : part_leases) EXPECT_EQ(n, 1) << part;
}

TEST_F(SharedStoreTest, EventsAndWorkFromOneProcessWakeTheOther) {
  absl::Mutex mu;
  std::vector<std::pair<std::string, int64_t>> seen;
  std::atomic<int> work{0};
  ASSERT_TRUE(a_->ListenForChanges({[&](const std::string& job, int64_t seq) {
                                      absl::MutexLock lock(&mu);
                                      seen.emplace_back(job, seq);
                                    },
                                    [&] { ++work; }, nullptr})
                  .ok());
  AddJob(*a_, "job-own");  // a's own changes: not told back to it
  AddJob(*b_, "job-1");
  std::vector<v1::JobEvent> events(2);
  ASSERT_EQ(b_->AppendEvents("job-1", events).value(), 3);
  auto saw = [&](int64_t seq) {
    absl::MutexLock lock(&mu);
    for (const auto& [job, s] : seen) {
      EXPECT_EQ(job, "job-1");
      if (s == seq) return true;
    }
    return false;
  };
  for (int i = 0; i < 200 && !(saw(3) && work > 0); ++i) absl::SleepFor(absl::Milliseconds(25));
  EXPECT_TRUE(saw(1));  // the submission's first event
  EXPECT_TRUE(saw(3));
  EXPECT_EQ(work.load(), 1);  // job-1 queued (job-own was a's)
  a_->StopListening();
}

TEST_F(SharedStoreTest, ADutyRunsInOneProcessAtATime) {
  absl::Notification inside, release;
  std::thread holder([&] {
    absl::StatusOr<bool> ran = a_->RunExclusive(kBlobGcDuty, [&] {
      inside.Notify();
      release.WaitForNotification();
    });
    EXPECT_TRUE(ran.ok() && *ran);
  });
  inside.WaitForNotification();
  bool ran_b = false;
  EXPECT_FALSE(b_->RunExclusive(kBlobGcDuty, [&] { ran_b = true; }).value());
  EXPECT_TRUE(b_->RunExclusive(kBlobScrubDuty, [] {}).value());  // another duty is free
  release.Notify();
  holder.join();
  EXPECT_FALSE(ran_b);
  EXPECT_TRUE(b_->RunExclusive(kBlobGcDuty, [&] { ran_b = true; }).value());
  EXPECT_TRUE(ran_b);
}

TEST_F(SharedStoreTest, ANewerSchemaIsRefusedAndOpeningTwiceMigratesOnce) {
  std::vector<std::thread> openers;
  absl::StatusOr<std::string> fresh = server_->NewDatabase();
  ASSERT_TRUE(fresh.ok());
  std::atomic<int> opened{0};
  for (int i = 0; i < 4; ++i) {
    openers.emplace_back([&] { opened += Store::Open(*fresh).ok() ? 1 : 0; });
  }
  for (std::thread& t : openers) t.join();
  EXPECT_EQ(opened.load(), 4);
  {
    absl::StatusOr<std::unique_ptr<sql::Db>> db = sql::Open(url_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("UPDATE compressd_schema SET version = 99").ok());
  }
  absl::StatusOr<std::unique_ptr<Store>> newer = Store::Open(url_);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("schema version 99 is newer"));
}

}  // namespace
}  // namespace compressd
