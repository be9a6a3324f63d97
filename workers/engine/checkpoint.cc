#include "workers/engine/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& path, absl::string_view what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

// Writes `bytes` to a new temporary file beside `path`, fsyncs it, renames it
// over `path` and fsyncs the directory, so that `path` holds either the old or
// the whole new content, across crashes. The temporary file is removed on failure.
absl::Status ReplaceFileDurably(const fs::path& path, const std::string& bytes) {
  std::string tmp =
      (path.parent_path() / absl::StrCat(".", path.filename().string(), ".XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Errno(tmp, "cannot create");
  absl::Status st;
  for (size_t done = 0; st.ok() && done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno != EINTR) st = Errno(tmp, "write failed");
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (st.ok() && ::fchmod(fd, 0644) != 0) st = Errno(tmp, "chmod failed");
  if (st.ok() && ::fsync(fd) != 0) st = Errno(tmp, "fsync failed");
  if (::close(fd) != 0 && st.ok()) st = Errno(tmp, "close failed");
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    st = Errno(path.string(), "rename failed");
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dir < 0) return Errno(path.parent_path().string(), "cannot open directory");
  const bool synced = ::fsync(dir) == 0;
  ::close(dir);
  return synced ? absl::OkStatus() : Errno(path.parent_path().string(), "fsync failed");
}

}  // namespace

absl::Status DirCheckpointStore::Put(const std::string& name, const std::string& bytes) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  const fs::path path = fs::path(dir_) / name;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(path.parent_path().string(), ": cannot create directory: ", ec.message()));
  }
  return ReplaceFileDurably(path, bytes);
}

absl::StatusOr<std::string> DirCheckpointStore::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  const fs::path path = fs::path(dir_) / name;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found || fs::is_directory(status)) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", name, ": no file ", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path.string(), ": read failed"));
  return std::move(out).str();
}

}  // namespace compressd
