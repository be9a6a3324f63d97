#include "common/roles.h"

#include "absl/strings/str_cat.h"

namespace compressd {

std::string RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_ADMIN:
      return "admin";
    case v1::ROLE_MEMBER:
      return "member";
    case v1::ROLE_VIEWER:
      return "viewer";
    case v1::ROLE_WORKER:
      return "worker";
    default:
      return "unspecified";
  }
}

absl::StatusOr<v1::Role> ParseRole(absl::string_view name, absl::string_view field) {
  for (v1::Role role : {v1::ROLE_ADMIN, v1::ROLE_MEMBER, v1::ROLE_VIEWER, v1::ROLE_WORKER}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown role \"", name,
                                                 "\"; expected admin, member, viewer or worker"));
}

}  // namespace compressd
