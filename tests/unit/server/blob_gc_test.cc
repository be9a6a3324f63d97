// Blob garbage collection: only blobs no row refers to, and only once they
// are older than the grace period, are deleted; finished jobs' checkpoints
// become collectable, a model's shared checkpoints do not.
#include "server/store/blob_gc.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "common/util.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::Entry;
using ::compressd::testing::JobsEnv;

constexpr int64_t kDay = 24 * 3600 * 1000;

class BlobGcTest : public ::testing::Test {
 protected:
  // Stores `content` and dates it `age_ms` back.
  std::string Stored(const std::string& content, int64_t age_ms) {
    auto sha = env_.blobs->Put(content);
    EXPECT_TRUE(sha.ok()) << sha.status();
    const int64_t t = NowMs() - age_ms;
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = t / 1000;
    times[0].tv_nsec = times[1].tv_nsec = (t % 1000) * 1000000;
    EXPECT_EQ(::utimensat(AT_FDCWD, env_.blobs->PathFor(*sha).c_str(), times, 0), 0);
    return *sha;
  }
  BlobGcStats Collect() {
    auto stats = CollectBlobs(*env_.store, *env_.blobs, NowMs(), kDay);
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : BlobGcStats();
  }
  absl::Status PutCheckpoint(const std::string& owner, const std::string& job_id,
                             const std::string& name, const std::string& sha) {
    CheckpointRecord r;
    r.job_id = owner;
    r.name = name;
    r.sha256 = sha;
    r.size = 1;
    return env_.store->PutCheckpoint(
        r, [](const v1::Job&, const TaskRecord&) { return absl::OkStatus(); }, "", job_id);
  }

  JobsEnv env_;
};

TEST_F(BlobGcTest, OnlyOldUnreferencedBlobsAreDeleted) {
  v1::Model model = ::compressd::testing::MakeModel("mdl-files", 2);
  *model.add_files() = Entry("model.safetensors", "weights");
  ASSERT_TRUE(env_.store->InsertModel(model).ok());
  v1::Dataset dataset;
  dataset.set_id("ds-1");
  *dataset.add_files() = Entry("sotu/a.txt", "text");
  ASSERT_TRUE(env_.store->InsertDataset(dataset).ok());
  v1::Artifact artifact;
  artifact.set_id("art-1");
  artifact.set_job_id("job-x");
  artifact.set_path("model.gguf");
  artifact.set_sha256(Sha256Hex("gguf bytes"));
  ASSERT_TRUE(env_.store->InsertArtifact(artifact).ok());

  const std::string weights = Stored("weights", 2 * kDay);
  Stored("text", 2 * kDay);
  Stored("gguf bytes", 2 * kDay);
  const std::string orphan = Stored("an upload that never got its row", 2 * kDay);
  const std::string young = Stored("an upload still in flight", 0);

  const BlobGcStats stats = Collect();
  EXPECT_EQ(stats.blobs, 5);
  EXPECT_EQ(stats.referenced, 3);
  EXPECT_EQ(stats.young, 1);
  EXPECT_EQ(stats.removed, 1);
  EXPECT_EQ(stats.removed_bytes, 32u);
  EXPECT_FALSE(env_.blobs->Has(orphan));
  EXPECT_TRUE(env_.blobs->Has(young));
  EXPECT_TRUE(env_.blobs->Has(weights));

  // The model deleted, its files go too.
  ASSERT_TRUE(env_.store->DeleteModel("mdl-files").ok());
  EXPECT_EQ(Collect().removed, 1);
  EXPECT_FALSE(env_.blobs->Has(weights));
}

TEST_F(BlobGcTest, AFinishedJobsCheckpointsGoTheModelsSharedOnesStay) {
  const v1::Job job = env_.Submit();
  auto task = env_.Lease(env_.Worker());
  ASSERT_TRUE(task.ok() && !task->task_id().empty());
  const std::string own = Stored("block 7 hidden states", 2 * kDay);
  const std::string shared = Stored("levels database entry", 2 * kDay);
  ASSERT_TRUE(PutCheckpoint(job.id(), job.id(), "calib/block-0007", own).ok());
  ASSERT_TRUE(PutCheckpoint(SharedCheckpointOwner("mdl-1"), job.id(), "shared/levels/x", shared)
                  .ok());
  EXPECT_EQ(Collect().removed, 0);  // the job is running

  v1::CompleteTaskRequest done;
  done.set_task_id(task->task_id());
  done.set_lease_token(task->lease_token());
  ASSERT_TRUE(env_.scheduler.CompleteTask(done).ok());
  EXPECT_EQ(Collect().removed, 1);
  EXPECT_FALSE(env_.blobs->Has(own));
  EXPECT_TRUE(env_.blobs->Has(shared));
}

TEST_F(BlobGcTest, StoringAnOldBlobAgainMakesItYoung) {
  const std::string sha = Stored("same content", 2 * kDay);
  ASSERT_TRUE(env_.blobs->Put("same content").ok());  // deduplicated, but stored now
  EXPECT_EQ(Collect().removed, 0);
  EXPECT_TRUE(env_.blobs->Has(sha));
  EXPECT_EQ(env_.blobs->RemoveIfOlder(sha, NowMs() + 1).value(), true);
  EXPECT_EQ(env_.blobs->RemoveIfOlder(sha, NowMs() + 1).value(), false);  // gone already
}

TEST_F(BlobGcTest, TheCollectorCountsWhatItDeleted) {
  Stored("orphan one", 2 * kDay);
  Stored("orphan two!", 2 * kDay);
  BlobCollector collector(*env_.store, *env_.blobs, env_.metrics,
                          BlobCollectorOptions{/*interval_ms=*/0, /*grace_ms=*/kDay});
  collector.Start();  // interval 0: no thread
  auto stats = collector.RunOnce();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->removed, 2);
  EXPECT_EQ(env_.metrics.blobs_collected().Value(), 2);
  EXPECT_EQ(env_.metrics.blob_bytes_collected().Value(), 21);
  collector.Stop();
}

TEST_F(BlobGcTest, TheCollectorRunsOnItsIntervalUntilStopped) {
  const std::string orphan = Stored("orphan", 2 * kDay);
  BlobCollector collector(*env_.store, *env_.blobs, env_.metrics,
                          BlobCollectorOptions{/*interval_ms=*/10, /*grace_ms=*/kDay});
  collector.Start();
  for (int i = 0; i < 500 && env_.blobs->Has(orphan); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(env_.blobs->Has(orphan));
  collector.Stop();  // joins the thread
  const std::string later = Stored("stored after the stop", 2 * kDay);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(env_.blobs->Has(later));
}

}  // namespace
}  // namespace compressd
