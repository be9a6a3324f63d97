// The Store's schema, per dialect, and its migrations. Both dialects carry
// the same schema version (kSchemaVersion) and the same tables, columns and
// indexes; a database newer than this server is refused with
// FAILED_PRECONDITION. Applying is idempotent and runs in one write
// transaction, so replicas starting at once on one PostgreSQL database
// migrate it once.
#pragma once

#include "absl/status/status.h"
#include "server/store/sql/db.h"

namespace compressd {

inline constexpr int kSchemaVersion = 7;

absl::Status ApplySchema(sql::Db* db);

}  // namespace compressd
