// Which role may call which RPC: the one table every service checks against
// (and the isolation test walks). Roles (admin.proto Role):
//   admin   every CompressionService and AdminService method, every tenant
//   member  the CompressionService in its tenant
//   viewer  the CompressionService's read methods in its tenant
//   worker  the WorkerService only
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "compressd/v1/admin.pb.h"

namespace compressd {

enum class Access {
  kRead,    // admin, member, viewer
  kWrite,   // admin, member
  kAdmin,   // admin
  kWorker,  // worker
  kAnyKey,  // every valid key
};

struct MethodRule {
  absl::string_view method;  // "CompressionService.GetModel"
  Access access;
};

// Every RPC of CompressionService, WorkerService and AdminService.
const std::vector<MethodRule>& MethodRules();

bool RoleMayAccess(v1::Role role, Access access);

// PERMISSION_DENIED "role viewer may not call CompressionService.SubmitJob";
// INTERNAL for a method missing from the table (a server bug, never allowed).
absl::Status CheckPermission(v1::Role role, absl::string_view method);

}  // namespace compressd
