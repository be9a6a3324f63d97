#include "common/dataset_files.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd {
namespace {

// What the worker fetches for a recipe's dataset `file` (and what the server
// checks on SubmitJob): the file itself, or every file under the folder.
TEST(FilesUnderTest, SelectsTheFileOrEveryFileUnderTheFolder) {
  v1::Dataset dataset;
  for (const char* path : {"a.txt", "dir/x.txt", "dir/sub/y.txt", "dir2/z.txt", "dirx"}) {
    dataset.add_files()->set_path(path);
  }
  auto paths = [&](const std::string& name) {
    std::vector<std::string> out;
    for (const v1::FileEntry* f : FilesUnder(dataset, name)) out.push_back(f->path());
    return out;
  };
  EXPECT_THAT(paths("a.txt"), ::testing::ElementsAre("a.txt"));
  EXPECT_THAT(paths("dir"), ::testing::ElementsAre("dir/x.txt", "dir/sub/y.txt"));
  EXPECT_THAT(paths("dir/sub"), ::testing::ElementsAre("dir/sub/y.txt"));
  EXPECT_THAT(paths("di"), ::testing::IsEmpty());
  EXPECT_THAT(paths("missing.txt"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace compressd
