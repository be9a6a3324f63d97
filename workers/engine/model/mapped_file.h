// A whole file mapped read-only into memory (or an in-memory copy of one, for
// tests and fuzzing), the storage under a GgufFile and a SafetensorsFile. Nothing outside
// [data(), data() + size()) is ever addressable through it.
//
// Immutable after construction and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace compressd::engine {

class MappedFile {
 public:
  // NOT_FOUND if `path` does not exist, INVALID_ARGUMENT if it is not a
  // regular file, INTERNAL for other I/O errors; each naming the path.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  // Holds `bytes` in memory under the name `name` (used in error messages).
  static std::unique_ptr<MappedFile> FromBytes(std::string name, std::string bytes);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Hint that [offset, offset + len) will not be read again, so the kernel may
  // drop those pages from the resident set (they are re-read from the file if
  // touched). Only whole pages inside the range are affected; a no-op for
  // in-memory bytes.
  void DropPages(uint64_t offset, uint64_t len) const;

 private:
  MappedFile() = default;

  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;    // data_ is an mmap of size_ bytes
  std::string in_memory_;  // the bytes when !mapped_
};

}  // namespace compressd::engine
