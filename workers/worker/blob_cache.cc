#include "workers/worker/blob_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& path, absl::string_view what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kAborted || code == absl::StatusCode::kInternal ||
         code == absl::StatusCode::kResourceExhausted || code == absl::StatusCode::kUnknown;
}

// Holds an open, flock()ed file descriptor; closing releases the lock.
class LockedFd {
 public:
  explicit LockedFd(int fd) : fd_(fd) {}
  ~LockedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

BlobCache::BlobCache(std::string root, BlobCacheOptions options)
    : root_(std::move(root)), options_(options) {}

std::string BlobCache::PathFor(const std::string& sha256) const {
  return (fs::path(root_) / sha256).string();
}

absl::StatusOr<std::string> BlobCache::Get(const v1::FileEntry& file, const FetchFn& fetch,
                                           const engine::CancelToken& cancel) {
  if (!IsSha256Hex(file.sha256())) {
    return absl::InvalidArgumentError(
        absl::StrCat("file \"", file.path(), "\": sha256 \"", file.sha256(), "\" is malformed"));
  }
  const std::string final_path = PathFor(file.sha256());
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return absl::InternalError(absl::StrCat(root_, ": mkdir: ", ec.message()));
  ASSIGN_OR_RETURN(bool hit, Verified(final_path, file));
  if (hit) return final_path;

  const std::string partial = final_path + ".partial";
  LockedFd fd(::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Errno(partial, "open");
  if (::flock(fd.get(), LOCK_EX) != 0) return Errno(partial, "flock");
  ASSIGN_OR_RETURN(hit, Verified(final_path, file));
  if (hit) return final_path;  // another process finished it while we waited
  fs::remove(final_path, ec);  // wrong size: refetch

  // A resumed download that fails verification is retried once from scratch.
  for (int pass = 0; pass < 2; ++pass) {
    RETURN_IF_ERROR(Download(fd.get(), partial, file, fetch, cancel));
    ASSIGN_OR_RETURN(std::string digest, Sha256File(partial));
    if (digest == file.sha256()) {
      if (::fsync(fd.get()) != 0) return Errno(partial, "fsync");
      if (::rename(partial.c_str(), final_path.c_str()) != 0) return Errno(final_path, "rename");
      return final_path;
    }
    if (::ftruncate(fd.get(), 0) != 0) return Errno(partial, "truncate");
    if (pass == 1) {
      return absl::DataLossError(absl::StrCat("file \"", file.path(), "\": downloaded content has ",
                                              "sha256 ", digest, ", expected ", file.sha256()));
    }
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<bool> BlobCache::Verified(const std::string& path, const v1::FileEntry& file) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) != file.size()) return false;
  ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  if (digest == file.sha256()) return true;
  // Corrupted at rest (disk, a stray write): keep it aside for inspection and fetch again.
  const std::string quarantine = path + ".corrupt";
  if (::rename(path.c_str(), quarantine.c_str()) != 0) return Errno(path, "rename");
  std::fprintf(stderr, "compress-worker: cached blob %s has sha256 %s; moved to %s, fetching again\n",
               path.c_str(), digest.c_str(), quarantine.c_str());
  ++corrupt_;
  return false;
}

absl::Status BlobCache::Download(int fd, const std::string& partial, const v1::FileEntry& file,
                                 const FetchFn& fetch, const engine::CancelToken& cancel) {
  int64_t backoff = options_.initial_backoff_ms;
  absl::Status last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (cancel.cancelled()) return absl::CancelledError("blob download cancelled");
    struct stat st;
    if (::fstat(fd, &st) != 0) return Errno(partial, "stat");
    uint64_t have = static_cast<uint64_t>(st.st_size);
    if (have > file.size()) {
      if (::ftruncate(fd, 0) != 0) return Errno(partial, "truncate");
      have = 0;
    }
    if (have == file.size()) return absl::OkStatus();
    last = fetch(file.sha256(), have, [&](absl::string_view chunk) -> absl::Status {
      if (cancel.cancelled()) return absl::CancelledError("blob download cancelled");
      if (chunk.size() > file.size() - have) {
        return absl::DataLossError(absl::StrCat("file \"", file.path(), "\": server sent more than ",
                                                "the expected ", file.size(), " bytes"));
      }
      const char* p = chunk.data();
      size_t n = chunk.size();
      while (n > 0) {
        const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(have));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Errno(partial, "write");
        p += w;
        n -= static_cast<size_t>(w);
        have += static_cast<uint64_t>(w);
      }
      return absl::OkStatus();
    });
    if (last.ok() && have == file.size()) return absl::OkStatus();
    if (last.ok()) {
      last = absl::UnavailableError(absl::StrCat("file \"", file.path(), "\": stream ended at byte ",
                                                 have, " of ", file.size()));
    }
    if (last.code() == absl::StatusCode::kDataLoss) {
      if (::ftruncate(fd, 0) != 0) return Errno(partial, "truncate");
      continue;
    }
    if (!Retryable(last.code())) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
  return last;
}

}  // namespace compressd
