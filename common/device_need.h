// Which kind of worker a job needs (Recipe.resources.device) and which kind
// a worker is (RegisterWorkerRequest.device), as the scheduler and the Store
// compare them. The values are stored (jobs.device_needed): never renumber.
#pragma once

#include <string>

#include "compressd/v1/recipe.pb.h"

namespace compressd {

enum class DeviceNeed : int { kAny = 0, kCpu = 1, kCuda = 2 };

inline DeviceNeed DeviceNeedOf(const v1::Recipe& recipe) {
  const std::string& d = recipe.resources().device();
  if (d == "cpu") return DeviceNeed::kCpu;
  if (d == "cuda") return DeviceNeed::kCuda;
  return DeviceNeed::kAny;
}

// A registered worker's kind: kCuda for "cuda" / "cuda:N", else kCpu.
inline DeviceNeed WorkerDeviceKind(const std::string& device) {
  return device.rfind("cuda", 0) == 0 ? DeviceNeed::kCuda : DeviceNeed::kCpu;
}

// Bit (1 << need) of the jobs a lease may take (Store::OldestQueuedJob).
inline int DeviceBit(DeviceNeed need) { return 1 << static_cast<int>(need); }
constexpr int kAnyDeviceMask = 7;

}  // namespace compressd
