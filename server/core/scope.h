// Which tenant's objects a call may see. Every query of the public API is
// scoped by the caller's tenant; an admin's scope is every tenant. An object
// outside the scope is NOT_FOUND, with the same message as one that does not
// exist, so a caller never learns that it does.
#pragma once

#include <string>

namespace compressd {

struct Scope {
  std::string tenant;  // empty: every tenant (admins, tests, the server itself)

  static Scope All() { return Scope{}; }
  static Scope Tenant(std::string name) { return Scope{std::move(name)}; }
  bool Allows(const std::string& object_tenant) const {
    return tenant.empty() || tenant == object_tenant;
  }
};

}  // namespace compressd
