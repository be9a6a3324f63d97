// Chooses the compute backend for a device, so a job pipeline never names a
// concrete backend: "cpu" today (cpu_backend.h); a second backend plugs in
// here without touching the pipelines.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/nn/backend.h"

namespace compressd::engine {

// The backend of `device` ("cpu") computing with `threads` threads (<= 0:
// the hardware concurrency). INVALID_ARGUMENT for a device this build has no
// backend for.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& device, int threads);

}  // namespace compressd::engine
