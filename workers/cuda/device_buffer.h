// Device memory for CUDA code: an owning buffer, and a pool that takes the
// device memory of a job once (cudaMalloc of one arena, sized from the block
// shapes; see device_pool.h for the sizing) and hands out aligned slices
// that are all returned at once (Reset), so a job's solves do no allocation
// of their own and cannot fragment the device. Not thread-safe.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "workers/cuda/cuda_status.h"

namespace compressd::cuda {

class DeviceArena {
 public:
  static constexpr size_t kAlign = 256;

  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() { Free(); }

  // Replaces the arena by one of `bytes` (RESOURCE_EXHAUSTED when the device
  // has not that much free).
  absl::Status Reserve(size_t bytes) {
    Free();
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
    base_ = static_cast<char*>(p);
    capacity_ = bytes;
    used_ = 0;
    return absl::OkStatus();
  }
  // n elements of T, aligned; RESOURCE_EXHAUSTED naming `what` when the arena is full.
  template <typename T>
  absl::StatusOr<T*> Take(size_t n, const char* what) {
    const size_t bytes = (n * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    if (used_ + bytes > capacity_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "device pool: ", what, " needs ", bytes, " bytes, ", capacity_ - used_, " of ",
          capacity_, " left"));
    }
    T* p = reinterpret_cast<T*>(base_ + used_);
    used_ += bytes;
    return p;
  }
  void Reset() { used_ = 0; }
  // Gives back everything taken since used() was `mark`.
  void Rewind(size_t mark) { used_ = std::min(used_, mark); }
  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }

 private:
  void Free() {
    if (base_ != nullptr) cudaFree(base_);
    base_ = nullptr;
    capacity_ = used_ = 0;
  }
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// One owned device allocation of n elements of T.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }
  absl::Status Allocate(size_t n) {
    if (p_ != nullptr) cudaFree(p_);
    p_ = nullptr;
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    p_ = static_cast<T*>(p);
    n_ = n;
    return absl::OkStatus();
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace compressd::cuda
