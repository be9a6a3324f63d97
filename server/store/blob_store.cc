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

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& root,
                                                           std::unique_ptr<RemoteBlobs> remote) {
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
  return std::unique_ptr<BlobStore>(new BlobStore(root, std::move(remote)));
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
    if (remote_ == nullptr && Has(digest) &&
        ::utimensat(AT_FDCWD, PathFor(digest).c_str(), nullptr, 0) == 0) {
      return digest;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Writer> writer, NewWriter());
  RETURN_IF_ERROR(writer->Append(data));
  return writer->Commit(data.size(), digest, "blob");
}

bool BlobStore::HasLocal(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  struct stat st;
  return ::stat(PathFor(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool BlobStore::Has(const std::string& sha256) const {
  // With a remote, it decides: another replica's GC may have removed a blob
  // this cache still holds.
  if (remote_ == nullptr) return HasLocal(sha256);
  return IsSha256Hex(sha256) && remote_->Size(sha256).ok();
}

absl::Status BlobStore::EnsureLocal(const std::string& sha256) const {
  RETURN_IF_ERROR(CheckDigest(sha256));
  if (HasLocal(sha256)) return absl::OkStatus();
  if (remote_ == nullptr) return absl::NotFoundError(absl::StrCat("blob ", sha256, " not found"));
  const std::string path = PathFor(sha256);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = absl::StrCat(root_, "/tmp/", NewId("fetch-"));
  absl::Status fetched = remote_->Download(sha256, tmp);
  if (fetched.ok()) {
    absl::StatusOr<std::string> digest = Sha256File(tmp);
    if (!digest.ok() || *digest != sha256) {
      fetched = absl::DataLossError(absl::StrCat("blob ", sha256, " in ", remote_->Describe(),
                                                 " does not match its sha256"));
    } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
      fetched = ErrnoError("rename into", path);
    }
  }
  ::unlink(tmp.c_str());
  return fetched;
}

absl::StatusOr<uint64_t> BlobStore::Size(const std::string& sha256) const {
  RETURN_IF_ERROR(CheckDigest(sha256));
  struct stat st;
  if (::stat(PathFor(sha256).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    if (remote_ != nullptr) {
      absl::StatusOr<uint64_t> size = remote_->Size(sha256);
      if (!absl::IsNotFound(size.status())) return size;
      if (remote_->Size(sha256, /*quarantined=*/true).ok()) {
        return absl::DataLossError(absl::StrCat("blob ", sha256, " is corrupted and was ",
                                                "quarantined in ", remote_->Describe()));
      }
    }
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
  return remote_ != nullptr ? remote_->Quarantine(sha256) : absl::OkStatus();
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
  size_t want = static_cast<size_t>(std::min<uint64_t>(max_bytes, size - offset));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && remote_ != nullptr) {  // not cached here: a ranged read
    ASSIGN_OR_RETURN(*out, remote_->Read(sha256, offset, want));
    return absl::OkStatus();
  }
  if (fd < 0) return absl::NotFoundError(absl::StrCat("blob ", sha256, " not found"));
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
  if (remote_ == nullptr) return absl::OkStatus();
  absl::Status uploaded = remote_->Upload(digest, final_path);
  if (!uploaded.ok()) {
    // Not durable: leave nothing, so the caller's retry uploads it again.
    absl::MutexLock lock(&publish_mu_);
    ::unlink(final_path.c_str());
    return absl::Status(uploaded.code(), absl::StrCat("storing blob ", digest, " in ",
                                                      remote_->Describe(), ": ",
                                                      uploaded.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobStore::BlobInfo>> BlobStore::ListRemote() const {
  ASSIGN_OR_RETURN(std::vector<RemoteBlobInfo> remote, remote_->List());
  std::vector<BlobInfo> blobs;
  for (const RemoteBlobInfo& r : remote) blobs.push_back({r.sha256, r.size, r.mtime_ms});
  return blobs;
}

std::vector<BlobStore::BlobInfo> BlobStore::List() const {
  if (remote_ != nullptr) {
    // An object store that cannot be listed now lists nothing: the GC and
    // the scrub skip a pass rather than act on a partial view.
    absl::StatusOr<std::vector<BlobInfo>> listed = ListRemote();
    return listed.ok() ? *std::move(listed) : std::vector<BlobInfo>();
  }
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
  if (remote_ != nullptr) {
    absl::StatusOr<RemoteBlobInfo> stat = remote_->Stat(sha256);
    if (absl::IsNotFound(stat.status())) return false;
    RETURN_IF_ERROR(stat.status());
    if (stat->mtime_ms >= cutoff_ms) return false;
    RETURN_IF_ERROR(remote_->Remove(sha256));
    ::unlink(path.c_str());
    return true;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  const int64_t mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1000000;
  if (mtime_ms >= cutoff_ms) return false;
  if (::unlink(path.c_str()) != 0) return ErrnoError("unlink", path);
  return true;
}

uint64_t BlobStore::TotalBytes() const {
  uint64_t total = 0;
  if (remote_ != nullptr) {
    for (const BlobInfo& b : List()) total += b.size;
    return total;
  }
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(fs::path(root_) / "sha256", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace compressd
