#include "server/store/blob_store.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::TempDir;
using ::testing::HasSubstr;

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    n += e.is_regular_file() ? 1 : 0;
  }
  return n;
}

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = BlobStore::Open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.status();
    blobs_ = *std::move(opened);
  }
  TempDir dir_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(BlobStoreTest, PutIsContentAddressedAndDeduplicated) {
  auto a = blobs_->Put("hello world");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, Sha256Hex("hello world"));
  EXPECT_EQ(blobs_->PathFor(*a),
            dir_.path() + "/sha256/" + a->substr(0, 2) + "/" + *a);
  auto again = blobs_->Put("hello world");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *a);
  EXPECT_EQ(CountFiles(dir_.path() + "/sha256"), 1u);
  EXPECT_EQ(blobs_->TotalBytes(), 11u);
  EXPECT_TRUE(blobs_->Has(*a));
  EXPECT_EQ(*blobs_->Size(*a), 11u);
}

TEST_F(BlobStoreTest, WriterStreamsAndDedupesAgainstPut) {
  ASSERT_TRUE(blobs_->Put("abcdef").ok());
  auto w = blobs_->NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc").ok());
  ASSERT_TRUE((*w)->Append("def").ok());
  EXPECT_EQ((*w)->bytes_written(), 6u);
  auto sha = (*w)->Commit(6, Sha256Hex("abcdef"), "file x");
  ASSERT_TRUE(sha.ok()) << sha.status();
  EXPECT_EQ(CountFiles(dir_.path() + "/sha256"), 1u);
  EXPECT_EQ(CountFiles(dir_.path() + "/tmp"), 0u);
}

TEST_F(BlobStoreTest, SizeMismatchIsRejectedAndLeavesNothing) {
  auto w = blobs_->NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc").ok());
  auto sha = (*w)->Commit(4, Sha256Hex("abc"), "header.files[0] (a.bin)");
  EXPECT_EQ(sha.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sha.status().message(), HasSubstr("header.files[0] (a.bin)"));
  EXPECT_THAT(sha.status().message(), HasSubstr("size mismatch"));
  EXPECT_FALSE(blobs_->Has(Sha256Hex("abc")));
  EXPECT_EQ(CountFiles(dir_.path()), 0u);
}

TEST_F(BlobStoreTest, ShaMismatchIsRejectedAndLeavesNothing) {
  auto w = blobs_->NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append("abc").ok());
  auto sha = (*w)->Commit(3, Sha256Hex("abd"), "file y");
  EXPECT_EQ(sha.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(sha.status().message(), HasSubstr("sha256 mismatch"));
  EXPECT_FALSE(blobs_->Has(Sha256Hex("abc")));
  EXPECT_FALSE(blobs_->Has(Sha256Hex("abd")));
  EXPECT_EQ(CountFiles(dir_.path()), 0u);
  // The writer is finished; it cannot be reused.
  EXPECT_EQ((*w)->Append("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(BlobStoreTest, DestroyedUncommittedWriterLeavesNothing) {
  {
    auto w = blobs_->NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("partial data").ok());
    EXPECT_EQ(CountFiles(dir_.path() + "/tmp"), 1u);
  }
  EXPECT_EQ(CountFiles(dir_.path()), 0u);
  EXPECT_EQ(blobs_->TotalBytes(), 0u);
}

TEST_F(BlobStoreTest, OpenRemovesStaleTemporaryFiles) {
  std::string stale = dir_.path() + "/tmp/part-left-by-crash";
  { std::ofstream(stale) << "junk"; }
  ASSERT_TRUE(std::filesystem::exists(stale));
  ASSERT_TRUE(BlobStore::Open(dir_.path()).ok());
  EXPECT_FALSE(std::filesystem::exists(stale));
}

TEST_F(BlobStoreTest, ReadAtReadsRangesAndChecksBounds) {
  auto sha = blobs_->Put("0123456789");
  ASSERT_TRUE(sha.ok());
  std::string out;
  ASSERT_TRUE(blobs_->ReadAt(*sha, 3, 4, &out).ok());
  EXPECT_EQ(out, "3456");
  ASSERT_TRUE(blobs_->ReadAt(*sha, 8, 100, &out).ok());
  EXPECT_EQ(out, "89");
  ASSERT_TRUE(blobs_->ReadAt(*sha, 10, 100, &out).ok());
  EXPECT_EQ(out, "");
  EXPECT_EQ(blobs_->ReadAt(*sha, 11, 1, &out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(blobs_->ReadAt(Sha256Hex("absent"), 0, 1, &out).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(blobs_->Size(Sha256Hex("absent")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BlobStoreTest, MalformedDigestsNeverNameAFile) {
  std::string out;
  EXPECT_FALSE(blobs_->Has("../../etc/passwd"));
  EXPECT_EQ(blobs_->PathFor("../../etc/passwd"), "");
  EXPECT_EQ(blobs_->ReadAt("../x", 0, 1, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(blobs_->Size(std::string(64, 'A')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd
