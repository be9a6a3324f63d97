#include "workers/engine/nn/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/nn/bf16_gemm.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {

absl::StatusOr<Compute> ParseCompute(const std::string& name) {
  if (name.empty() || name == "fp32") return Compute::kFp32;
  if (name == "bf16") return Compute::kBf16;
  return absl::InvalidArgumentError(
      absl::StrCat("compute: unknown precision \"", name, "\" (fp32, bf16)"));
}

std::string BackendComputeLine() {
  return absl::StrCat("compute: bf16 linear layers (oneDNN ", Bf16GemmImplementation(), ")");
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& device, int threads,
                                                       Compute compute) {
  if (device == "cpu") {
    CpuBackendOptions options;
    options.num_threads = threads;
    if (compute == Compute::kBf16) {
      RETURN_IF_ERROR(Bf16GemmAvailable());
      options.bf16_gemm = true;
    }
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device \"", device, "\": this worker has no backend for it (cpu)"));
}

}  // namespace compressd::engine
