// The audit trail: who created, cancelled or deleted what, and with which
// key, as AuditEvents in the Store that admins list (AdminService.ListAudit).
// Thread-safe.
#pragma once

#include <string>

#include "server/auth/authenticator.h"
#include "server/store/store.h"

namespace compressd {

class AuditLog {
 public:
  explicit AuditLog(Store& store) : store_(store) {}

  // Appends one event; a failure to write is logged, never fails the call
  // that already happened.
  void Record(const Principal& who, const std::string& action, const std::string& tenant,
              const std::string& object_id, const std::string& detail = "");

 private:
  Store& store_;
};

}  // namespace compressd
