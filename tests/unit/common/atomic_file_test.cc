// AtomicFile: the destination holds the old content or the whole new one,
// the temporary file never outlives a failed or abandoned write.
#include "common/atomic_file.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  AtomicFileTest() {
    std::string tmpl = ::testing::TempDir() + "/atomic_file_XXXXXX";
    dir_ = ::mkdtemp(tmpl.data());
  }
  ~AtomicFileTest() override { fs::remove_all(dir_); }

  std::string Read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::vector<std::string> Entries(const fs::path& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
    return names;
  }

  fs::path dir_;
};

TEST_F(AtomicFileTest, CommitReplacesTheDestinationWhole) {
  const fs::path path = dir_ / "sub" / "model.gguf";  // parents are created
  ASSERT_TRUE(WriteFileAtomically(path.string(), "old content").ok());
  auto file = AtomicFile::Create(path.string());
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE((*file)->Write("GGUF").ok());
  EXPECT_EQ(Read(path), "old content");  // nothing visible before Commit
  ASSERT_TRUE((*file)->PadTo(32).ok());
  EXPECT_EQ((*file)->written(), 32u);
  ASSERT_TRUE((*file)->Commit(/*sync_dir=*/true).ok());
  EXPECT_EQ(Read(path), std::string("GGUF") + std::string(28, '\0'));
  EXPECT_EQ(Entries(dir_ / "sub"), std::vector<std::string>{"model.gguf"});
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
  EXPECT_EQ((*file)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*file)->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AtomicFileTest, AnAbandonedWriteLeavesTheOldFileAndNoTemporary) {
  const fs::path path = dir_ / "config.json";
  ASSERT_TRUE(WriteFileAtomically(path.string(), "{}").ok());
  {
    auto file = AtomicFile::Create(path.string());
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_TRUE((*file)->Write("{\"partial\"").ok());
    EXPECT_EQ(Entries(dir_).size(), 2u);  // the destination and the temporary
  }
  EXPECT_EQ(Read(path), "{}");
  EXPECT_EQ(Entries(dir_), std::vector<std::string>{"config.json"});
}

TEST_F(AtomicFileTest, ErrorsNameThePath) {
  ASSERT_TRUE(WriteFileAtomically((dir_ / "plain").string(), "a file").ok());
  const std::string under_a_file = (dir_ / "plain" / "out.bin").string();
  absl::Status st = WriteFileAtomically(under_a_file, "x");
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal);
  EXPECT_NE(st.message().find((dir_ / "plain").string()), absl::string_view::npos) << st;
}

}  // namespace
}  // namespace compressd
