#include "workers/worker/blob_cache.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Serves `content` in 7-byte chunks; can fail after some chunks or lie.
struct FakeServer {
  std::string content;
  std::vector<uint64_t> offsets;  // one per fetch call
  int fail_after_chunks = -1;     // on the first call only
  absl::Status fail_with = absl::UnavailableError("connection reset");
  absl::Status fetch(const std::string&, uint64_t offset, const BlobCache::ChunkFn& fn) {
    offsets.push_back(offset);
    int chunks = 0;
    for (uint64_t i = offset; i < content.size(); i += 7) {
      if (offsets.size() == 1 && chunks++ == fail_after_chunks) return fail_with;
      absl::Status st = fn(absl::string_view(content).substr(i, 7));
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
};

class BlobCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::path(::testing::TempDir()) /
             ("bc_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    fs::remove_all(root_);
    server_.content = "the quick brown fox jumps over the lazy dog, twice over";
    file_.set_path("model.safetensors");
    file_.set_size(server_.content.size());
    file_.set_sha256(Sha256Hex(server_.content));
  }
  void TearDown() override { fs::remove_all(root_); }

  absl::StatusOr<std::string> Get() {
    BlobCacheOptions o;
    o.initial_backoff_ms = 1;
    BlobCache cache(root_, o);
    return cache.Get(
        file_,
        [this](const std::string& sha, uint64_t off, const BlobCache::ChunkFn& fn) {
          return server_.fetch(sha, off, fn);
        },
        cancel_);
  }
  std::string Partial() const { return root_ + "/" + file_.sha256() + ".partial"; }

  std::string root_;
  FakeServer server_;
  v1::FileEntry file_;
  engine::CancelToken cancel_;
};

TEST_F(BlobCacheTest, DownloadsVerifiesAndReuses) {
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, root_ + "/" + file_.sha256());
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_FALSE(fs::exists(Partial()));
  ASSERT_TRUE(Get().ok());
  EXPECT_THAT(server_.offsets, ElementsAre(0u));  // second Get fetched nothing
}

// Found by an adversarial probe: the cache checked sizes only, so a cached
// model blob with one flipped byte was used and the job SUCCEEDED with a
// different output. Every hit is verified against its sha256.
TEST_F(BlobCacheTest, CorruptedCachedBlobIsSetAsideAndFetchedAgain) {
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  {
    std::fstream f(*path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('X');  // same size, different content
  }
  ASSERT_NE(ReadFile(*path), server_.content);
  path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_EQ(server_.offsets.size(), 2u);  // fetched again, from the start
  EXPECT_EQ(server_.offsets.back(), 0u);
  EXPECT_TRUE(fs::exists(*path + ".corrupt"));
  path = Get();  // a clean hit: no fetch
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(server_.offsets.size(), 2u);
}

TEST_F(BlobCacheTest, ResumesAPartialFile) {
  fs::create_directories(root_);
  std::ofstream(Partial(), std::ios::binary) << server_.content.substr(0, 10);
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_THAT(server_.offsets, ElementsAre(10u));
}

TEST_F(BlobCacheTest, RetriesAnInterruptedStreamFromWhereItStopped) {
  server_.fail_after_chunks = 2;
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_THAT(server_.offsets, ElementsAre(0u, 14u));
}

TEST_F(BlobCacheTest, StreamEndingEarlyWithOkIsResumed) {
  server_.fail_after_chunks = 2;
  server_.fail_with = absl::OkStatus();  // the first stream just stops after 14 bytes
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_THAT(server_.offsets, ElementsAre(0u, 14u));
}

TEST_F(BlobCacheTest, CorruptPartialIsRefetchedFromScratch) {
  fs::create_directories(root_);
  std::ofstream(Partial(), std::ios::binary) << "XXXXXXXXXX";  // wrong bytes
  absl::StatusOr<std::string> path = Get();
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(ReadFile(*path), server_.content);
  EXPECT_THAT(server_.offsets, ElementsAre(10u, 0u));
}

TEST_F(BlobCacheTest, WrongContentIsDataLoss) {
  file_.set_sha256(Sha256Hex("something else"));
  absl::Status st = Get().status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(st.message(), HasSubstr("model.safetensors"));
  EXPECT_FALSE(fs::exists(root_ + "/" + file_.sha256()));
}

TEST_F(BlobCacheTest, NonRetryableErrorsAndCancellation) {
  server_.fail_after_chunks = 0;
  server_.fail_with = absl::NotFoundError("no such blob");
  EXPECT_EQ(Get().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_.offsets.size(), 1u);

  cancel_.Cancel();
  EXPECT_EQ(Get().status().code(), absl::StatusCode::kCancelled);

  file_.set_sha256("not-a-sha");
  EXPECT_EQ(Get().status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd
