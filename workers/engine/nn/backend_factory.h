// Chooses the compute backend for a device, so a job pipeline never names a
// concrete backend: "cpu" today (cpu_backend.h); a second backend plugs in
// here without touching the pipelines.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/nn/backend.h"

namespace compressd::engine {

// The precision of a backend's linear layers (a recipe's `compute`).
enum class Compute { kFp32, kBf16 };

// "" or "fp32", "bf16"; INVALID_ARGUMENT naming `compute` otherwise.
absl::StatusOr<Compute> ParseCompute(const std::string& name);

// "compute: bf16 linear layers (oneDNN <implementation>)": a bf16 job's log.
std::string BackendComputeLine();

// The backend of `device` ("cpu") computing with `threads` threads (<= 0:
// the hardware concurrency). INVALID_ARGUMENT for a device this build has no
// backend for; FAILED_PRECONDITION for bf16 on a build without BF16 GEMMs.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& device, int threads,
                                                       Compute compute = Compute::kFp32);

}  // namespace compressd::engine
