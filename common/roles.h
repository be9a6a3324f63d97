// The names of API key roles (admin.proto Role), shared by the server and
// compressctl.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compressd/v1/admin.pb.h"

namespace compressd {

std::string RoleName(v1::Role role);  // "admin", "member", "viewer", "worker"
// The role named `name`; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<v1::Role> ParseRole(absl::string_view name, absl::string_view field);

}  // namespace compressd
