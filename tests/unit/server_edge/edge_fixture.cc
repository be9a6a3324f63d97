#include "tests/unit/server_edge/edge_fixture.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "common/sha256.h"
#include "tests/testing/safetensors_bytes.h"

namespace compressd::testing {

std::vector<v1::UploadModelRequest> ModelUploadMessages(const std::string& name,
                                                        v1::ModelFormat format,
                                                        const std::vector<TestFile>& files) {
  std::vector<v1::UploadModelRequest> out(1);
  v1::UploadModelHeader* header = out[0].mutable_header();
  header->set_name(name);
  header->set_format(format);
  for (size_t i = 0; i < files.size(); ++i) {
    v1::FileEntry* entry = header->add_files();
    entry->set_path(files[i].path);
    entry->set_size(files[i].content.size());
    entry->set_sha256(Sha256Hex(files[i].content));
    v1::UploadModelRequest chunk;
    chunk.mutable_chunk()->set_file_index(static_cast<uint32_t>(i));
    chunk.mutable_chunk()->set_data(files[i].content);
    out.push_back(std::move(chunk));
  }
  return out;
}

std::vector<TestFile> FakeHfModelFiles() {
  return {{"config.json", R"({"model_type": "llama", "num_hidden_layers": 1})"},
          {"model.safetensors", SafetensorsBytes(300, 7)}};
}

v1::Recipe MagnitudeRecipe() {
  v1::Recipe recipe;
  recipe.add_stages()->mutable_magnitude()->set_sparsity(0.5);
  return recipe;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) {
    c = static_cast<char>(rng() & 0xff);
  }
  return out;
}

SchedulerOptions EdgeTest::MakeSchedulerOptions() const {
  SchedulerOptions options;
  options.tick_ms = 20;
  return options;
}

void EdgeTest::SetUp() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "edge_test_XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  dir_ = tmpl;
  auto store = Store::Open(dir_ + "/compressd.db");
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
  auto blobs = BlobStore::Open(dir_ + "/blobs");
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  blobs_ = *std::move(blobs);
  registry_ = std::make_unique<prometheus::Registry>();
  metrics_ = std::make_unique<ServerMetrics>(*registry_);
  bus_ = std::make_unique<EventBus>();
  scheduler_ = std::make_unique<Scheduler>(*store_, *bus_, *metrics_, MakeSchedulerOptions());
  jobs_ = std::make_unique<JobService>(*store_, *bus_, *scheduler_, *metrics_);
  models_ = std::make_unique<ModelRegistry>(*store_, *blobs_, *metrics_);
  auth_ = std::make_unique<Authenticator>(*store_, std::string(64, 'a'), MakeAuthMode());
  scheduler_->Start();
  auto server = GrpcServer::Start(MakeGrpcOptions(), Core());
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  ASSERT_GT(server_->port(), 0);
  auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  api_ = v1::CompressionService::NewStub(channel);
  worker_api_ = v1::WorkerService::NewStub(channel);
}

void EdgeTest::TearDown() {
  if (scheduler_) {
    scheduler_->Stop();
  }
  if (server_) {
    server_->Shutdown(std::chrono::milliseconds(0));
  }
  server_.reset();
  models_.reset();
  jobs_.reset();
  scheduler_.reset();
  store_.reset();
  if (!dir_.empty()) {
    std::filesystem::remove_all(dir_);
  }
}

std::unique_ptr<grpc::ClientContext> EdgeTest::Context(int timeout_ms) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return ctx;
}

grpc::Status EdgeTest::Upload(const std::vector<v1::UploadModelRequest>& messages,
                              v1::Model* model) {
  auto ctx = Context();
  auto writer = api_->UploadModel(ctx.get(), model);
  for (const v1::UploadModelRequest& message : messages) {
    if (!writer->Write(message)) {
      break;  // the server finished the call early
    }
  }
  writer->WritesDone();
  return writer->Finish();
}

v1::Model EdgeTest::UploadFakeModel(const std::string& name) {
  v1::Model model;
  grpc::Status status =
      Upload(ModelUploadMessages(name, v1::HF_SAFETENSORS, FakeHfModelFiles()), &model);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return model;
}

v1::Job EdgeTest::Submit(const std::string& model_id, const std::string& request_id) {
  v1::SubmitJobRequest req;
  req.set_model_id(model_id);
  *req.mutable_recipe() = MagnitudeRecipe();
  req.set_request_id(request_id);
  v1::Job job;
  grpc::Status status = api_->SubmitJob(Context().get(), req, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return job;
}

std::string EdgeTest::RegisterWorker() {
  v1::RegisterWorkerRequest req;
  req.set_name("test-worker");
  req.set_device("cpu");
  req.set_threads(1);
  v1::RegisterWorkerResponse resp;
  grpc::Status status = worker_api_->RegisterWorker(Context().get(), req, &resp);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(resp.worker_id().empty());
  return resp.worker_id();
}

v1::Task EdgeTest::Lease(const std::string& worker_id, int64_t wait_ms) {
  v1::LeaseTaskRequest req;
  req.set_worker_id(worker_id);
  req.set_wait_ms(wait_ms);
  v1::LeaseTaskResponse resp;
  grpc::Status status = worker_api_->LeaseTask(Context().get(), req, &resp);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return resp.task();
}

grpc::Status EdgeTest::ReportLog(const v1::Task& task, const std::string& message) {
  v1::ReportEventsRequest req;
  req.set_task_id(task.task_id());
  req.set_lease_token(task.lease_token());
  v1::LogLine* log = req.add_events()->mutable_log();
  log->set_level("info");
  log->set_message(message);
  v1::ReportEventsResponse resp;
  return worker_api_->ReportEvents(Context().get(), req, &resp);
}

grpc::Status EdgeTest::UploadArtifact(const v1::Task& task, const std::string& path,
                                      const std::string& content, v1::Artifact* artifact) {
  auto ctx = Context();
  auto writer = worker_api_->UploadArtifact(ctx.get(), artifact);
  v1::UploadArtifactRequest header;
  header.mutable_header()->set_task_id(task.task_id());
  header.mutable_header()->set_lease_token(task.lease_token());
  header.mutable_header()->set_path(path);
  header.mutable_header()->set_size(content.size());
  header.mutable_header()->set_sha256(Sha256Hex(content));
  bool ok = writer->Write(header);
  constexpr size_t kChunk = 64 << 10;
  for (size_t at = 0; ok && at < content.size(); at += kChunk) {
    v1::UploadArtifactRequest chunk;
    chunk.set_chunk(content.substr(at, kChunk));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  return writer->Finish();
}

grpc::Status EdgeTest::Complete(const v1::Task& task) {
  v1::CompleteTaskRequest req;
  req.set_task_id(task.task_id());
  req.set_lease_token(task.lease_token());
  req.set_summary_json(R"({"sparsity": 0.5})");
  v1::CompleteTaskResponse resp;
  return worker_api_->CompleteTask(Context().get(), req, &resp);
}

grpc::Status EdgeTest::Download(const std::string& artifact_id, uint64_t offset, v1::Artifact* info,
                                std::string* data, int* messages) {
  v1::DownloadArtifactRequest req;
  req.set_artifact_id(artifact_id);
  req.set_offset(offset);
  auto ctx = Context();
  auto reader = api_->DownloadArtifact(ctx.get(), req);
  v1::DownloadArtifactResponse resp;
  int count = 0;
  data->clear();
  while (reader->Read(&resp)) {
    if (count == 0) {
      EXPECT_TRUE(resp.has_info()) << "the first message must be the Artifact info";
      *info = resp.info();
    } else {
      EXPECT_EQ(resp.kind_case(), v1::DownloadArtifactResponse::kChunk);
      data->append(resp.chunk());
    }
    ++count;
  }
  if (messages != nullptr) {
    *messages = count;
  }
  return reader->Finish();
}

}  // namespace compressd::testing
