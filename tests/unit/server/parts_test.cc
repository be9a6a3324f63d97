// Fan-out parts (worker.proto Part) in the scheduler: submission, leasing to
// idle workers before queued jobs, claiming by the job's task, completion,
// failure and expiry, their checkpoints, and their end with the job.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "server/jobs/checkpoint_service.h"
#include "server/scheduler/scheduler.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::JobsEnv;
using ::testing::HasSubstr;

class PartsTest : public ::testing::Test {
 protected:
  // A running job whose task `coordinator_` holds.
  void SetUp() override {
    coordinator_worker_ = env_.Worker("coordinator");
    job_ = env_.Submit();
    absl::StatusOr<v1::Task> t = env_.Lease(coordinator_worker_);
    ASSERT_TRUE(t.ok()) << t.status();
    coordinator_ = *t;
  }
  absl::StatusOr<v1::SubmitPartsResponse> Submit(const std::vector<std::string>& names,
                                                 const v1::Task* by = nullptr) {
    v1::SubmitPartsRequest req;
    req.set_task_id((by ? *by : coordinator_).task_id());
    req.set_lease_token((by ? *by : coordinator_).lease_token());
    for (const std::string& n : names) {
      v1::Part* p = req.add_parts();
      p->set_name(n);
      p->set_payload("payload of " + n);
    }
    return env_.scheduler.SubmitParts(req);
  }
  absl::StatusOr<v1::ClaimPartResponse> Claim() {
    v1::ClaimPartRequest req;
    req.set_task_id(coordinator_.task_id());
    req.set_lease_token(coordinator_.lease_token());
    return env_.scheduler.ClaimPart(req);
  }
  std::map<std::string, v1::PartStatus> States() {
    v1::GetPartsRequest req;
    req.set_task_id(coordinator_.task_id());
    req.set_lease_token(coordinator_.lease_token());
    absl::StatusOr<v1::GetPartsResponse> resp = env_.scheduler.GetParts(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    std::map<std::string, v1::PartStatus> out;
    if (resp.ok()) {
      for (const v1::PartStatus& s : resp->parts()) out[s.name()] = s;
    }
    return out;
  }
  absl::Status Complete(const std::string& task_id, const std::string& token) {
    v1::CompleteTaskRequest req;
    req.set_task_id(task_id);
    req.set_lease_token(token);
    return env_.scheduler.CompleteTask(req);
  }
  absl::Status Fail(const v1::Task& task, bool retryable, bool release = false) {
    v1::FailTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_error("boom");
    req.set_retryable(retryable);
    req.set_release(release);
    return env_.scheduler.FailTask(req);
  }
  v1::HeartbeatRequest Beat(const std::string& worker, const v1::Task& task) {
    v1::HeartbeatRequest req;
    req.set_worker_id(worker);
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    return req;
  }

  JobsEnv env_;
  std::string coordinator_worker_;
  v1::Job job_;
  v1::Task coordinator_;
};

TEST_F(PartsTest, IdleWorkersLeasePartsBeforeQueuedJobsAndTheCoordinatorClaimsTheRest) {
  const v1::Job queued = env_.Submit();  // waits behind the parts
  const std::string helper = env_.Worker("helper");
  absl::StatusOr<v1::SubmitPartsResponse> sub = Submit({"a", "b", "c"});
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->workers(), 2);
  // Submitting the same names again changes nothing.
  ASSERT_TRUE(Submit({"a"}).ok());
  EXPECT_EQ(States().size(), 3u);

  absl::StatusOr<v1::Task> part = env_.Lease(helper);
  ASSERT_TRUE(part.ok()) << part.status();
  ASSERT_TRUE(part->has_part());
  EXPECT_EQ(part->part().name(), "a");
  EXPECT_EQ(part->part().payload(), "payload of a");
  EXPECT_EQ(part->part().result(), "parts/a");
  EXPECT_EQ(part->job_id(), job_.id());
  EXPECT_EQ(part->model().id(), job_.model_id());
  EXPECT_EQ(part->recipe().SerializeAsString(), coordinator_.recipe().SerializeAsString());
  EXPECT_NE(part->task_id(), coordinator_.task_id());

  absl::StatusOr<v1::ClaimPartResponse> claimed = Claim();
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_EQ(claimed->part().name(), "b");
  absl::StatusOr<v1::ClaimPartResponse> claimed2 = Claim();
  ASSERT_TRUE(claimed2.ok());
  EXPECT_EQ(claimed2->part().name(), "c");
  absl::StatusOr<v1::ClaimPartResponse> none = Claim();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_part());

  std::map<std::string, v1::PartStatus> s = States();
  EXPECT_EQ(s["a"].state(), v1::PartStatus::LEASED);
  EXPECT_EQ(s["a"].worker_id(), helper);
  EXPECT_EQ(s["b"].worker_id(), coordinator_worker_);

  // The helper's lease is heartbeated like a task's; it stores its result
  // as a checkpoint of the job, then completes.
  env_.now += 1000;
  absl::StatusOr<v1::HeartbeatResponse> hb = env_.scheduler.Heartbeat(Beat(helper, *part));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_FALSE(hb->cancel());
  EXPECT_EQ(hb->lease_expire_ms(), env_.now.load() + JobsEnv::kTtl);
  CheckpointService checkpoints(*env_.store, *env_.blobs);
  ASSERT_TRUE(env_.blobs->Put("result of a").ok());
  v1::PutCheckpointHeader header;
  header.set_task_id(part->task_id());
  header.set_lease_token(part->lease_token());
  header.set_name("parts/a");
  header.set_size(11);
  header.set_sha256(Sha256Hex("result of a"));
  ASSERT_TRUE(checkpoints.RecordPut(header).ok());
  ASSERT_TRUE(Complete(part->task_id(), part->lease_token()).ok());
  EXPECT_EQ(Complete(part->task_id(), part->lease_token()).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Complete(claimed->part_task_id(), claimed->part_lease_token()).ok());
  ASSERT_TRUE(Complete(claimed2->part_task_id(), claimed2->part_lease_token()).ok());
  s = States();
  for (const auto& [name, st] : s) EXPECT_EQ(st.state(), v1::PartStatus::DONE) << name;
  // The result is the job's checkpoint, readable with the job's lease.
  v1::GetCheckpointRequest get;
  get.set_task_id(coordinator_.task_id());
  get.set_lease_token(coordinator_.lease_token());
  get.set_name("parts/a");
  ASSERT_TRUE(checkpoints.Find(get).ok());

  // No part left: the next idle lease is the queued job.
  absl::StatusOr<v1::Task> next = env_.Lease(helper);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_part());
  EXPECT_EQ(next->job_id(), queued.id());
}

TEST_F(PartsTest, FailedAndExpiredPartsReturnToTheQueueUntilTheLimit) {
  const std::string helper = env_.Worker("helper");
  ASSERT_TRUE(Submit({"x"}).ok());
  absl::StatusOr<v1::Task> first = env_.Lease(helper);
  ASSERT_TRUE(first.ok() && first->has_part());
  ASSERT_TRUE(Fail(*first, /*retryable=*/true).ok());
  EXPECT_EQ(States()["x"].state(), v1::PartStatus::QUEUED);
  EXPECT_EQ(States()["x"].failures(), 1);

  absl::StatusOr<v1::Task> second = env_.Lease(helper);
  ASSERT_TRUE(second.ok() && second->has_part());
  EXPECT_NE(second->lease_token(), first->lease_token());
  EXPECT_EQ(env_.scheduler.Heartbeat(Beat(helper, *first)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The coordinator keeps its own lease alive; the helper goes silent.
  env_.now += JobsEnv::kTtl;
  ASSERT_TRUE(env_.scheduler.Heartbeat(Beat(coordinator_worker_, coordinator_)).ok());
  env_.scheduler.Tick();
  EXPECT_EQ(States()["x"].state(), v1::PartStatus::QUEUED);
  EXPECT_THAT(States()["x"].error(), HasSubstr("lease expired"));

  absl::StatusOr<v1::Task> third = env_.Lease(helper);
  ASSERT_TRUE(third.ok() && third->has_part());
  ASSERT_TRUE(Fail(*third, /*retryable=*/true).ok());
  const v1::PartStatus failed = States()["x"];
  EXPECT_EQ(failed.state(), v1::PartStatus::FAILED);
  EXPECT_EQ(failed.failures(), Scheduler::kMaxPartFailures);
  EXPECT_EQ(failed.error(), "boom");
  EXPECT_EQ(env_.State(job_.id()), v1::RUNNING);  // the coordinator decides

  // A non-retryable failure fails the part at once.
  ASSERT_TRUE(Submit({"y"}).ok());
  absl::StatusOr<v1::Task> y = env_.Lease(helper);
  ASSERT_TRUE(y.ok() && y->has_part());
  ASSERT_TRUE(Fail(*y, /*retryable=*/false).ok());
  EXPECT_EQ(States()["y"].state(), v1::PartStatus::FAILED);

  // A stopping worker's hand-back requeues the part and is no failure.
  ASSERT_TRUE(Submit({"z"}).ok());
  for (int i = 0; i < Scheduler::kMaxPartFailures + 1; ++i) {
    absl::StatusOr<v1::Task> z = env_.Lease(helper);
    ASSERT_TRUE(z.ok() && z->has_part());
    ASSERT_TRUE(Fail(*z, /*retryable=*/false, /*release=*/true).ok());
    EXPECT_EQ(States()["z"].state(), v1::PartStatus::QUEUED);
    EXPECT_EQ(States()["z"].failures(), 0);
  }
}

TEST_F(PartsTest, PartsEndWithTheirJobAttempt) {
  const std::string helper = env_.Worker("helper");
  ASSERT_TRUE(Submit({"p", "q"}).ok());
  absl::StatusOr<v1::Task> part = env_.Lease(helper);
  ASSERT_TRUE(part.ok() && part->has_part());
  // The coordinator dies: its lease expires, the job is requeued, and the
  // parts of that attempt are gone; the helper is told to stop.
  env_.now += JobsEnv::kTtl;
  ASSERT_TRUE(env_.scheduler.Heartbeat(Beat(helper, *part)).ok());
  env_.now += 1;
  env_.scheduler.Tick();
  EXPECT_EQ(env_.State(job_.id()), v1::QUEUED);
  absl::StatusOr<v1::HeartbeatResponse> hb = env_.scheduler.Heartbeat(Beat(helper, *part));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->cancel());
  EXPECT_EQ(Complete(part->task_id(), part->lease_token()).code(),
            absl::StatusCode::kFailedPrecondition);
  CheckpointService checkpoints(*env_.store, *env_.blobs);
  v1::GetCheckpointRequest get;
  get.set_task_id(part->task_id());
  get.set_lease_token(part->lease_token());
  get.set_name("parts/p");
  EXPECT_EQ(checkpoints.Find(get).status().code(), absl::StatusCode::kFailedPrecondition);
  // The next lease is the job itself, not a stale part.
  absl::StatusOr<v1::Task> again = env_.Lease(helper);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->has_part());
  EXPECT_EQ(again->job_id(), job_.id());
  EXPECT_EQ(again->attempt(), 2);
}

TEST_F(PartsTest, BadRequestsNameTheField) {
  absl::StatusOr<v1::SubmitPartsResponse> bad = Submit({"../escape"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("parts[0].name"));
  // A name that could not be a checkpoint name either.
  EXPECT_EQ(Submit({"a:b"}).status().code(), absl::StatusCode::kInvalidArgument);
  v1::Task stale = coordinator_;
  stale.set_lease_token("lease-stale");
  EXPECT_EQ(Submit({"a"}, &stale).status().code(), absl::StatusCode::kFailedPrecondition);
  // A part may not submit parts or report events.
  const std::string helper = env_.Worker("helper");
  ASSERT_TRUE(Submit({"a"}).ok());
  absl::StatusOr<v1::Task> part = env_.Lease(helper);
  ASSERT_TRUE(part.ok() && part->has_part());
  absl::StatusOr<v1::SubmitPartsResponse> nested = Submit({"b"}, &*part);
  EXPECT_EQ(nested.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nested.status().message(), HasSubstr("is a part"));
  v1::ReportEventsRequest events;
  events.set_task_id(part->task_id());
  events.set_lease_token(part->lease_token());
  EXPECT_EQ(env_.scheduler.ReportEvents(events).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(env_.scheduler.CheckLease(part->task_id(), part->lease_token()).code(),
            absl::StatusCode::kInvalidArgument);
  v1::GetPartsRequest get;
  get.set_task_id(coordinator_.task_id());
  get.set_lease_token(coordinator_.lease_token());
  get.add_names("never-submitted");
  absl::StatusOr<v1::GetPartsResponse> missing = env_.scheduler.GetParts(get);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("never-submitted"));
}

}  // namespace
}  // namespace compressd
