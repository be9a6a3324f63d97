// sql::Db over the SQLite C API: one connection in WAL mode with
// synchronous=FULL and a 5 s busy timeout.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/sql/db.h"

namespace compressd::sql {

absl::StatusOr<std::unique_ptr<Db>> OpenSqlite(const std::string& path);

}  // namespace compressd::sql
