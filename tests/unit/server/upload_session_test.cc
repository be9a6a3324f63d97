#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/models/model_registry.h"
#include "tests/testing/safetensors_bytes.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::CoreEnv;
using ::compressd::testing::Entry;
using ::testing::HasSubstr;

const std::string kConfig = R"({"model_type": "llama"})";
const std::string kWeights = testing::SafetensorsBytes(1000);

v1::UploadModelHeader HfHeader() {
  v1::UploadModelHeader h;
  h.set_name("tiny");
  h.set_format(v1::HF_SAFETENSORS);
  *h.add_files() = Entry("config.json", kConfig);
  *h.add_files() = Entry("model.safetensors", kWeights);
  return h;
}

v1::FileChunk Chunk(uint32_t index, const std::string& data) {
  v1::FileChunk c;
  c.set_file_index(index);
  c.set_data(data);
  return c;
}

class UploadTest : public ::testing::Test {
 protected:
  CoreEnv env_;
  ModelRegistry registry_{*env_.store, *env_.blobs, env_.metrics};

  void ExpectNoModels() {
    auto list = registry_.ListModels(v1::ListModelsRequest());
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list->models_size(), 0);
  }
  // Asserts the header is rejected with INVALID_ARGUMENT naming `field`.
  void ExpectBadHeader(const v1::UploadModelHeader& h, const std::string& field) {
    auto session = registry_.StartUpload();
    absl::Status st = session->OnModelHeader(h);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_THAT(st.message(), HasSubstr(field));
    // The error is final: finishing reports it again and stores nothing.
    EXPECT_EQ(session->FinishModel().status().code(), absl::StatusCode::kInvalidArgument);
    ExpectNoModels();
  }
};

TEST_F(UploadTest, CompleteUploadCreatesModelWithBlobs) {
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(HfHeader()).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(0, kConfig)).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(1, kWeights.substr(0, 400))).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(1, kWeights.substr(400))).ok());
  auto model = session->FinishModel();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->id().rfind("mdl-", 0), 0u);
  EXPECT_EQ(model->total_bytes(), kConfig.size() + kWeights.size());
  EXPECT_EQ(model->files_size(), 2);
  EXPECT_TRUE(env_.blobs->Has(Sha256Hex(kWeights)));
  EXPECT_TRUE(env_.blobs->Has(Sha256Hex(kConfig)));
  EXPECT_EQ(registry_.GetModel(model->id())->name(), "tiny");
  EXPECT_EQ(env_.metrics.bytes_uploaded().Value(), kConfig.size() + kWeights.size());
  // Finishing twice is an error, not a second model.
  EXPECT_FALSE(session->FinishModel().ok());
  EXPECT_EQ(registry_.ListModels(v1::ListModelsRequest())->models_size(), 1);
}

// A GGUF (v3, no tensors) whose general.architecture is `arch`.
std::string GgufBytes(const std::string& arch) {
  std::string b = "GGUF";
  const auto u32 = [&b](uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); };
  const auto u64 = [&b](uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); };
  const auto str = [&](const std::string& v) {
    u64(v.size());
    b += v;
  };
  u32(3);  // version
  u64(0);  // tensors
  u64(1);  // key-value pairs
  str("general.architecture");
  u32(8);  // string
  str(arch);
  b.resize((b.size() + 31) / 32 * 32, '\0');  // the data section's alignment
  return b;
}

// A GGUF's strings are raw bytes: the model's summary keeps them as valid
// UTF-8, so the stored row parses back (the libFuzzer upload target found a
// row that did not, and every later list of models failed with it).
TEST_F(UploadTest, SummaryOfInvalidUtf8IsValidUtf8) {
  const std::string gguf = GgufBytes(
      "ll\xff"
      "ama");
  v1::UploadModelHeader h;
  h.set_name("raw");
  h.set_format(v1::GGUF);
  *h.add_files() = Entry("m.gguf", gguf);
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(h).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(0, gguf)).ok());
  auto model = session->FinishModel();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->architecture().at("architecture"),
            "ll\xef\xbf\xbd"
            "ama");  // U+FFFD
  auto list = registry_.ListModels(v1::ListModelsRequest());
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->models_size(), 1);
  EXPECT_EQ(list->models(0).architecture().at("architecture"),
            "ll\xef\xbf\xbd"
            "ama");
}

TEST_F(UploadTest, DatasetUploadGetsDatasetId) {
  auto session = registry_.StartUpload();
  v1::UploadDatasetHeader h;
  h.set_name("calib");
  *h.add_files() = Entry("calib.jsonl", "{\"text\": \"hi\"}\n");
  *h.add_files() = Entry("empty.txt", "");
  ASSERT_TRUE(session->OnDatasetHeader(h).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(0, "{\"text\": \"hi\"}\n")).ok());
  auto ds = session->FinishDataset();
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->id().rfind("ds-", 0), 0u);
  EXPECT_TRUE(env_.blobs->Has(Sha256Hex("")));
  EXPECT_EQ(registry_.GetDataset(ds->id())->name(), "calib");
}

TEST_F(UploadTest, UnsafePathsAreRejected) {
  for (const char* path : {"../x", "/abs", "a/../../b", "a//b"}) {
    SCOPED_TRACE(path);
    v1::UploadModelHeader h = HfHeader();
    h.mutable_files(1)->set_path(path);
    ExpectBadHeader(h, "header.files[1].path");
  }
}

TEST_F(UploadTest, BadShaIsRejected) {
  v1::UploadModelHeader h = HfHeader();
  h.mutable_files(0)->set_sha256("ABC");
  ExpectBadHeader(h, "header.files[0].sha256");
}

TEST_F(UploadTest, UnknownFormatIsRejected) {
  v1::UploadModelHeader h = HfHeader();
  h.set_format(v1::MODEL_FORMAT_UNSPECIFIED);
  ExpectBadHeader(h, "header.format");
  h.set_format(static_cast<v1::ModelFormat>(42));
  ExpectBadHeader(h, "header.format");
}

TEST_F(UploadTest, MissingConfigJsonIsRejected) {
  v1::UploadModelHeader h = HfHeader();
  h.mutable_files(0)->set_path("other.json");
  ExpectBadHeader(h, "config.json");
}

TEST_F(UploadTest, GgufNeedsExactlyOneGgufFile) {
  v1::UploadModelHeader h;
  h.set_name("g");
  h.set_format(v1::GGUF);
  *h.add_files() = Entry("config.json", kConfig);
  ExpectBadHeader(h, "*.gguf");
}

TEST_F(UploadTest, DuplicatePathsAndMissingNameAreRejected) {
  v1::UploadModelHeader h = HfHeader();
  *h.add_files() = Entry("config.json", "again");
  ExpectBadHeader(h, "header.files[2].path");
  h = HfHeader();
  h.clear_name();
  ExpectBadHeader(h, "header.name");
}

TEST_F(UploadTest, LimitsAreResourceExhausted) {
  UploadLimits limits;
  limits.max_file_bytes = 100;
  ModelRegistry small(*env_.store, *env_.blobs, env_.metrics, limits);
  auto session = small.StartUpload();
  EXPECT_EQ(session->OnModelHeader(HfHeader()).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(UploadTest, ShaMismatchInContentIsRejected) {
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(HfHeader()).ok());
  std::string tampered = kConfig;
  tampered[2] = 'X';
  absl::Status st = session->OnChunk(Chunk(0, tampered));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("sha256 mismatch"));
  EXPECT_THAT(st.message(), HasSubstr("config.json"));
  EXPECT_EQ(session->OnChunk(Chunk(1, kWeights)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session->FinishModel().status().code(), absl::StatusCode::kInvalidArgument);
  ExpectNoModels();
  EXPECT_FALSE(env_.blobs->Has(Sha256Hex(tampered)));
}

TEST_F(UploadTest, SizeMismatchIsRejected) {
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(HfHeader()).ok());
  absl::Status st = session->OnChunk(Chunk(0, kConfig + "extra"));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("header.files[0] (config.json)"));
  EXPECT_EQ(session->FinishModel().status().code(), absl::StatusCode::kInvalidArgument);
  ExpectNoModels();
}

TEST_F(UploadTest, TruncatedStreamIsRejected) {
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(HfHeader()).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(0, kConfig)).ok());
  ASSERT_TRUE(session->OnChunk(Chunk(1, kWeights.substr(0, 10))).ok());
  auto model = session->FinishModel();
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("truncated upload: file model.safetensors has 10 of 1000 bytes"));
  ExpectNoModels();
  EXPECT_FALSE(env_.blobs->Has(Sha256Hex(kWeights)));
}

TEST_F(UploadTest, OutOfOrderAndEarlyChunksAreRejected) {
  auto early = registry_.StartUpload();
  EXPECT_EQ(early->OnChunk(Chunk(0, "x")).code(), absl::StatusCode::kInvalidArgument);
  auto session = registry_.StartUpload();
  ASSERT_TRUE(session->OnModelHeader(HfHeader()).ok());
  absl::Status st = session->OnChunk(Chunk(1, kWeights));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("chunk.file_index"));
  ExpectNoModels();
}

}  // namespace
}  // namespace compressd
