#include "server/jobs/job_service.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::JobsEnv;
using ::compressd::testing::ValidRecipe;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::SubmitJobRequest Request() {
  v1::SubmitJobRequest req;
  req.set_model_id("mdl-1");
  *req.mutable_recipe() = ValidRecipe();
  return req;
}

class JobServiceTest : public ::testing::Test {
 protected:
  JobsEnv env_;
};

TEST_F(JobServiceTest, SubmitQueuesJobWithDefaultsAndFirstEvent) {
  v1::Job job = env_.Submit();
  ASSERT_FALSE(job.id().empty());
  EXPECT_EQ(job.id().rfind("job-", 0), 0u);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.max_attempts(), 3);
  EXPECT_EQ(job.attempts(), 0);
  EXPECT_GT(job.create_time_ms(), 0);
  EXPECT_EQ(job.recipe().targets().include(), ".*(_proj|\\.w[123])$");  // defaults applied
  EXPECT_EQ(job.recipe().output().format(), "hf_safetensors");

  auto events = env_.jobs.ReadEvents(job.id(), 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].sequence(), 1);
  EXPECT_EQ((*events)[0].state().to(), v1::QUEUED);
  EXPECT_EQ(env_.metrics.queue_depth().Value(), 1);
  EXPECT_EQ(env_.metrics.jobs_in_state("QUEUED").Value(), 1);
}

TEST_F(JobServiceTest, CancelPublishesOnTheEventBus) {
  std::vector<int64_t> seen;
  v1::Job job = env_.Submit();
  env_.bus.Subscribe(job.id(), [&](int64_t seq) { seen.push_back(seq); });
  ASSERT_TRUE(env_.jobs.Cancel(job.id()).ok());
  EXPECT_THAT(seen, ElementsAre(2));
}

TEST_F(JobServiceTest, SubmitValidatesTheRequest) {
  v1::SubmitJobRequest req = Request();
  req.clear_model_id();
  EXPECT_EQ(env_.jobs.Submit(req).status().code(), absl::StatusCode::kInvalidArgument);

  req = Request();
  req.set_model_id("mdl-nope");
  EXPECT_EQ(env_.jobs.Submit(req).status().code(), absl::StatusCode::kNotFound);

  req = Request();
  req.add_dataset_ids("ds-nope");
  auto st = env_.jobs.Submit(req).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("ds-nope"));

  for (int bad : {-1, 101}) {
    req = Request();
    req.set_max_attempts(bad);
    st = env_.jobs.Submit(req).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(st.message(), HasSubstr("max_attempts"));
  }
  req = Request();
  req.set_max_attempts(100);
  EXPECT_TRUE(env_.jobs.Submit(req).ok());

  req = Request();
  req.mutable_recipe()->clear_stages();
  st = env_.jobs.Submit(req).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("recipe"));

  auto list = env_.jobs.List(v1::ListJobsRequest());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 1);  // only the max_attempts=100 job
}

TEST_F(JobServiceTest, SubmitIsIdempotentByRequestId) {
  v1::Job first = env_.Submit(0, "req-1");
  v1::SubmitJobRequest retry = Request();
  retry.set_request_id("req-1");
  retry.set_max_attempts(7);  // ignored: the first job wins
  auto again = env_.jobs.Submit(retry);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id(), first.id());
  EXPECT_EQ(again->max_attempts(), 3);
  EXPECT_EQ(env_.jobs.List(v1::ListJobsRequest())->jobs_size(), 1);
  EXPECT_NE(env_.Submit(0, "req-2").id(), first.id());
}

TEST_F(JobServiceTest, CancelQueuedJobAndRefuseTerminal) {
  v1::Job job = env_.Submit();
  auto cancelled = env_.jobs.Cancel(job.id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  EXPECT_EQ(cancelled->error(), "cancelled by user");
  EXPECT_GT(cancelled->end_time_ms(), 0);
  auto events = env_.jobs.ReadEvents(job.id(), 1, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].state().from(), v1::QUEUED);
  EXPECT_EQ((*events)[0].state().to(), v1::CANCELLED);
  EXPECT_EQ((*events)[0].state().reason(), "cancelled by user");

  auto again = env_.jobs.Cancel(job.id());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("CANCELLED"));
  EXPECT_EQ(env_.jobs.Cancel("job-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(env_.metrics.queue_depth().Value(), 0);
  // A cancelled job is never leased.
  auto task = env_.Lease(env_.Worker());
  ASSERT_TRUE(task.ok());
  EXPECT_TRUE(task->task_id().empty());
}

TEST_F(JobServiceTest, ListFiltersByStateAndPaginates) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(env_.Submit().id());
  ASSERT_TRUE(env_.jobs.Cancel(ids[1]).ok());
  v1::ListJobsRequest req;
  req.set_state(v1::QUEUED);
  req.set_page_size(1);
  auto page = env_.jobs.List(req);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs_size(), 1);
  EXPECT_FALSE(page->next_page_token().empty());
  req.set_page_token(page->next_page_token());
  auto next = env_.jobs.List(req);
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(next->jobs_size(), 1);
  EXPECT_TRUE(next->next_page_token().empty());
  EXPECT_NE(page->jobs(0).id(), ids[1]);
  EXPECT_NE(next->jobs(0).id(), ids[1]);
  req.set_state(static_cast<v1::JobState>(99));
  EXPECT_EQ(env_.jobs.List(req).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobServiceTest, UnknownJobIsNotFound) {
  EXPECT_EQ(env_.jobs.Get("job-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(env_.jobs.ReadEvents("job-nope", 0, 10).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(env_.jobs.Get("").status().code(), absl::StatusCode::kInvalidArgument);
}

// Evaluation sets name uploaded datasets: the job gets them, the file must
// exist in them, and a local path is refused (workers read uploaded data only).
TEST_F(JobServiceTest, EvaluationSetsNameUploadedDatasetFiles) {
  v1::Dataset ds;
  ds.set_id("ds-text");
  ds.set_name("persuasion");
  v1::FileEntry* file = ds.add_files();
  file->set_path("persuasion.txt");
  file->set_size(5);
  file->set_sha256(std::string(64, 'a'));
  ASSERT_TRUE(env_.store->InsertDataset(ds).ok());

  v1::SubmitJobRequest req = Request();
  req.mutable_recipe()->clear_stages();  // evaluate-only
  v1::EvalDataset* set = req.mutable_recipe()->mutable_evaluation()->add_perplexity();
  set->set_dataset_id("ds-text");
  set->set_file("persuasion.txt");
  auto job = env_.jobs.Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->dataset_ids(), ElementsAre("ds-text"));
  EXPECT_EQ(job->recipe().evaluation().perplexity(0).windows(), 64);  // defaults applied

  req.add_dataset_ids("ds-text");  // named twice: listed once
  req.set_request_id("again");
  job = env_.jobs.Submit(req);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->dataset_ids(), ElementsAre("ds-text"));

  set->set_file("kjv.txt");
  req.set_request_id("missing-file");
  auto st = env_.jobs.Submit(req).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("evaluation.perplexity[0].file"));
  EXPECT_THAT(st.message(), HasSubstr("persuasion.txt"));

  set->set_dataset_id("ds-nope");
  req.set_request_id("missing-dataset");
  st = env_.jobs.Submit(req).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("evaluation.perplexity[0].dataset_id"));

  set->clear_dataset_id();
  set->clear_file();
  set->set_path("/etc/passwd");
  req.set_request_id("local-path");
  st = env_.jobs.Submit(req).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("evaluation.perplexity[0].path"));
}

}  // namespace
}  // namespace compressd
