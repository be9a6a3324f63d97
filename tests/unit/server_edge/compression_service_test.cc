// CompressionService over real gRPC: model uploads (good and malformed),
// GetModel / ListModels paging, SubmitJob idempotency.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "common/sha256.h"
#include "tests/testing/safetensors_bytes.h"
#include "tests/unit/server_edge/edge_fixture.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;

class CompressionServiceTest : public EdgeTest {
 protected:
  // Asserts that `messages` are rejected as INVALID_ARGUMENT and that no
  // model became visible.
  void ExpectRejected(const std::vector<v1::UploadModelRequest>& messages,
                      const std::string& message_part) {
    v1::Model model;
    grpc::Status status = Upload(messages, &model);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(message_part));
    v1::ListModelsResponse list;
    ASSERT_TRUE(api_->ListModels(Context().get(), v1::ListModelsRequest(), &list).ok());
    EXPECT_EQ(list.models_size(), 0);
  }

  std::vector<v1::UploadModelRequest> GoodUpload() {
    return ModelUploadMessages("tiny", v1::HF_SAFETENSORS, FakeHfModelFiles());
  }
};

TEST_F(CompressionServiceTest, UploadedModelCanBeFetched) {
  const std::vector<TestFile> files = FakeHfModelFiles();
  v1::Model model = UploadFakeModel("tiny-llama");
  ASSERT_FALSE(model.id().empty());
  EXPECT_EQ(model.name(), "tiny-llama");
  EXPECT_EQ(model.format(), v1::HF_SAFETENSORS);
  ASSERT_EQ(model.files_size(), 2);
  EXPECT_EQ(model.total_bytes(), files[0].content.size() + files[1].content.size());

  v1::GetModelRequest get;
  get.set_model_id(model.id());
  v1::Model fetched;
  ASSERT_TRUE(api_->GetModel(Context().get(), get, &fetched).ok());
  EXPECT_EQ(fetched.id(), model.id());
  EXPECT_EQ(fetched.files(1).sha256(), Sha256Hex(files[1].content));
  // The file content is in the blob store under its digest.
  EXPECT_TRUE(blobs_->Has(Sha256Hex(files[1].content)));
}

TEST_F(CompressionServiceTest, GetUnknownModelIsNotFound) {
  v1::GetModelRequest get;
  get.set_model_id("model-does-not-exist");
  v1::Model fetched;
  EXPECT_EQ(api_->GetModel(Context().get(), get, &fetched).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CompressionServiceTest, ListModelsPaginates) {
  std::set<std::string> uploaded;
  for (int i = 0; i < 3; ++i) {
    uploaded.insert(UploadFakeModel("m" + std::to_string(i)).id());
  }

  v1::ListModelsRequest req;
  req.set_page_size(2);
  v1::ListModelsResponse first;
  ASSERT_TRUE(api_->ListModels(Context().get(), req, &first).ok());
  ASSERT_EQ(first.models_size(), 2);
  ASSERT_FALSE(first.next_page_token().empty());

  req.set_page_token(first.next_page_token());
  v1::ListModelsResponse second;
  ASSERT_TRUE(api_->ListModels(Context().get(), req, &second).ok());
  ASSERT_EQ(second.models_size(), 1);
  EXPECT_TRUE(second.next_page_token().empty());

  std::set<std::string> listed;
  for (const auto& m : first.models()) {
    listed.insert(m.id());
  }
  for (const auto& m : second.models()) {
    listed.insert(m.id());
  }
  EXPECT_EQ(listed, uploaded);
}

TEST_F(CompressionServiceTest, RejectsUnsafeRelativePath) {
  auto messages = GoodUpload();
  messages[0].mutable_header()->mutable_files(1)->set_path("../x.safetensors");
  ExpectRejected(messages, "path");
}

TEST_F(CompressionServiceTest, RejectsAbsolutePath) {
  auto messages = GoodUpload();
  messages[0].mutable_header()->mutable_files(1)->set_path("/etc/model.safetensors");
  ExpectRejected(messages, "path");
}

TEST_F(CompressionServiceTest, RejectsMalformedSha256) {
  auto messages = GoodUpload();
  messages[0].mutable_header()->mutable_files(0)->set_sha256("not-a-digest");
  ExpectRejected(messages, "sha256");
}

TEST_F(CompressionServiceTest, RejectsContentNotMatchingSha256) {
  auto messages = GoodUpload();
  std::string* data = messages[2].mutable_chunk()->mutable_data();
  (*data)[0] = static_cast<char>((*data)[0] ^ 1);
  ExpectRejected(messages, "sha256");
}

TEST_F(CompressionServiceTest, RejectsMoreBytesThanDeclared) {
  auto messages = GoodUpload();
  messages[2].mutable_chunk()->mutable_data()->append("extra");
  ExpectRejected(messages, "");
}

TEST_F(CompressionServiceTest, RejectsTruncatedStream) {
  auto messages = GoodUpload();
  const std::string full = messages[2].chunk().data();
  messages[2].mutable_chunk()->set_data(full.substr(0, full.size() / 2));
  ExpectRejected(messages, "truncated");
}

TEST_F(CompressionServiceTest, RejectsUnknownFormat) {
  auto messages = GoodUpload();
  messages[0].mutable_header()->set_format(v1::MODEL_FORMAT_UNSPECIFIED);
  ExpectRejected(messages, "format");
}

TEST_F(CompressionServiceTest, RejectsChunkBeforeHeader) {
  auto messages = GoodUpload();
  std::swap(messages[0], messages[1]);
  ExpectRejected(messages, "header");
}

TEST_F(CompressionServiceTest, RejectsEmptyStream) { ExpectRejected({}, "header"); }

TEST_F(CompressionServiceTest, SubmitJobIsIdempotentByRequestId) {
  const v1::Model model = UploadFakeModel("tiny");
  const v1::Job first = Submit(model.id(), "req-1");
  const v1::Job again = Submit(model.id(), "req-1");
  const v1::Job other = Submit(model.id(), "req-2");
  ASSERT_FALSE(first.id().empty());
  EXPECT_EQ(first.state(), v1::QUEUED);
  EXPECT_EQ(again.id(), first.id());
  EXPECT_NE(other.id(), first.id());

  v1::ListJobsResponse list;
  ASSERT_TRUE(api_->ListJobs(Context().get(), v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 2);
}

TEST_F(CompressionServiceTest, SubmitJobValidatesTheRecipe) {
  const v1::Model model = UploadFakeModel("tiny");
  v1::SubmitJobRequest req;
  req.set_model_id(model.id());
  req.mutable_recipe()->add_stages()->mutable_magnitude()->set_sparsity(1.5);
  v1::Job job;
  grpc::Status status = api_->SubmitJob(Context().get(), req, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("sparsity"));
}

// Found by an adversarial probe: a 100,000-character overrides[].modules regex
// overflowed the stack of the gRPC thread compiling it (std::regex) and killed
// compressd. Now every user pattern is RE2, bounded in length and count.
TEST_F(CompressionServiceTest, HugeOrPathologicalRegexesAreRejectedAndTheServerLives) {
  const v1::Model model = UploadFakeModel("tiny");
  auto submit = [&](const std::function<void(v1::Recipe*)>& edit) {
    v1::SubmitJobRequest req;
    req.set_model_id(model.id());
    req.mutable_recipe()->add_stages()->mutable_magnitude()->set_sparsity(0.5);
    edit(req.mutable_recipe());
    v1::Job job;
    return api_->SubmitJob(Context().get(), req, &job);
  };
  grpc::Status status = submit([](v1::Recipe* r) {
    v1::LayerOverride* o = r->add_overrides();
    o->set_modules(std::string(100000, 'a') + "(b|c)*");
    o->set_skip(true);
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("overrides[0].modules"));
  EXPECT_THAT(status.error_message(), HasSubstr("at most 1024"));
  // Under the length limit but 500 groups deep: RE2 parses it without
  // recursion; the job is accepted.
  status = submit([](v1::Recipe* r) {
    r->mutable_targets()->set_include(std::string(500, '(') + ".*" + std::string(500, ')'));
  });
  EXPECT_TRUE(status.ok()) << status.error_message();
  // A program over the memory bound is refused.
  status = submit([](v1::Recipe* r) { r->mutable_targets()->set_include("((((a{100}){100}){100}))"); });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("targets.include: invalid regex"));
  status = submit([](v1::Recipe* r) {
    for (int i = 0; i < 10000; ++i) r->mutable_targets()->add_ignore("x" + std::to_string(i));
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("targets.ignore: 10000 patterns; at most 256"));
  // The server still answers.
  v1::ListJobsResponse list;
  EXPECT_TRUE(api_->ListJobs(Context().get(), v1::ListJobsRequest(), &list).ok());
}

// Found by an adversarial probe: 3 MB upload paths (500 levels deep) were
// accepted, grew ListModels past the client's message limit and were copied
// whole into errors; 15 MB recipes broke ListJobs and never reached a worker.
TEST_F(CompressionServiceTest, OversizedPathsAndRecipesAreRejectedWithShortMessages) {
  std::vector<TestFile> files = FakeHfModelFiles();
  std::string deep;
  for (int i = 0; i < 500; ++i) deep += "abcdefgh/";
  files[0].path = deep + std::string(3 << 20, 'x');
  v1::Model model;
  grpc::Status status = Upload(ModelUploadMessages("deep", v1::HF_SAFETENSORS, files), &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("bytes; at most 1024"));
  EXPECT_LT(status.error_message().size(), 512u);
  files[0].path = deep + "config.json";  // short enough, but 501 components
  status = Upload(ModelUploadMessages("deep", v1::HF_SAFETENSORS, files), &model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  const v1::Model ok = UploadFakeModel("tiny");
  v1::SubmitJobRequest req;
  req.set_model_id(ok.id());
  req.mutable_recipe()->add_stages()->mutable_magnitude()->set_sparsity(0.5);
  for (int i = 0; i < 300; ++i) {
    req.mutable_recipe()->mutable_evaluation()->add_perplexity()->set_name(std::string(1000, 'n'));
  }
  v1::Job job;
  status = api_->SubmitJob(Context().get(), req, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("at most 262144"));
}

// Found by an adversarial probe: 200 stalled uploads were held forever, each
// with a temporary file and a file descriptor. Idle streams are cancelled.
class IdleUploadTest : public CompressionServiceTest {
 protected:
  GrpcServerOptions MakeGrpcOptions() const override {
    GrpcServerOptions options;
    options.upload_idle_timeout_ms = 300;
    return options;
  }
};

TEST_F(IdleUploadTest, StalledUploadsAreCancelledAndLeaveNothing) {
  const std::vector<v1::UploadModelRequest> messages =
      ModelUploadMessages("stalled", v1::HF_SAFETENSORS, FakeHfModelFiles());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientWriter<v1::UploadModelRequest>>> writers;
  std::vector<v1::Model> models(20);
  for (int i = 0; i < 20; ++i) {
    contexts.push_back(Context(10000));
    writers.push_back(api_->UploadModel(contexts.back().get(), &models[i]));
    ASSERT_TRUE(writers.back()->Write(messages[0]));  // the header, then silence
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& writer : writers) {
    const grpc::Status status = writer->Finish();  // returns once the server ends the stream
    EXPECT_FALSE(status.ok());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Nothing was committed, and no temporary file is left behind.
  v1::ListModelsResponse list;
  ASSERT_TRUE(api_->ListModels(Context().get(), v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 0);
  const std::string blob = blobs_->PathFor(std::string(64, '0'));
  const std::filesystem::path tmp_dir = blob.substr(0, blob.find("/sha256/")) + "/tmp";
  // The reactors release their files as they finish, just after the client
  // has its status: wait a moment for the last ones.
  auto temporary = [&] {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp_dir)) n += e.is_regular_file();
    return n;
  };
  for (int i = 0; i < 200 && temporary() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(temporary(), 0u);
}

// Found by an adversarial probe: uploads were not checked for format, so a
// malformed model was accepted and failed only in a worker.
TEST_F(CompressionServiceTest, MalformedModelFilesAreRejectedAtUpload) {
  std::vector<TestFile> files = FakeHfModelFiles();
  files[1].content = RandomBytes(300, 9);  // not a safetensors file
  ExpectRejected(ModelUploadMessages("bad", v1::HF_SAFETENSORS, files),
                 "model.safetensors is not a valid model file");
  // A tensor table pointing past the end of the file.
  std::string st = SafetensorsBytes(200);
  st.resize(180);
  files[1].content = st;
  ExpectRejected(ModelUploadMessages("bad", v1::HF_SAFETENSORS, files), "model.safetensors");
  // A GGUF cut inside its header.
  const std::vector<TestFile> gguf = {{"model.gguf", std::string("GGUF\x03\0\0\0\x01", 9)}};
  ExpectRejected(ModelUploadMessages("bad", v1::GGUF, gguf), "model.gguf is not a valid model file");
}

TEST_F(CompressionServiceTest, WatchUnknownJobIsNotFound) {
  v1::WatchJobRequest req;
  req.set_job_id("job-does-not-exist");
  auto ctx = Context();
  auto reader = api_->WatchJob(ctx.get(), req);
  v1::JobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CompressionServiceTest, DownloadUnknownArtifactIsNotFound) {
  v1::Artifact info;
  std::string data;
  EXPECT_EQ(Download("artifact-does-not-exist", 0, &info, &data).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace compressd::testing
