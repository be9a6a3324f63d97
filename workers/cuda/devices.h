// What the worker knows of its devices, with or without CUDA in the build:
// the GPUs this process sees, and the solver backend of a resolved device.
// Without CUDA (COMPRESSD_CUDA=OFF or no toolkit) there are no GPUs and
// "cuda:N" is FAILED_PRECONDITION. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/runtime/device_spec.h"

namespace compressd::cuda {

// Whether this build has the CUDA backend.
bool BuiltWithCuda();

// The GPUs this process sees; empty with *why_none set when there are none
// (no driver, no device, or a build without CUDA).
std::vector<engine::GpuInfo> ListGpus(std::string* why_none);

// The solver of a resolved device (engine::ResolveDevice): the CPU's for
// cpu, a CudaSolver for cuda:N.
absl::StatusOr<std::unique_ptr<engine::SolverBackend>> CreateSolver(
    const engine::DeviceSpec& device);

}  // namespace compressd::cuda
