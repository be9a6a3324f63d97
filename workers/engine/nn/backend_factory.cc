#include "workers/engine/nn/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& device, int threads) {
  if (device == "cpu") {
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(CpuBackendOptions{threads}));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device \"", device, "\": this worker has no backend for it (cpu)"));
}

}  // namespace compressd::engine
