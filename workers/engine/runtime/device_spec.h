// The device a worker computes on, as named on its command line
// (`--device cpu|cuda|cuda:N|auto`) and in registrations: parsed once into a
// DeviceSpec, then resolved against the devices the machine has. Plain value
// types, no CUDA dependency (the device list comes from workers/cuda/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace compressd::engine {

struct DeviceSpec {
  enum class Kind { kCpu, kCuda, kAuto };
  Kind kind = Kind::kCpu;
  int index = -1;  // kCuda: the device; -1 = the first one

  // "cpu", "cuda:N", "auto".
  std::string ToString() const;
};

// INVALID_ARGUMENT naming the text unless it is cpu, cuda, cuda:N or auto.
absl::StatusOr<DeviceSpec> ParseDeviceSpec(const std::string& text);

// A GPU as the worker reports it in its registration.
struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

// The concrete device: auto is cuda:0 when a GPU exists, else cpu; cuda
// without an index is cuda:0. FAILED_PRECONDITION when a CUDA device is asked
// for and `gpus` lacks it (the message says why none: `why_none`).
absl::StatusOr<DeviceSpec> ResolveDevice(const DeviceSpec& spec, const std::vector<GpuInfo>& gpus,
                                         const std::string& why_none);

}  // namespace compressd::engine
