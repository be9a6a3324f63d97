#include "server/store/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {
namespace fs = std::filesystem;
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status CheckDigest(const std::string& sha256) {
  if (IsSha256Hex(sha256)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("sha256: \"", sha256, "\" is not 64 lowercase hex characters"));
}

// fsync()s a directory so that a rename into it is durable.
void SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

class BlobFileWriter : public BlobStore::Writer {
 public:
  BlobFileWriter(BlobStore* store, std::string tmp_path, int fd)
      : store_(store), tmp_path_(std::move(tmp_path)), fd_(fd) {}

  ~BlobFileWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_path_.c_str());
  }

  absl::Status Append(std::string_view data) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob writer already finished");
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("write", tmp_path_);
      p += n;
      left -= static_cast<size_t>(n);
    }
    hasher_.Update(data);
    bytes_ += data.size();
    return absl::OkStatus();
  }

  uint64_t bytes_written() const override { return bytes_; }

  absl::StatusOr<std::string> Commit(uint64_t expected_size, const std::string& expected_sha256,
                                     std::string_view what) override {
    if (fd_ < 0) return absl::FailedPreconditionError("blob writer already finished");
    absl::string_view name(what.data(), what.size());
    bool synced = ::fsync(fd_) == 0;
    ::close(fd_);
    fd_ = -1;
    absl::StatusOr<std::string> published = Publish(expected_size, expected_sha256, name, synced);
    if (!published.ok()) ::unlink(tmp_path_.c_str());  // a rejected blob leaves nothing
    return published;
  }

 private:
  absl::StatusOr<std::string> Publish(uint64_t expected_size, const std::string& expected_sha256,
                                      absl::string_view name, bool synced) {
    if (bytes_ != expected_size) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": size mismatch: declared ",
                                                     expected_size, " bytes, received ", bytes_));
    }
    std::string digest = hasher_.HexDigest();
    if (digest != expected_sha256) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": sha256 mismatch: declared ",
                                                     expected_sha256, ", content has ", digest));
    }
    if (!synced) return ErrnoError("fsync", tmp_path_);
    RETURN_IF_ERROR(store_->Publish(tmp_path_, digest));
    committed_ = true;
    return digest;
  }

  BlobStore* store_;
  std::string tmp_path_;
  int fd_;
  Sha256 hasher_;
  uint64_t bytes_ = 0;
  bool committed_ = false;
};

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& root) {
  std::error_code ec;
  for (const char* sub : {"sha256", "tmp"}) {
    fs::create_directories(fs::path(root) / sub, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create blob directory ", root, "/", sub, ": ", ec.message()));
    }
  }
  // Temporary files left by a crash are never published; remove them.
  for (const auto& entry : fs::directory_iterator(fs::path(root) / "tmp", ec)) {
    fs::remove(entry.path(), ec);
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root));
}

absl::StatusOr<std::unique_ptr<BlobStore::Writer>> BlobStore::NewWriter() {
  std::string tmp = absl::StrCat(root_, "/tmp/", NewId("part-"));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", tmp);
  return std::unique_ptr<Writer>(new BlobFileWriter(this, std::move(tmp), fd));
}

absl::StatusOr<std::string> BlobStore::Put(std::string_view data) {
  std::string digest = Sha256Hex(data);
  {
    // Already stored: mark it stored now, like a publish would.
    absl::MutexLock lock(&publish_mu_);
    if (Has(digest) && ::utimensat(AT_FDCWD, PathFor(digest).c_str(), nullptr, 0) == 0) {
      return digest;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Writer> writer, NewWriter());
  RETURN_IF_ERROR(writer->Append(data));
  return writer->Commit(data.size(), digest, "blob");
}

bool BlobStore::Has(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  struct stat st;
  return ::stat(PathFor(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<uint64_t> BlobStore::Size(const std::string& sha256) const {
  RETURN_IF_ERROR(CheckDigest(sha256));
  struct stat st;
  if (::stat(PathFor(sha256).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    if (::stat(QuarantinePath(sha256).c_str(), &st) == 0) {
      return absl::DataLossError(absl::StrCat("blob ", sha256, " is corrupted (its content does ",
                                              "not match its sha256) and was quarantined"));
    }
    return absl::NotFoundError(absl::StrCat("blob ", sha256, " not found"));
  }
  return static_cast<uint64_t>(st.st_size);
}

std::string BlobStore::QuarantinePath(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return "";
  return absl::StrCat(root_, "/quarantine/", sha256);
}

absl::Status BlobStore::Quarantine(const std::string& sha256) const {
  RETURN_IF_ERROR(CheckDigest(sha256));
  const std::string to = QuarantinePath(sha256);
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir for ", to, ": ", ec.message()));
  absl::MutexLock lock(&publish_mu_);
  if (::rename(PathFor(sha256).c_str(), to.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError("rename into", to);
  }
  return absl::OkStatus();
}

absl::Status BlobStore::CheckContent(const std::string& sha256,
                                     const std::string& actual_sha256) const {
  if (actual_sha256 == sha256) return absl::OkStatus();
  const absl::Status quarantined = Quarantine(sha256);
  return absl::DataLossError(absl::StrCat(
      "blob ", sha256, " is corrupted: its content has sha256 ", actual_sha256,
      quarantined.ok() ? "; quarantined" : "; quarantine failed: " + quarantined.ToString()));
}

absl::Status BlobStore::Verify(const std::string& sha256,
                               const std::function<void(size_t)>& on_read) const {
  constexpr size_t kChunk = 1 << 20;
  ASSIGN_OR_RETURN(const uint64_t size, Size(sha256));
  Sha256 hash;
  std::string data;
  for (uint64_t at = 0; at < size; at += data.size()) {
    RETURN_IF_ERROR(ReadAt(sha256, at, kChunk, &data));
    if (data.empty()) break;  // shrank meanwhile: the digest tells
    hash.Update(data);
    if (on_read) on_read(data.size());
  }
  return CheckContent(sha256, hash.HexDigest());
}

std::string BlobStore::PathFor(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return "";
  return absl::StrCat(root_, "/sha256/", sha256.substr(0, 2), "/", sha256);
}

absl::Status BlobStore::ReadAt(const std::string& sha256, uint64_t offset, size_t max_bytes,
                               std::string* out) const {
  out->clear();
  ASSIGN_OR_RETURN(uint64_t size, Size(sha256));
  if (offset > size) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is past the end of blob ",
                                              sha256, " (", size, " bytes)"));
  }
  std::string path = PathFor(sha256);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("blob ", sha256, " not found"));
  size_t want = static_cast<size_t>(std::min<uint64_t>(max_bytes, size - offset));
  out->resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out->data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status err = ErrnoError("read", path);
      ::close(fd);
      return err;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out->resize(got);
  return absl::OkStatus();
}

absl::Status BlobStore::Publish(const std::string& tmp_path, const std::string& digest) {
  const std::string final_path = PathFor(digest);
  std::error_code ec;
  fs::create_directories(fs::path(final_path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir for ", final_path, ": ", ec.message()));
  {
    absl::MutexLock lock(&publish_mu_);
    // rename() keeps the temporary file's modification time: now.
    if (::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
      return ErrnoError("rename into", final_path);
    }
  }
  SyncDir(fs::path(final_path).parent_path().string());
  return absl::OkStatus();
}

std::vector<BlobStore::BlobInfo> BlobStore::List() const {
  std::vector<BlobInfo> blobs;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(fs::path(root_) / "sha256", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    struct stat st;
    if (!IsSha256Hex(name) || ::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    blobs.push_back({name, static_cast<uint64_t>(st.st_size),
                     int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000});
  }
  return blobs;
}

absl::StatusOr<bool> BlobStore::RemoveIfOlder(const std::string& sha256, int64_t cutoff_ms) {
  RETURN_IF_ERROR(CheckDigest(sha256));
  const std::string path = PathFor(sha256);
  absl::MutexLock lock(&publish_mu_);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  const int64_t mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
  if (mtime_ms >= cutoff_ms) return false;
  if (::unlink(path.c_str()) != 0) return ErrnoError("unlink", path);
  return true;
}

uint64_t BlobStore::TotalBytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(fs::path(root_) / "sha256", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace compressd
