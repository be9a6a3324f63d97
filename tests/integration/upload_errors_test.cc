// Malformed uploads against the real compressd binary: each is rejected with
// INVALID_ARGUMENT and leaves no model visible.
#include <grpcpp/grpcpp.h>

#include "common/sha256.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/safetensors_bytes.h"

namespace compressd::testing {
namespace {

namespace v1 = ::compressd::v1;

struct Upload {
  v1::UploadModelHeader header;
  std::vector<std::pair<uint32_t, std::string>> chunks;
  bool send_chunk_first = false;
};

class UploadErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start(MakeTempDir("data"), {})); }

  grpc::Status Send(const Upload& u, v1::Model* model) {
    auto stub = v1::CompressionService::NewStub(server_.Channel());
    grpc::ClientContext ctx;
    auto writer = stub->UploadModel(&ctx, model);
    v1::UploadModelRequest req;
    auto send_chunks = [&] {
      for (const auto& [index, data] : u.chunks) {
        req.mutable_chunk()->set_file_index(index);
        req.mutable_chunk()->set_data(data);
        if (!writer->Write(req)) break;
      }
    };
    if (u.send_chunk_first) send_chunks();
    *req.mutable_header() = u.header;
    writer->Write(req);
    if (!u.send_chunk_first) send_chunks();
    writer->WritesDone();
    return writer->Finish();
  }

  int ModelCount() {
    auto stub = v1::CompressionService::NewStub(server_.Channel());
    grpc::ClientContext ctx;
    v1::ListModelsResponse resp;
    EXPECT_TRUE(stub->ListModels(&ctx, v1::ListModelsRequest(), &resp).ok());
    return resp.models_size();
  }

  // A well-formed two-file HF upload, to be broken by each test.
  static Upload Valid() {
    Upload u;
    u.header.set_name("m");
    u.header.set_format(v1::HF_SAFETENSORS);
    const std::string config = "{\"model_type\": \"llama\"}";
    const std::string weights = SafetensorsBytes(128);
    auto* f0 = u.header.add_files();
    f0->set_path("config.json");
    f0->set_size(config.size());
    f0->set_sha256(Sha256Hex(config));
    auto* f1 = u.header.add_files();
    f1->set_path("model.safetensors");
    f1->set_size(weights.size());
    f1->set_sha256(Sha256Hex(weights));
    u.chunks = {{0, config}, {1, weights.substr(0, 32)}, {1, weights.substr(32)}};
    return u;
  }

  void ExpectRejected(const Upload& u, const std::string& message_part) {
    v1::Model model;
    grpc::Status st = Send(u, &model);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_THAT(st.error_message(), ::testing::HasSubstr(message_part));
    EXPECT_EQ(ModelCount(), 0);
  }

  Server server_;
};

TEST_F(UploadErrorsTest, ValidUploadIsAccepted) {
  v1::Model model;
  grpc::Status st = Send(Valid(), &model);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(model.files_size(), 2);
  EXPECT_EQ(ModelCount(), 1);
}

TEST_F(UploadErrorsTest, ParentPathRejected) {
  Upload u = Valid();
  u.header.mutable_files(1)->set_path("../model.safetensors");
  ExpectRejected(u, "../model.safetensors");
}

TEST_F(UploadErrorsTest, AbsolutePathRejected) {
  Upload u = Valid();
  u.header.mutable_files(1)->set_path("/etc/model.safetensors");
  ExpectRejected(u, "/etc/model.safetensors");
}

TEST_F(UploadErrorsTest, HashMismatchRejected) {
  Upload u = Valid();
  u.header.mutable_files(1)->set_sha256(Sha256Hex("something else"));
  ExpectRejected(u, "model.safetensors");
}

TEST_F(UploadErrorsTest, SizeMismatchRejected) {
  Upload u = Valid();
  u.header.mutable_files(1)->set_size(65);
  ExpectRejected(u, "model.safetensors");
}

TEST_F(UploadErrorsTest, TruncatedStreamRejected) {
  Upload u = Valid();
  u.chunks.pop_back();
  ExpectRejected(u, "model.safetensors");
}

TEST_F(UploadErrorsTest, UnknownFormatRejected) {
  Upload u = Valid();
  u.header.set_format(v1::MODEL_FORMAT_UNSPECIFIED);
  ExpectRejected(u, "format");
}

TEST_F(UploadErrorsTest, ChunkBeforeHeaderRejected) {
  Upload u = Valid();
  u.send_chunk_first = true;
  ExpectRejected(u, "header");
}

}  // namespace
}  // namespace compressd::testing
