// A job driven end to end through the WorkerService by a fake worker, watched
// through WatchJob, with its artifact downloaded and resumed; cancellation
// reaching the worker through Heartbeat.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/sha256.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing {
namespace {

class JobFlowTest : public EdgeTest {
 protected:
  struct Watch {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader;
  };

  Watch StartWatch(const std::string& job_id, int64_t after_sequence) {
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_after_sequence(after_sequence);
    Watch watch{Context(), nullptr};
    watch.reader = api_->WatchJob(watch.ctx.get(), req);
    return watch;
  }

  // Reads events until one whose log message is `message`; returns them all.
  std::vector<v1::JobEvent> ReadUntilLog(Watch& watch, const std::string& message) {
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (watch.reader->Read(&event)) {
      events.push_back(event);
      if (event.has_log() && event.log().message() == message) {
        return events;
      }
    }
    ADD_FAILURE() << "stream ended before log \"" << message << "\"";
    return events;
  }

  // Reads to the end of the stream, then checks it finished OK.
  std::vector<v1::JobEvent> ReadToEnd(Watch& watch) {
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (watch.reader->Read(&event)) {
      events.push_back(event);
    }
    grpc::Status status = watch.reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return events;
  }

  // A queued job leased by a freshly registered fake worker.
  v1::Task StartRunningJob(v1::Job* job) {
    const v1::Model model = UploadFakeModel("tiny");
    *job = Submit(model.id(), "");
    worker_id_ = RegisterWorker();
    v1::Task task = Lease(worker_id_);
    EXPECT_EQ(task.job_id(), job->id());
    EXPECT_FALSE(task.lease_token().empty());
    return task;
  }

  std::string worker_id_;
};

void ExpectContiguous(const std::vector<v1::JobEvent>& events, int64_t first_sequence) {
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), first_sequence + static_cast<int64_t>(i));
  }
}

TEST_F(JobFlowTest, WatchResumesAfterSequenceThenStreamsLiveEventsUntilTerminal) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  ASSERT_TRUE(ReportLog(task, "missed-1").ok());
  ASSERT_TRUE(ReportLog(task, "missed-2").ok());

  // The full history so far, from the beginning.
  Watch full = StartWatch(job.id(), 0);
  const std::vector<v1::JobEvent> history = ReadUntilLog(full, "missed-2");
  ASSERT_GE(history.size(), 3u);  // at least QUEUED state, the two logs
  ExpectContiguous(history, 1);
  EXPECT_TRUE(history.front().has_state());

  // A watcher that saw everything up to the event before "missed-1" gets
  // exactly the events it missed, identical to the full history's tail.
  const int64_t after = history[history.size() - 3].sequence();
  Watch resumed = StartWatch(job.id(), after);
  const std::vector<v1::JobEvent> missed = ReadUntilLog(resumed, "missed-2");
  ASSERT_EQ(missed.size(), 2u);
  EXPECT_EQ(missed[0].SerializeAsString(), history[history.size() - 2].SerializeAsString());
  EXPECT_EQ(missed[1].SerializeAsString(), history.back().SerializeAsString());

  // Live events reach both watchers; completion ends both streams.
  ASSERT_TRUE(ReportLog(task, "live-1").ok());
  const std::vector<v1::JobEvent> live = ReadUntilLog(resumed, "live-1");
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].sequence(), history.back().sequence() + 1);
  ASSERT_TRUE(Complete(task).ok());

  const std::vector<v1::JobEvent> rest = ReadToEnd(resumed);
  ASSERT_FALSE(rest.empty());
  ExpectContiguous(rest, live[0].sequence() + 1);
  ASSERT_TRUE(rest.back().has_state());
  EXPECT_EQ(rest.back().state().to(), v1::SUCCEEDED);

  const std::vector<v1::JobEvent> full_rest = ReadToEnd(full);
  ASSERT_FALSE(full_rest.empty());
  EXPECT_EQ(full_rest.back().SerializeAsString(), rest.back().SerializeAsString());

  // Watching a finished job replays from after_sequence and ends at once.
  Watch late = StartWatch(job.id(), rest.back().sequence() - 1);
  const std::vector<v1::JobEvent> replay = ReadToEnd(late);
  ASSERT_EQ(replay.size(), 1u);
  EXPECT_EQ(replay[0].state().to(), v1::SUCCEEDED);
}

TEST_F(JobFlowTest, ClientCancellationEndsAWatch) {
  v1::Job job;
  StartRunningJob(&job);
  Watch watch = StartWatch(job.id(), 1 << 20);  // nothing to send: the reactor idles
  watch.ctx->TryCancel();
  v1::JobEvent event;
  EXPECT_FALSE(watch.reader->Read(&event));
  EXPECT_EQ(watch.reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(JobFlowTest, ArtifactDownloadResumesFromOffset) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  const std::string content = RandomBytes((5 << 20) / 2 + 17, 42);  // 2.5 MiB: three chunks
  v1::Artifact artifact;
  grpc::Status status = UploadArtifact(task, "model.safetensors", content, &artifact);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(artifact.size(), content.size());
  EXPECT_EQ(artifact.sha256(), Sha256Hex(content));
  ASSERT_TRUE(Complete(task).ok());

  v1::Job done;
  v1::GetJobRequest get;
  get.set_job_id(job.id());
  ASSERT_TRUE(api_->GetJob(Context().get(), get, &done).ok());
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  ASSERT_EQ(done.artifacts_size(), 1);
  EXPECT_EQ(done.artifacts(0).id(), artifact.id());

  v1::Artifact info;
  std::string data;
  int messages = 0;
  ASSERT_TRUE(Download(artifact.id(), 0, &info, &data, &messages).ok());
  EXPECT_EQ(data, content);
  EXPECT_EQ(messages, 1 + 3);  // info, then 1 MiB chunks
  EXPECT_EQ(info.sha256(), Sha256Hex(content));
  EXPECT_EQ(info.path(), "model.safetensors");

  const uint64_t offset = (3 << 20) / 2 + 3;
  ASSERT_TRUE(Download(artifact.id(), offset, &info, &data).ok());
  EXPECT_EQ(data, content.substr(offset));
  EXPECT_EQ(info.sha256(), Sha256Hex(content));  // always the whole file's digest
  EXPECT_EQ(info.size(), content.size());

  // Only the bytes actually sent are counted.
  EXPECT_EQ(metrics_->bytes_downloaded().Value(),
            static_cast<double>(content.size() + (content.size() - offset)));

  ASSERT_TRUE(Download(artifact.id(), content.size(), &info, &data, &messages).ok());
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(messages, 1);
  EXPECT_EQ(Download(artifact.id(), content.size() + 1, &info, &data).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
}

TEST_F(JobFlowTest, ArtifactUploadIsVerified) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  v1::Artifact artifact;
  EXPECT_EQ(UploadArtifact(task, "../escape.bin", "data", &artifact).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::Task stale = task;
  stale.set_lease_token("not-the-lease");
  EXPECT_EQ(UploadArtifact(stale, "out.bin", "data", &artifact).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // Declared sha256 of other content: rejected at commit.
  auto ctx = Context();
  auto writer = worker_api_->UploadArtifact(ctx.get(), &artifact);
  v1::UploadArtifactRequest header;
  header.mutable_header()->set_task_id(task.task_id());
  header.mutable_header()->set_lease_token(task.lease_token());
  header.mutable_header()->set_path("out.bin");
  header.mutable_header()->set_size(4);
  header.mutable_header()->set_sha256(Sha256Hex("abcd"));
  v1::UploadArtifactRequest chunk;
  chunk.set_chunk("abce");
  writer->Write(header);
  writer->Write(chunk);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobFlowTest, FetchBlobStreamsModelFilesFromOffset) {
  const std::vector<TestFile> files = FakeHfModelFiles();
  UploadFakeModel("tiny");
  v1::FetchBlobRequest req;
  req.set_sha256(Sha256Hex(files[1].content));
  req.set_offset(100);
  auto ctx = Context();
  auto reader = worker_api_->FetchBlob(ctx.get(), req);
  std::string data;
  v1::BlobChunk chunk;
  while (reader->Read(&chunk)) {
    data += chunk.data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(data, files[1].content.substr(100));
}

// Found by an adversarial probe: the server never re-hashed a blob it
// served, so DownloadArtifact streamed flipped bytes with status OK and a
// worker retried a job on a corrupted model three times. Every read is now
// verified: the last chunk is withheld, the stream ends DATA_LOSS, and the
// blob is quarantined (later reads are DATA_LOSS at once).
TEST_F(JobFlowTest, CorruptedBlobsAreDataLossAndQuarantined) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  const std::string content = RandomBytes((5 << 20) / 2 + 17, 7);  // three chunks
  v1::Artifact artifact;
  ASSERT_TRUE(UploadArtifact(task, "model.safetensors", content, &artifact).ok());
  ASSERT_TRUE(Complete(task).ok());
  const std::string path = blobs_->PathFor(artifact.sha256());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12345);
    f.put(static_cast<char>(content[12345] ^ 1));
  }
  v1::Artifact info;
  std::string data;
  grpc::Status status = Download(artifact.id(), 0, &info, &data);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("quarantined"));
  EXPECT_LT(data.size(), content.size());  // the last chunk never left
  EXPECT_FALSE(blobs_->Has(artifact.sha256()));
  // A resumed read, and a worker's FetchBlob: DATA_LOSS without streaming.
  EXPECT_EQ(Download(artifact.id(), 1 << 20, &info, &data).error_code(),
            grpc::StatusCode::DATA_LOSS);
  v1::FetchBlobRequest req;
  req.set_sha256(artifact.sha256());
  auto ctx = Context();
  auto reader = worker_api_->FetchBlob(ctx.get(), req);
  v1::BlobChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
}

// There was no DeleteJob: nothing a user submitted could be cleaned up.
TEST_F(JobFlowTest, DeleteJobCancelsARunningJobAndRemovesEverythingOfIt) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  v1::Artifact artifact;
  ASSERT_TRUE(UploadArtifact(task, "out.bin", "partial output", &artifact).ok());
  ASSERT_TRUE(ReportLog(task, "working").ok());
  Watch watch = StartWatch(job.id(), 0);
  v1::DeleteJobRequest del;
  del.set_job_id(job.id());
  v1::DeleteJobResponse deleted;
  grpc::Status status = api_->DeleteJob(Context().get(), del, &deleted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The watcher's stream ends: after the CANCELLED event, or NOT_FOUND once
  // the job is gone, whichever it reaches first.
  v1::JobEvent event;
  while (watch.reader->Read(&event)) {
  }
  const grpc::StatusCode watched = watch.reader->Finish().error_code();
  EXPECT_TRUE(watched == grpc::StatusCode::OK || watched == grpc::StatusCode::NOT_FOUND) << watched;
  v1::GetJobRequest get;
  get.set_job_id(job.id());
  v1::Job gone;
  EXPECT_EQ(api_->GetJob(Context().get(), get, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::Artifact info;
  std::string data;
  EXPECT_EQ(Download(artifact.id(), 0, &info, &data).error_code(), grpc::StatusCode::NOT_FOUND);
  // The worker's lease is gone with it: it stops at its next call.
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker_id_);
  beat.set_task_id(task.task_id());
  beat.set_lease_token(task.lease_token());
  v1::HeartbeatResponse resp;
  EXPECT_FALSE(worker_api_->Heartbeat(Context().get(), beat, &resp).ok() && !resp.cancel());
  EXPECT_EQ(api_->DeleteJob(Context().get(), del, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobFlowTest, DeleteDatasetIsRefusedWhileALiveJobUsesIt) {
  const v1::Model model = UploadFakeModel("tiny");
  v1::Dataset dataset;
  dataset.set_id("ds-1");
  dataset.set_name("text");
  dataset.set_create_time_ms(1);
  ASSERT_TRUE(store_->InsertDataset(dataset).ok());
  v1::SubmitJobRequest req;
  req.set_model_id(model.id());
  *req.mutable_recipe() = MagnitudeRecipe();
  req.add_dataset_ids("ds-1");
  v1::Job job;
  ASSERT_TRUE(api_->SubmitJob(Context().get(), req, &job).ok());
  v1::DeleteDatasetRequest del;
  del.set_dataset_id("ds-1");
  v1::DeleteDatasetResponse resp;
  grpc::Status status = api_->DeleteDataset(Context().get(), del, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr(job.id()));
  v1::DeleteJobRequest del_job;
  del_job.set_job_id(job.id());
  v1::DeleteJobResponse deleted;
  ASSERT_TRUE(api_->DeleteJob(Context().get(), del_job, &deleted).ok());
  EXPECT_TRUE(api_->DeleteDataset(Context().get(), del, &resp).ok());
  v1::GetDatasetRequest get;
  get.set_dataset_id("ds-1");
  v1::Dataset gone;
  EXPECT_EQ(api_->GetDataset(Context().get(), get, &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobFlowTest, CancelWhileRunningIsAnsweredOnTheNextHeartbeat) {
  v1::Job job;
  const v1::Task task = StartRunningJob(&job);
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker_id_);
  beat.set_task_id(task.task_id());
  beat.set_lease_token(task.lease_token());
  beat.mutable_progress()->set_stage("prune");
  v1::HeartbeatResponse resp;
  ASSERT_TRUE(worker_api_->Heartbeat(Context().get(), beat, &resp).ok());
  EXPECT_FALSE(resp.cancel());

  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.id());
  v1::Job cancelled;
  ASSERT_TRUE(api_->CancelJob(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::CANCELLED);

  grpc::Status status = worker_api_->Heartbeat(Context().get(), beat, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(resp.cancel());
  // The cancelled attempt can no longer report a result.
  EXPECT_EQ(Complete(task).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Cancelling again is an illegal transition.
  EXPECT_EQ(api_->CancelJob(Context().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace compressd::testing
