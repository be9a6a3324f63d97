// The blob scrub (fsck): a flipped byte on disk is found and quarantined, a
// referenced blob that is gone is reported, a clean store passes; the
// periodic scrubber counts what it found; `compressd fsck` exits 1 on a
// store with either problem.
#include "server/store/blob_scrub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/sha256.h"
#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::CoreEnv;
using ::compressd::testing::Entry;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Flips one byte of blob `sha256`'s file, as a bad disk would.
void FlipByte(const BlobStore& blobs, const std::string& sha256, long offset) {
  std::fstream f(blobs.PathFor(sha256), std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good());
  f.seekg(offset);
  char c = 0;
  f.get(c);
  f.seekp(offset);
  f.put(static_cast<char>(c ^ 0x01));
}

// A model whose two files are "weights" (stored) and "tokenizer" (not stored).
void InsertModel(Store& store) {
  v1::Model model = ::compressd::testing::MakeModel("mdl-scrub", 1);
  *model.add_files() = Entry("model.safetensors", "weights");
  *model.add_files() = Entry("tokenizer.json", "tokenizer");
  ASSERT_TRUE(store.InsertModel(model).ok());
}

TEST(BlobScrubTest, FindsCorruptAndMissingBlobs) {
  CoreEnv env;
  InsertModel(*env.store);
  ASSERT_TRUE(env.blobs->Put("{}").ok());  // config.json of MakeModel
  const std::string weights = *env.blobs->Put("weights");
  const std::string unreferenced = *env.blobs->Put("an old upload");
  FlipByte(*env.blobs, weights, 3);

  absl::StatusOr<BlobScrubStats> stats = ScrubBlobs(*env.store, *env.blobs, 0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->blobs, 3);
  EXPECT_THAT(stats->corrupt, ElementsAre(weights));
  EXPECT_THAT(stats->missing, ElementsAre(Sha256Hex("tokenizer")));
  EXPECT_FALSE(stats->interrupted);
  // Quarantined: no reader gets the bad bytes now.
  EXPECT_EQ(env.blobs->Size(weights).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(env.blobs->Has(unreferenced));
  const std::string text = DescribeScrub(*stats);
  EXPECT_THAT(text, HasSubstr("corrupt: blob " + weights));
  EXPECT_THAT(text, HasSubstr("missing: blob " + Sha256Hex("tokenizer")));

  // The next pass still reports the quarantined blob while it is referenced.
  stats = ScrubBlobs(*env.store, *env.blobs, 0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->blobs, 2);
  EXPECT_THAT(stats->corrupt, ElementsAre(weights));
}

TEST(BlobScrubTest, CleanStorePassesAndStopEndsAPass) {
  CoreEnv env;
  ASSERT_TRUE(env.blobs->Put("a").ok());
  ASSERT_TRUE(env.blobs->Put("b").ok());
  absl::StatusOr<BlobScrubStats> stats = ScrubBlobs(*env.store, *env.blobs, 0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->blobs, 2);
  EXPECT_EQ(stats->bytes, 2u);
  EXPECT_THAT(stats->corrupt, IsEmpty());
  EXPECT_THAT(stats->missing, IsEmpty());
  stats = ScrubBlobs(*env.store, *env.blobs, 0, [] { return true; });
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->interrupted);
  EXPECT_EQ(stats->blobs, 0);
}

TEST(BlobScrubTest, ScrubberCountsInItsMetrics) {
  CoreEnv env;
  const std::string a = *env.blobs->Put("aaaa");
  ASSERT_TRUE(env.blobs->Put("bbbb").ok());
  FlipByte(*env.blobs, a, 0);
  BlobScrubber scrubber(*env.store, *env.blobs, env.metrics, BlobScrubOptions{});
  ASSERT_TRUE(scrubber.RunOnce().ok());
  EXPECT_EQ(env.metrics.blobs_scrubbed().Value(), 2);
  EXPECT_EQ(env.metrics.blob_scrub_corrupt().Value(), 1);
  EXPECT_EQ(env.metrics.blob_scrub_missing().Value(), 0);
}

// The command: exit 1 and one line per problem; exit 0 once clean.
TEST(BlobScrubTest, FsckCommandReportsAndExitsOne) {
  const char* build = std::getenv("COMPRESSD_BUILD_DIR");
  ASSERT_NE(build, nullptr) << "run under ctest";
  ::compressd::testing::TempDir dir;
  std::string weights;
  const std::string target = testing::TestStoreTarget(dir.path() + "/compressd.db");
  const std::string flags = " --data-dir " + dir.path() + " --store '" + target + "'";
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(target);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<std::unique_ptr<BlobStore>> blobs = BlobStore::Open(dir.path() + "/blobs");
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    InsertModel(**store);
    ASSERT_TRUE((*blobs)->Put("{}").ok());
    ASSERT_TRUE((*blobs)->Put("tokenizer").ok());
    weights = *(*blobs)->Put("weights");
  }
  auto fsck = [&](std::string* out) {
    const std::string cmd =
        std::string(build) + "/bin/compressd fsck" + flags + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out->append(buf, n);
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string out;
  EXPECT_EQ(fsck(&out), 0) << out;
  EXPECT_THAT(out, HasSubstr("fsck: 3 blobs"));
  absl::StatusOr<std::unique_ptr<BlobStore>> blobs = BlobStore::Open(dir.path() + "/blobs");
  ASSERT_TRUE(blobs.ok());
  FlipByte(**blobs, weights, 0);
  out.clear();
  EXPECT_EQ(fsck(&out), 1) << out;
  EXPECT_THAT(out, HasSubstr("corrupt: blob " + weights));
  out.clear();
  EXPECT_EQ(fsck(&out), 1) << out;  // still referenced, still reported
  out.clear();
  EXPECT_EQ(::system((std::string(build) + "/bin/compressd fsck --data-dir " + dir.path() +
                      "/nowhere --store '" + target + "' >/dev/null 2>&1")
                         .c_str()),
            2 << 8);
}

}  // namespace
}  // namespace compressd
