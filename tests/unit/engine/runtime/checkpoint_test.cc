// DirCheckpointStore: the checkpoints of `compress-worker run --checkpoint-dir`.
#include "workers/engine/runtime/checkpoint.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DirCheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/checkpoint_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/ckpt";  // created by the first Put
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Names of the files under dir_, relative, sorted.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir_).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string root_;
  std::string dir_;
};

TEST_F(DirCheckpointStoreTest, PutThenGetInNestedDirectories) {
  DirCheckpointStore store(dir_);
  ASSERT_TRUE(store.Put("calib/block-0007", std::string("a\0b", 3)).ok());
  auto got = store.Get("calib/block-0007");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, std::string("a\0b", 3));
  EXPECT_EQ(Files(), std::vector<std::string>{"calib/block-0007"});  // no temporary left
}

TEST_F(DirCheckpointStoreTest, PutReplacesAndSurvivesANewStore) {
  {
    DirCheckpointStore store(dir_);
    ASSERT_TRUE(store.Put("progress", "block 1 of a long job").ok());
    ASSERT_TRUE(store.Put("progress", "2").ok());
    ASSERT_TRUE(store.Put("empty", "").ok());
  }
  DirCheckpointStore reopened(dir_);
  auto got = reopened.Get("progress");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "2");
  auto empty = reopened.Get("empty");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");
  EXPECT_EQ(Files(), (std::vector<std::string>{"empty", "progress"}));
}

TEST_F(DirCheckpointStoreTest, AbsentNamesAreNotFound) {
  DirCheckpointStore store(dir_);
  auto missing = store.Get("calib/block-0000");  // the directory does not exist yet
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("calib/block-0000"));
  ASSERT_TRUE(store.Put("calib/block-0001", "x").ok());
  EXPECT_EQ(store.Get("calib/block-0000").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Get("calib").status().code(), absl::StatusCode::kNotFound);  // a directory
}

TEST_F(DirCheckpointStoreTest, UnsafeNamesAreInvalidArgument) {
  DirCheckpointStore store(dir_);
  for (const std::string name : {"", "/etc/passwd", "../escape", "a/../../b", "a//b", "./a",
                                 "back\\slash", "sp ace", "t\xc3\xbc"}) {
    absl::Status put = store.Put(name, "x");
    EXPECT_EQ(put.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(put.message(), HasSubstr("checkpoint name")) << name;
    EXPECT_EQ(store.Get(name).status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_FALSE(fs::exists(dir_));  // nothing was written anywhere
  EXPECT_FALSE(fs::exists(root_ + "/escape"));
}

TEST_F(DirCheckpointStoreTest, ConcurrentPutsOfOneNameLeaveOneWholeValue) {
  DirCheckpointStore store(dir_);
  const std::string a(1 << 16, 'a'), b(1 << 16, 'b');
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) EXPECT_TRUE(store.Put("shared", i % 2 ? a : b).ok());
    });
  }
  for (auto& t : threads) t.join();
  auto got = store.Get("shared");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == a || *got == b);
  EXPECT_EQ(Files(), std::vector<std::string>{"shared"});
}

}  // namespace
}  // namespace compressd::engine
