// A float32 array of calibration activations, held in memory or, when they do
// not fit the job's memory budget, in a scratch file (pipeline/memory_estimate.h
// decides). The file is created in the given directory and unlinked at once
// (nothing is left behind, even after kill -9), its blocks reserved up front
// (posix_fallocate: a full disk is RESOURCE_EXHAUSTED here, not SIGBUS later),
// and mapped shared. Its owner reads and writes it part by part and calls
// Release(part) after each: the part's pages leave the process (their data
// stays in the file), so resident memory is one part, whatever the size.
// Move-only; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace compressd::engine {

class ActivationBuffer {
 public:
  ActivationBuffer() = default;
  ~ActivationBuffer();
  ActivationBuffer(ActivationBuffer&& other) noexcept;
  ActivationBuffer& operator=(ActivationBuffer&& other) noexcept;
  ActivationBuffer(const ActivationBuffer&) = delete;
  ActivationBuffer& operator=(const ActivationBuffer&) = delete;

  // n zero floats in memory.
  static ActivationBuffer InMemory(size_t n);
  // n zero floats in a scratch file under `dir`; `what` names the buffer in
  // errors. RESOURCE_EXHAUSTED when the disk cannot hold them, INTERNAL for
  // other I/O errors (both name the directory and the size).
  static absl::StatusOr<ActivationBuffer> InFile(const std::string& dir, size_t n,
                                                 const std::string& what);

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }
  bool in_file() const { return mapped_bytes_ > 0; }

  // Floats [begin, end) will not be touched for a while: drops the whole
  // pages inside the range from this process (MADV_DONTNEED; the data stays
  // in the file). In memory: nothing.
  void Release(size_t begin, size_t end) const;

 private:
  void Reset();

  float* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // > 0: data_ is a shared file mapping of this size
  float* heap_ = nullptr;    // in memory: the allocation
};

}  // namespace compressd::engine
