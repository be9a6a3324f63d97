#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& path, absl::string_view what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  const fs::path p(path);
  const fs::path parent = p.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(parent.string(), ": cannot create directory: ", ec.message()));
    }
  }
  std::string tmp = (parent / absl::StrCat(".", p.filename().string(), ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Errno(tmp, "cannot create a temporary file");
  if (::fchmod(fd, 0644) != 0) {
    absl::Status st = Errno(tmp, "chmod failed");
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  }
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, std::move(tmp), fd));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

absl::Status AtomicFile::WriteAt(uint64_t offset, absl::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": already committed"));
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    const ssize_t w =
        ::pwrite(fd_, p, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno(tmp_, "write failed");
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Write(absl::string_view bytes) {
  RETURN_IF_ERROR(WriteAt(written_, bytes));
  written_ += bytes.size();
  return absl::OkStatus();
}

absl::Status AtomicFile::PadTo(uint64_t alignment) {
  if (alignment == 0) return absl::InvalidArgumentError("PadTo: alignment 0");
  const uint64_t pad = (written_ + alignment - 1) / alignment * alignment - written_;
  return Write(std::string(pad, '\0'));
}

absl::Status AtomicFile::Commit(bool sync_dir) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": already committed"));
  if (::fsync(fd_) != 0) return Errno(tmp_, "fsync failed");
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return Errno(tmp_, "close failed");
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return Errno(path_, "rename failed");
  committed_ = true;
  if (!sync_dir) return absl::OkStatus();
  std::string dir = fs::path(path_).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd < 0) return Errno(dir, "cannot open directory");
  const bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  return synced ? absl::OkStatus() : Errno(dir, "fsync failed");
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes, bool sync_dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
  RETURN_IF_ERROR(file->Write(bytes));
  return file->Commit(sync_dir);
}

}  // namespace compressd
