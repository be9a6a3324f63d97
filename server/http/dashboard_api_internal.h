// Shared by the two halves of the dashboard's JSON API (dashboard_api.cc:
// jobs; dashboard_api_objects.cc: models, datasets, workers, artifacts).
#pragma once

#include <httplib.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/auth/authenticator.h"
#include "server/server_core.h"

namespace compressd {

// The query parameter `name` as an integer in [lo, hi]; `fallback` when
// absent; INVALID_ARGUMENT naming it otherwise.
absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t fallback,
                                 int64_t lo, int64_t hi);

void RegisterObjectRoutes(httplib::Server& server, const ServerCore& core, Authenticator* auth);

}  // namespace compressd
