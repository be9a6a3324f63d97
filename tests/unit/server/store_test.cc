#include "server/store/store.h"

#include <sqlite3.h>

#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::MakeModel;
using ::compressd::testing::MakeQueuedJob;
using ::compressd::testing::QueuedEvent;
using ::compressd::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Store> OpenStore(const std::string& path) {
  auto s = Store::Open(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = testing::TestStoreTarget(dir_.path() + "/state.db");
    store_ = OpenStore(db_path_);
    ASSERT_NE(store_, nullptr);
  }
  void AddModel(const std::string& id, int64_t t = 1000) {
    ASSERT_TRUE(store_->InsertModel(MakeModel(id, t)).ok());
  }
  v1::Job AddJob(const std::string& id, const std::string& model_id, int64_t t,
                 const std::string& request_id = "") {
    bool created = false;
    auto job = store_->CreateJob(MakeQueuedJob(id, model_id, t, request_id), QueuedEvent(),
                                 &created);
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(created);
    return job.ok() ? *job : v1::Job();
  }
  // Moves a job to `state` directly (the Store itself enforces no rules).
  void SetState(const std::string& id, v1::JobState state) {
    auto seq = store_->UpdateJob(id, [&](v1::Job& job, TaskRecord&, std::vector<v1::JobEvent>&) {
      job.set_state(state);
      return absl::OkStatus();
    });
    ASSERT_TRUE(seq.ok()) << seq.status();
  }

  TempDir dir_;
  std::string db_path_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, RecordsSurviveCloseAndReopen) {
  AddModel("mdl-1");
  v1::Dataset ds;
  ds.set_id("ds-1");
  ds.set_name("calib");
  ds.set_create_time_ms(5);
  ASSERT_TRUE(store_->InsertDataset(ds).ok());
  AddJob("job-1", "mdl-1", 2000, "req-1");
  v1::Artifact art;
  art.set_id("art-1");
  art.set_job_id("job-1");
  art.set_path("model.safetensors");
  art.set_size(42);
  ASSERT_TRUE(store_->InsertArtifact(art).ok());

  store_.reset();
  store_ = OpenStore(db_path_);
  ASSERT_NE(store_, nullptr);

  auto model = store_->GetModel("mdl-1");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name(), "tiny-mdl-1");
  EXPECT_EQ(model->files(0).path(), "config.json");
  EXPECT_EQ(store_->GetDataset("ds-1")->name(), "calib");
  auto job = store_->GetJob("job-1");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::QUEUED);
  EXPECT_EQ(job->request_id(), "req-1");
  EXPECT_EQ(job->recipe().stages(0).magnitude().sparsity(), 0.5);
  ASSERT_EQ(job->artifacts_size(), 1);
  EXPECT_EQ(job->artifacts(0).size(), 42u);
  EXPECT_EQ(store_->GetArtifact("art-1")->path(), "model.safetensors");
  auto events = store_->ReadEvents("job-1", 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].sequence(), 1);
  EXPECT_EQ((*events)[0].state().to(), v1::QUEUED);
}

// A version-3 database (no jobs.memory_needed) is upgraded in place on open,
// its queued job kept; the column then filters OldestQueuedJob.
TEST_F(StoreTest, SchemaThreeDatabaseIsUpgradedAndFiltersByMemory) {
  if (testing::TestStoreIsPostgres()) GTEST_SKIP() << "a SQLite file's migration";
  AddModel("mdl-1");
  AddJob("job-1", "mdl-1", 2000);
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE jobs DROP COLUMN memory_needed; PRAGMA user_version=3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  store_ = OpenStore(db_path_);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->OldestQueuedJob(1).value(), "job-1");
  auto seq = store_->UpdateJob("job-1", [](v1::Job& job, TaskRecord&, std::vector<v1::JobEvent>&) {
    job.set_memory_needed_bytes(uint64_t{1} << 40);
    return absl::OkStatus();
  });
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_FALSE(store_->OldestQueuedJob(uint64_t{1} << 39).value().has_value());
  EXPECT_EQ(store_->OldestQueuedJob(uint64_t{1} << 40).value(), "job-1");
  EXPECT_EQ(store_->OldestQueuedJob().value(), "job-1");  // no limit
}

TEST_F(StoreTest, UnknownIdsAreNotFound) {
  EXPECT_EQ(store_->GetModel("mdl-x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetDataset("ds-x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJob("job-x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetTask("task-x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetArtifact("art-x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteModel("mdl-x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->AppendEvents("job-x", {v1::JobEvent()}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, DuplicateModelIdIsAlreadyExists) {
  AddModel("mdl-1");
  EXPECT_EQ(store_->InsertModel(MakeModel("mdl-1", 5)).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(StoreTest, ListModelsPaginatesInCreationOrder) {
  // Two share a timestamp: the id breaks the tie.
  AddModel("mdl-c", 300);
  AddModel("mdl-a", 100);
  AddModel("mdl-e", 200);
  AddModel("mdl-b", 200);
  AddModel("mdl-d", 400);
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->ListModels(2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->items.size(), 2u);
    for (const auto& m : page->items) seen.push_back(m.id());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre("mdl-a", "mdl-b", "mdl-e", "mdl-c", "mdl-d"));

  auto all = store_->ListModels(0, "");  // default page size
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), 5u);
  EXPECT_TRUE(all->next_page_token.empty());
}

TEST_F(StoreTest, BadPageTokenAndSizeAreInvalidArgument) {
  EXPECT_EQ(store_->ListModels(10, "garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 10, "00ff").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListDatasets(-1, "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, ListJobsFiltersByStateAndPaginates) {
  AddModel("mdl-1");
  for (int i = 0; i < 5; ++i) AddJob("job-" + std::to_string(i), "mdl-1", 1000 + i);
  SetState("job-1", v1::RUNNING);
  SetState("job-3", v1::RUNNING);

  auto running = store_->ListJobs(v1::RUNNING, 1, "");
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->items.size(), 1u);
  EXPECT_EQ(running->items[0].id(), "job-1");
  auto next = store_->ListJobs(v1::RUNNING, 1, running->next_page_token);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->items.size(), 1u);
  EXPECT_EQ(next->items[0].id(), "job-3");
  EXPECT_TRUE(next->next_page_token.empty());

  auto all = store_->ListJobs(v1::JOB_STATE_UNSPECIFIED, 100, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->items.size(), 5u);

  auto counts = store_->CountJobsByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_THAT(*counts, ElementsAre(std::pair(v1::QUEUED, int64_t{3}),
                                   std::pair(v1::RUNNING, int64_t{2})));
  auto oldest = store_->OldestQueuedJob();
  ASSERT_TRUE(oldest.ok());
  EXPECT_EQ(oldest->value_or(""), "job-0");
}

TEST_F(StoreTest, CreateJobIsIdempotentByRequestId) {
  AddModel("mdl-1");
  v1::Job first = AddJob("job-1", "mdl-1", 1000, "req-7");
  bool created = true;
  auto again = store_->CreateJob(MakeQueuedJob("job-2", "mdl-1", 2000, "req-7"), QueuedEvent(),
                                 &created);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(created);
  EXPECT_EQ(again->id(), "job-1");
  EXPECT_EQ(store_->GetJob("job-2").status().code(), absl::StatusCode::kNotFound);
  auto found = store_->FindJobByRequestId("req-7");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id(), "job-1");
  // Empty request ids never collide.
  AddJob("job-3", "mdl-1", 3000);
  AddJob("job-4", "mdl-1", 4000);
}

TEST_F(StoreTest, CreateJobRequiresModelAndDatasets) {
  bool created = true;
  auto job = store_->CreateJob(MakeQueuedJob("job-1", "mdl-missing", 1), QueuedEvent(), &created);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("model_id"));
  EXPECT_FALSE(created);
  AddModel("mdl-1");
  v1::Job with_ds = MakeQueuedJob("job-2", "mdl-1", 1);
  with_ds.add_dataset_ids("ds-missing");
  job = store_->CreateJob(with_ds, QueuedEvent(), &created);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("dataset_ids[0]"));
  EXPECT_EQ(store_->GetJob("job-2").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, DeleteModelIsRefusedWhileAJobIsQueuedOrRunning) {
  AddModel("mdl-1");
  AddJob("job-1", "mdl-1", 1000);
  absl::Status st = store_->DeleteModel("mdl-1");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("job-1"));
  SetState("job-1", v1::RUNNING);
  EXPECT_EQ(store_->DeleteModel("mdl-1").code(), absl::StatusCode::kFailedPrecondition);
  SetState("job-1", v1::SUCCEEDED);
  EXPECT_TRUE(store_->DeleteModel("mdl-1").ok());
  EXPECT_EQ(store_->GetModel("mdl-1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, UpdateJobCommitsEverythingOrNothing) {
  AddModel("mdl-1");
  AddJob("job-1", "mdl-1", 1000);
  auto failed = store_->UpdateJob("job-1", [](v1::Job& job, TaskRecord& task,
                                              std::vector<v1::JobEvent>& events) {
    job.set_state(v1::RUNNING);
    task.lease_token = "lease-x";
    events.emplace_back().mutable_log()->set_message("never stored");
    return absl::InternalError("boom");
  });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store_->GetJob("job-1")->state(), v1::QUEUED);
  EXPECT_EQ(store_->ReadEvents("job-1", 0, 0)->size(), 1u);

  std::string task_id;
  auto seq = store_->UpdateJob("job-1", [&](v1::Job& job, TaskRecord& task,
                                            std::vector<v1::JobEvent>& events) {
    job.set_state(v1::RUNNING);
    task.worker_id = "wkr-1";
    task.lease_token = "lease-1";
    task.lease_expire_ms = 5000;
    task_id = task.task_id;
    v1::Artifact* a = job.add_artifacts();
    a->set_id("art-1");
    a->set_path("out.safetensors");
    events.emplace_back().mutable_log()->set_message("one");
    events.emplace_back().mutable_log()->set_message("two");
    return absl::OkStatus();
  });
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 3);
  auto task = store_->GetTask(task_id);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->job_id, "job-1");
  EXPECT_EQ(task->kind, "compress");
  EXPECT_EQ(task->lease_token, "lease-1");
  EXPECT_EQ(store_->GetArtifact("art-1")->path(), "out.safetensors");
  auto expired = store_->ExpiredLeases(4999);
  ASSERT_TRUE(expired.ok());
  EXPECT_TRUE(expired->empty());
  expired = store_->ExpiredLeases(5000);
  ASSERT_EQ(expired->size(), 1u);
  EXPECT_EQ((*expired)[0].worker_id, "wkr-1");
}

TEST_F(StoreTest, EventSequencesIncreaseByOnePerJob) {
  AddModel("mdl-1");
  AddJob("job-1", "mdl-1", 1000);
  AddJob("job-2", "mdl-1", 1001);
  std::vector<v1::JobEvent> batch(3);
  for (auto& e : batch) e.mutable_log()->set_message("x");
  auto last = store_->AppendEvents("job-1", batch);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, 4);
  EXPECT_EQ(*store_->AppendEvents("job-2", {batch[0]}), 2);
  auto events = store_->ReadEvents("job-1", 2, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].sequence(), 3);
  EXPECT_EQ((*events)[1].sequence(), 4);
  EXPECT_GT((*events)[1].time_ms(), 0);
  EXPECT_EQ(store_->ReadEvents("job-1", 0, 2)->size(), 2u);
}

}  // namespace
}  // namespace compressd
