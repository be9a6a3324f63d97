// The S3 client (server/store/s3/) against a real S3 server (SeaweedFS on
// loopback): whole and multipart uploads, ranged reads, listing, copy and
// delete, and the errors a caller must be able to tell apart.
#include "server/store/s3/s3_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cctype>
#include <random>

#include "common/sha256.h"
#include "common/util.h"
#include "server/store/blob_store.h"
#include "server/store/s3/s3_blobs.h"
#include "tests/integration/harness.h"
#include "tests/integration/seaweed.h"

namespace compressd::testing {
namespace {

using ::testing::HasSubstr;

// One SeaweedFS for the suite (it takes seconds to start); each test has
// its own bucket.
class S3ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new SeaweedS3();
    std::string error;
    if (!server_->Start(MakeTempDir("s3-suite") + "/weed", &error)) {
      start_error_ = new std::string(error);
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    delete start_error_;
    server_ = nullptr;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(start_error_, nullptr) << *start_error_;
    dir_ = MakeTempDir("s3");
    bucket_ = BucketFor(::testing::UnitTest::GetInstance()->current_test_info()->name());
    client_ = std::make_unique<s3::Client>(s3::Config{
        server_->endpoint(), bucket_, {SeaweedS3::kAccessKey, SeaweedS3::kSecretKey}, 30, 2, ""});
    ASSERT_TRUE(client_->EnsureBucket().ok());
  }
  // A valid bucket name from a test name: lowercase letters and digits.
  static std::string BucketFor(const std::string& test) {
    std::string out = "t-";
    for (char c : test) {
      if (std::isalnum(static_cast<unsigned char>(c))) out.push_back(static_cast<char>(std::tolower(c)));
    }
    return out.substr(0, 60);
  }

  static SeaweedS3* server_;
  static std::string* start_error_;
  std::string dir_, bucket_;
  std::unique_ptr<s3::Client> client_;
};
SeaweedS3* S3ClientTest::server_ = nullptr;
std::string* S3ClientTest::start_error_ = nullptr;

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(7);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

TEST_F(S3ClientTest, PutGetRangeListCopyDelete) {
  const std::string data = "hello, object store";
  ASSERT_TRUE(client_->Put("a/one key.txt", data).ok());
  EXPECT_EQ(*client_->Size("a/one key.txt"), data.size());
  EXPECT_EQ(*client_->GetRange("a/one key.txt", 7, 6), "object");
  EXPECT_EQ(*client_->GetRange("a/one key.txt", 14, 100), "store");  // short at the end
  ASSERT_TRUE(client_->Copy("a/one key.txt", "b/copy").ok());
  absl::StatusOr<std::vector<s3::ObjectInfo>> listed = client_->List("a/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "a/one key.txt");
  EXPECT_EQ((*listed)[0].size, data.size());
  EXPECT_GT((*listed)[0].mtime_ms, 1700000000000);
  ASSERT_TRUE(client_->Delete("a/one key.txt").ok());
  EXPECT_TRUE(absl::IsNotFound(client_->Size("a/one key.txt").status()));
  EXPECT_TRUE(client_->Delete("a/one key.txt").ok());  // already gone: fine
  EXPECT_EQ(*client_->GetRange("b/copy", 0, 5), "hello");
}

TEST_F(S3ClientTest, LargeFilesGoUpAsMultipartAndComeBackIdentical) {
  const std::string data = RandomBytes((12 << 20) + 12345);  // 3 parts of 5 MiB
  const std::string path = dir_ + "/big.bin";
  std::ofstream(path, std::ios::binary) << data;
  ASSERT_TRUE(client_->PutFile("big", path, 5 << 20).ok());
  EXPECT_EQ(*client_->Size("big"), data.size());
  ASSERT_TRUE(client_->GetFile("big", dir_ + "/back.bin").ok());
  EXPECT_EQ(*Sha256File(dir_ + "/back.bin"), Sha256Hex(data));
  EXPECT_EQ(*client_->GetRange("big", (5 << 20) - 3, 6), data.substr((5 << 20) - 3, 6));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/back.bin.part"));
}

TEST_F(S3ClientTest, ErrorsNameWhatWentWrong) {
  absl::StatusOr<uint64_t> missing = client_->Size("nope");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr(bucket_ + "/nope"));
  s3::Client wrong({server_->endpoint(), bucket_, {SeaweedS3::kAccessKey, "not-the-secret"}, 10,
                    0, ""});
  absl::Status refused = wrong.Put("x", "y");
  EXPECT_TRUE(absl::IsPermissionDenied(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("SignatureDoesNotMatch"));
  s3::Client nowhere({"http://127.0.0.1:1", "blobs", {"a", "b"}, 2, 1, ""});
  EXPECT_TRUE(absl::IsUnavailable(nowhere.Put("x", "y"))) << nowhere.Put("x", "y");
}

TEST(S3UrlTest, BucketAndPrefix) {
  EXPECT_EQ(*s3::ParseS3Url("s3://bucket"), std::make_pair(std::string("bucket"), std::string()));
  EXPECT_EQ(*s3::ParseS3Url("s3://bucket/a/b"),
            std::make_pair(std::string("bucket"), std::string("a/b/")));
  EXPECT_FALSE(s3::ParseS3Url("http://bucket").ok());
  EXPECT_FALSE(s3::ParseS3Url("s3:///x").ok());
}

}  // namespace
}  // namespace compressd::testing

namespace compressd::testing {
namespace {

// Two replicas' blob stores: their own local caches, one bucket.
class BlobStoreOnS3Test : public S3ClientTest {
 protected:
  std::unique_ptr<BlobStore> Replica(const std::string& name, const std::string& endpoint = "") {
    s3::Config config{endpoint.empty() ? server_->endpoint() : endpoint, bucket_,
                      {SeaweedS3::kAccessKey, SeaweedS3::kSecretKey}, 30, 1, ""};
    absl::StatusOr<std::unique_ptr<s3::S3Blobs>> remote = s3::S3Blobs::Open(config, "cluster/");
    EXPECT_TRUE(remote.ok()) << remote.status();
    if (!remote.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<BlobStore>> store =
        BlobStore::Open(dir_ + "/" + name, *std::move(remote));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
};

TEST_F(BlobStoreOnS3Test, EveryReplicaSeesEveryBlob) {
  std::unique_ptr<BlobStore> a = Replica("a"), b = Replica("b");
  ASSERT_TRUE(a && b);
  const std::string small = *a->Put("stored by replica a");
  EXPECT_TRUE(b->Has(small));
  EXPECT_EQ(*b->Size(small), 19u);
  std::string got;
  ASSERT_TRUE(b->ReadAt(small, 10, 7, &got).ok());  // a ranged read from the bucket
  EXPECT_EQ(got, "replica");
  EXPECT_FALSE(std::filesystem::exists(b->PathFor(small)));
  ASSERT_TRUE(b->EnsureLocal(small).ok());
  EXPECT_TRUE(std::filesystem::exists(b->PathFor(small)));

  // A streamed, verified upload large enough to go up in parts.
  const std::string big = RandomBytes((17 << 20) + 5);
  std::unique_ptr<BlobStore::Writer> writer = *a->NewWriter();
  for (size_t at = 0; at < big.size(); at += 1 << 20) {
    ASSERT_TRUE(writer->Append(std::string_view(big).substr(at, 1 << 20)).ok());
  }
  const std::string big_sha = *writer->Commit(big.size(), Sha256Hex(big), "big");
  ASSERT_TRUE(b->ReadAt(big_sha, 16 << 20, 1 << 20, &got).ok());
  EXPECT_TRUE(got == big.substr(16 << 20, 1 << 20));  // (no dump of 1 MiB on failure)
  EXPECT_TRUE(b->Verify(big_sha).ok());
  std::vector<BlobStore::BlobInfo> listed = b->List();
  EXPECT_EQ(listed.size(), 2u);
  EXPECT_EQ(b->TotalBytes(), big.size() + 19);

  // One replica's GC removes it for all; another's quarantine is everyone's.
  EXPECT_FALSE(*b->RemoveIfOlder(small, 0));  // stored after the epoch: kept
  EXPECT_TRUE(*b->RemoveIfOlder(small, NowMs() + 60000));
  EXPECT_FALSE(a->Has(small));
  ASSERT_TRUE(a->Quarantine(big_sha).ok());
  EXPECT_TRUE(absl::IsDataLoss(b->Size(big_sha).status())) << b->Size(big_sha).status();
}

TEST_F(BlobStoreOnS3Test, AnUploadTheBucketRefusedLeavesNothing) {
  // Wrong credentials are refused at start; an object store that goes away
  // fails the commit, and the blob is not visible even locally.
  s3::Config wrong{server_->endpoint(), bucket_, {SeaweedS3::kAccessKey, "wrong"}, 10, 0, ""};
  absl::StatusOr<std::unique_ptr<s3::S3Blobs>> refused_open = s3::S3Blobs::Open(wrong, "cluster/");
  ASSERT_FALSE(refused_open.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(refused_open.status())) << refused_open.status();
  EXPECT_THAT(refused_open.status().message(), HasSubstr("cannot use the bucket"));

  SeaweedS3 own;  // this test stops its object store
  std::string error;
  ASSERT_TRUE(own.Start(dir_ + "/own-weed", &error)) << error;
  std::unique_ptr<BlobStore> a = Replica("a", own.endpoint());
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Put("durable").ok());
  own.Stop();
  absl::StatusOr<std::string> refused = a->Put("another blob");
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("s3://" + bucket_ + "/cluster/"));
  EXPECT_FALSE(std::filesystem::exists(a->PathFor(Sha256Hex("another blob"))));
}

}  // namespace
}  // namespace compressd::testing
