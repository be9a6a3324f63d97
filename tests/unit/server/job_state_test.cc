#include "server/core/job_state.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/core/event_bus.h"

namespace compressd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr v1::JobState kAll[] = {v1::JOB_STATE_UNSPECIFIED, v1::QUEUED, v1::RUNNING,
                                 v1::SUCCEEDED, v1::FAILED, v1::CANCELLED};

TEST(JobStateTest, TransitionTableIsExactlyTheDocumentedOne) {
  const std::vector<std::pair<v1::JobState, v1::JobState>> legal = {
      {v1::QUEUED, v1::RUNNING},    {v1::QUEUED, v1::CANCELLED}, {v1::RUNNING, v1::SUCCEEDED},
      {v1::RUNNING, v1::FAILED},    {v1::RUNNING, v1::QUEUED},   {v1::RUNNING, v1::CANCELLED}};
  for (v1::JobState from : kAll) {
    for (v1::JobState to : kAll) {
      bool expected = std::find(legal.begin(), legal.end(), std::pair(from, to)) != legal.end();
      EXPECT_EQ(IsLegalTransition(from, to), expected)
          << JobStateName(from) << " -> " << JobStateName(to);
      absl::Status st = CheckTransition(from, to);
      EXPECT_EQ(st.ok(), expected);
      if (!expected) {
        EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
        EXPECT_THAT(st.message(), HasSubstr(std::string(JobStateName(from))));
        EXPECT_THAT(st.message(), HasSubstr(std::string(JobStateName(to))));
      }
    }
  }
}

TEST(JobStateTest, TerminalStates) {
  EXPECT_FALSE(IsTerminal(v1::QUEUED));
  EXPECT_FALSE(IsTerminal(v1::RUNNING));
  EXPECT_TRUE(IsTerminal(v1::SUCCEEDED));
  EXPECT_TRUE(IsTerminal(v1::FAILED));
  EXPECT_TRUE(IsTerminal(v1::CANCELLED));
}

TEST(JobStateTest, ApplyTransitionSetsFieldsAndAppendsEvent) {
  v1::Job job;
  job.set_id("job-1");
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ApplyTransition(&job, v1::QUEUED, "submitted", 10, &events).ok());
  ASSERT_TRUE(ApplyTransition(&job, v1::RUNNING, "leased", 20, &events).ok());
  EXPECT_EQ(job.start_time_ms(), 20);
  ASSERT_TRUE(ApplyTransition(&job, v1::FAILED, "bad weights", 30, &events).ok());
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(job.error(), "bad weights");
  EXPECT_EQ(job.end_time_ms(), 30);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].state().from(), v1::RUNNING);
  EXPECT_EQ(events[2].state().to(), v1::FAILED);
  EXPECT_EQ(events[2].state().reason(), "bad weights");
  EXPECT_EQ(events[2].time_ms(), 30);

  absl::Status st = ApplyTransition(&job, v1::RUNNING, "again", 40, &events);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("job-1"));
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_EQ(events.size(), 3u);
}

TEST(EventBusTest, PublishReachesOnlySubscribersOfThatJob) {
  EventBus bus;
  std::vector<int64_t> a, b;
  int64_t ta = bus.Subscribe("job-a", [&](int64_t seq) { a.push_back(seq); });
  bus.Subscribe("job-b", [&](int64_t seq) { b.push_back(seq); });
  bus.Publish("job-a", 1);
  bus.Publish("job-b", 7);
  bus.Publish("job-a", 2);
  bus.Unsubscribe(ta);
  bus.Publish("job-a", 3);
  EXPECT_THAT(a, ElementsAre(1, 2));
  EXPECT_THAT(b, ElementsAre(7));
}

}  // namespace
}  // namespace compressd
