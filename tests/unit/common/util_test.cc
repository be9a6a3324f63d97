#include "common/util.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace compressd {
namespace {

TEST(ValidateRelativePathTest, AcceptsNestedRelativePaths) {
  EXPECT_TRUE(ValidateRelativePath("config.json", "files[0].path").ok());
  EXPECT_TRUE(ValidateRelativePath("tokenizer/vocab.json", "files[0].path").ok());
  EXPECT_TRUE(ValidateRelativePath("a/b/c.d..e", "files[0].path").ok());
}

TEST(ValidateRelativePathTest, RejectsUnsafePathsNamingTheField) {
  const char* kBad[] = {"",    "/etc/passwd", "../x", "a/../b", "a/./b",
                        "./a", "a//b",        "a/",   "a\\b",   ".."};
  for (const char* path : kBad) {
    absl::Status s = ValidateRelativePath(path, "files[3].path");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_NE(s.message().find("files[3].path"), absl::string_view::npos) << s;
  }
  std::string with_nul("a\0b", 3);
  EXPECT_EQ(ValidateRelativePath(with_nul, "p").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidatePortableRelativePathTest, AllowsOnlyPortableCharacters) {
  EXPECT_TRUE(ValidatePortableRelativePath("calib/block-0007.bin_v2", "name").ok());
  for (const char* path : {"a b", "a:b", "t\xc3\xbc", "a*", "../x", ""}) {
    absl::Status s = ValidatePortableRelativePath(path, "header.name");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_NE(s.message().find("header.name"), absl::string_view::npos) << s;
  }
}

TEST(NewIdTest, HasPrefixAndSixteenHexCharsAndIsUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    std::string id = NewId("job-");
    ASSERT_EQ(id.size(), 4u + 16u);
    EXPECT_EQ(id.substr(0, 4), "job-");
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
}  // namespace compressd

namespace compressd {
namespace {

TEST(ValidateRelativePathBoundsTest, LengthDepthAndUtf8) {
  EXPECT_TRUE(ValidateRelativePath(std::string(kMaxRelativePathBytes, 'a'), "f").ok());
  const absl::Status long_path = ValidateRelativePath(std::string(3 << 20, 'a'), "files[0].path");
  EXPECT_EQ(long_path.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(long_path.message().size(), 300u);  // the path is not echoed whole
  std::string deep = "a";
  for (int i = 1; i < kMaxRelativePathDepth; ++i) deep += "/a";
  EXPECT_TRUE(ValidateRelativePath(deep, "f").ok());
  EXPECT_EQ(ValidateRelativePath(deep + "/a", "f").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateRelativePath("dir/\xFF.txt", "f").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd
