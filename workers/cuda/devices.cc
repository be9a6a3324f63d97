// devices.h for every build: with COMPRESSD_HAVE_CUDA the CUDA runtime is
// asked, without it there are no GPUs.
#include "workers/cuda/devices.h"

#include "absl/strings/str_cat.h"

#ifdef COMPRESSD_HAVE_CUDA
#include <cuda_runtime.h>

#include "workers/cuda/cuda_solver.h"
#endif

namespace compressd::cuda {

#ifdef COMPRESSD_HAVE_CUDA
bool BuiltWithCuda() { return true; }

std::vector<engine::GpuInfo> ListGpus(std::string* why_none) {
  std::vector<engine::GpuInfo> out;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    *why_none = absl::StrCat("CUDA runtime: ", cudaGetErrorString(e));
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    engine::GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.total_bytes = prop.totalGlobalMem;
    size_t free_bytes = 0, total = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) {
      g.free_bytes = free_bytes;
    }
    out.push_back(g);
  }
  if (out.empty()) *why_none = "the CUDA runtime reports no devices";
  return out;
}

absl::StatusOr<std::unique_ptr<engine::SolverBackend>> CreateSolver(
    const engine::DeviceSpec& device) {
  if (device.kind == engine::DeviceSpec::Kind::kCpu) return std::make_unique<engine::CpuSolver>();
  if (device.kind != engine::DeviceSpec::Kind::kCuda || device.index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device.ToString(), " is not resolved (engine::ResolveDevice)"));
  }
  auto solver = CudaSolver::Create(CudaSolverOptions{device.index});
  if (!solver.ok()) return solver.status();
  return std::unique_ptr<engine::SolverBackend>(std::move(*solver));
}
#else
bool BuiltWithCuda() { return false; }

std::vector<engine::GpuInfo> ListGpus(std::string* why_none) {
  *why_none = "this build has no CUDA backend (COMPRESSD_CUDA=OFF or no CUDA toolkit)";
  return {};
}

absl::StatusOr<std::unique_ptr<engine::SolverBackend>> CreateSolver(
    const engine::DeviceSpec& device) {
  if (device.kind == engine::DeviceSpec::Kind::kCpu) return std::make_unique<engine::CpuSolver>();
  return absl::FailedPreconditionError(absl::StrCat(
      "device ", device.ToString(), ": this build has no CUDA backend (COMPRESSD_CUDA=OFF)"));
}
#endif

}  // namespace compressd::cuda
