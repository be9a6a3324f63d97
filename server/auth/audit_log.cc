#include "server/auth/audit_log.h"

#include <iostream>

namespace compressd {

void AuditLog::Record(const Principal& who, const std::string& action, const std::string& tenant,
                      const std::string& object_id, const std::string& detail) {
  v1::AuditEvent event;
  event.set_key_id(who.key_id);
  event.set_tenant(tenant.empty() ? who.tenant : tenant);
  event.set_action(action);
  event.set_object_id(object_id);
  event.set_detail(detail);
  absl::StatusOr<int64_t> written = store_.AppendAudit(std::move(event));
  if (!written.ok()) {
    std::cerr << "compressd: audit: cannot record " << action << " " << object_id << ": "
              << written.status() << "\n";
  }
}

}  // namespace compressd
