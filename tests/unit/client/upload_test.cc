// Local side of uploads: which files are sent, their hashes, and chunking.
#include "client/commands/upload.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class UploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/upload_test_XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    root_ = templ;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Write(const std::string& relative, const std::string& content) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  static std::vector<std::string> Paths(const std::vector<LocalFile>& files) {
    std::vector<std::string> paths;
    for (const LocalFile& f : files) paths.push_back(f.entry.path());
    return paths;
  }

  fs::path root_;
};

TEST_F(UploadTest, SafetensorsDirectoryListsEveryVisibleFileSorted) {
  Write("model/config.json", "{}");
  Write("model/model.safetensors", "weights");
  Write("model/tokenizer/vocab.json", "v");
  Write("model/.gitattributes", "x");
  Write("model/.cache/huggingface/lock", "x");
  Write("elsewhere/blob", "linked");
  fs::create_symlink(root_ / "elsewhere/blob", root_ / "model/linked.json");

  absl::StatusOr<ModelFiles> model = ListModelFiles((root_ / "model/").string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->format, v1::HF_SAFETENSORS);
  EXPECT_EQ(model->default_name, "model");
  EXPECT_THAT(Paths(model->files), ElementsAre("config.json", "linked.json", "model.safetensors",
                                               "tokenizer/vocab.json"));
}

TEST_F(UploadTest, GgufFileAndRejectedInputs) {
  const std::string gguf = Write("tiny.gguf", "GGUF....");
  absl::StatusOr<ModelFiles> model = ListModelFiles(gguf);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->format, v1::GGUF);
  EXPECT_EQ(model->default_name, "tiny.gguf");
  EXPECT_THAT(Paths(model->files), ElementsAre("tiny.gguf"));

  const std::string bin = Write("weights.bin", "x");
  EXPECT_EQ(ListModelFiles(bin).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ListModelFiles((root_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);

  Write("noconfig/model.safetensors", "w");
  absl::Status s = ListModelFiles((root_ / "noconfig").string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no config.json"));

  Write("noweights/config.json", "{}");
  s = ListModelFiles((root_ / "noweights").string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no *.safetensors"));
}

TEST_F(UploadTest, DatasetFilesAndDuplicates) {
  const std::string a = Write("a.txt", "alpha");
  Write("dir/b.txt", "beta");
  Write("dir/sub/c.txt", "gamma");
  absl::StatusOr<std::vector<LocalFile>> files = ListDatasetFiles({a, (root_ / "dir").string()});
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(Paths(*files), ElementsAre("a.txt", "b.txt", "sub/c.txt"));

  const std::string other_a = Write("other/a.txt", "again");
  absl::Status s = ListDatasetFiles({a, other_a}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"a.txt\""));
  EXPECT_EQ(ListDatasetFiles({(root_ / "nope.txt").string()}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(UploadTest, HashAndChunkInOrder) {
  const std::string big(kChunkBytes * 2 + kChunkBytes / 2, 'b');
  std::vector<LocalFile> files(3);
  files[0].local_path = Write("big.bin", big);
  files[1].local_path = Write("empty.bin", "");
  files[2].local_path = Write("small.bin", "abc");
  int64_t last_done = -1;
  ASSERT_TRUE(HashFiles(&files, [&](int64_t done, int64_t total) {
                EXPECT_EQ(total, static_cast<int64_t>(big.size() + 3));
                EXPECT_GT(done, last_done);
                last_done = done;
              }).ok());
  EXPECT_EQ(last_done, static_cast<int64_t>(big.size() + 3));
  EXPECT_EQ(files[0].entry.size(), big.size());
  EXPECT_EQ(files[0].entry.sha256(), Sha256Hex(big));
  EXPECT_EQ(files[1].entry.sha256(), Sha256Hex(""));
  EXPECT_EQ(files[2].entry.sha256(), Sha256Hex("abc"));
  EXPECT_EQ(TotalBytes(files), static_cast<int64_t>(big.size() + 3));

  std::vector<std::pair<uint32_t, size_t>> chunks;
  std::string reassembled;
  bool stream_ok = false;
  ASSERT_TRUE(SendFileChunks(
                  files,
                  [&](v1::FileChunk* chunk) {
                    chunks.emplace_back(chunk->file_index(), chunk->data().size());
                    if (chunk->file_index() == 0) reassembled += chunk->data();
                    return true;
                  },
                  nullptr, &stream_ok)
                  .ok());
  EXPECT_TRUE(stream_ok);
  EXPECT_THAT(chunks, ElementsAre(std::pair<uint32_t, size_t>{0, kChunkBytes},
                                  std::pair<uint32_t, size_t>{0, kChunkBytes},
                                  std::pair<uint32_t, size_t>{0, kChunkBytes / 2},
                                  std::pair<uint32_t, size_t>{2, 3}));
  EXPECT_EQ(reassembled, big);
}

TEST_F(UploadTest, BrokenStreamAndChangedFile) {
  std::vector<LocalFile> files(1);
  files[0].local_path = Write("f.bin", "hello");
  ASSERT_TRUE(HashFiles(&files, nullptr).ok());
  int writes = 0;
  bool stream_ok = true;
  ASSERT_TRUE(SendFileChunks(
                  files, [&](v1::FileChunk*) { return ++writes > 1; }, nullptr, &stream_ok)
                  .ok());
  EXPECT_FALSE(stream_ok);
  EXPECT_EQ(writes, 1);

  Write("f.bin", "hello, world");  // grew after hashing
  absl::Status s = SendFileChunks(
      files, [](v1::FileChunk*) { return true; }, nullptr, &stream_ok);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("f.bin"));
}

}  // namespace
}  // namespace compressd::client
