// A file written under a temporary name beside its destination and renamed
// over it by Commit, so a reader sees the old content or the whole new one,
// never a prefix. The temporary file ("<dir>/.<name>.tmp-XXXXXX", mode 0644)
// is removed when the AtomicFile is destroyed before a successful Commit.
// Used by every writer of outputs and checkpoints (safetensors, GGUF, JSON
// reports, DirCheckpointStore). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compressd {

class AtomicFile {
 public:
  // Creates the destination's missing parent directories and the temporary
  // file. INTERNAL naming the path and the errno text on failure.
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  absl::Status Write(absl::string_view bytes);
  // Zero bytes up to the next multiple of `alignment` of the bytes written.
  absl::Status PadTo(uint64_t alignment);
  // `bytes` at `offset` (pwrite), for writers that fill a file out of order
  // (a sharded output written block by block); does not move Write()'s end.
  absl::Status WriteAt(uint64_t offset, absl::string_view bytes);
  uint64_t written() const { return written_; }
  // fsync, close and rename over the destination; with `sync_dir`, the
  // directory is fsync'ed too, so the rename itself survives a crash.
  absl::Status Commit(bool sync_dir = false);

 private:
  AtomicFile(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}

  const std::string path_;
  const std::string tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// `bytes` as the whole content of `path`, through an AtomicFile.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes,
                                 bool sync_dir = false);

}  // namespace compressd
