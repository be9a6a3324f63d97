// Read-only, memory-mapped access to one .safetensors file.
//
// Format: an 8-byte little-endian header length N, N bytes of JSON mapping
// tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
// relative to the data section that starts at byte 8 + N) plus an optional
// "__metadata__" string map, then the data section.
//
// Open() validates everything against the file length before any tensor is
// touched: header length, JSON shape, dtype names, shape numel and byte size
// (overflow-checked), offsets ordered, inside the data section and not
// overlapping. A malformed file is INVALID_ARGUMENT naming the file, the
// tensor and the byte offset; nothing past the mapping is ever read.
//
// A SafetensorsFile is immutable after Open() and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/mapped_file.h"

namespace compressd::engine {

constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;  // 100 MB

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t numel = 0;
  uint64_t begin = 0;  // [begin, end) relative to the data section
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(absl::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Absolute file offset of the data section.
  uint64_t data_start() const { return data_start_; }

  // The tensor's raw bytes inside the mapping (valid while this object lives).
  absl::string_view Bytes(const TensorInfo& tensor) const;
  // Copies an F32/F16/BF16 tensor into floats; INVALID_ARGUMENT for other dtypes.
  absl::StatusOr<std::vector<float>> ReadAsFloat(const TensorInfo& tensor) const;
  // Returns the tensor's pages to the kernel (not merely to the page cache):
  // a later read maps them in again from the file. For block-at-a-time jobs
  // (resident memory stays flat as blocks are done).
  void ReleaseBytes(const TensorInfo& tensor) const;

 private:
  SafetensorsFile(std::string path, std::unique_ptr<engine::MappedFile> file)
      : path_(std::move(path)),
        file_(std::move(file)),
        base_(reinterpret_cast<const char*>(file_->data())),
        size_(file_->size()) {}
  absl::Status ParseHeader();

  std::string path_;
  std::unique_ptr<engine::MappedFile> file_;  // the whole file, mapped read-only
  const char* base_ = nullptr;                // file_'s bytes
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace compressd::engine
