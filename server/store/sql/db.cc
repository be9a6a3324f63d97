#include "server/store/sql/db.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/store/sql/postgres_db.h"
#include "server/store/sql/sqlite_db.h"

namespace compressd::sql {

absl::StatusOr<Stmt> Stmt::Prepare(Db* db, std::string_view sql) {
  absl::StatusOr<std::unique_ptr<StmtImpl>> impl = db->Prepare(sql);
  if (!impl.ok()) return impl.status();
  return Stmt(std::move(*impl));
}

absl::StatusOr<bool> Stmt::Step() {
  if (!bind_error_.ok()) return bind_error_;
  return impl_->Step();
}

absl::Status Stmt::Run() {
  absl::StatusOr<bool> row = Step();
  return row.ok() ? absl::OkStatus() : row.status();
}

absl::Status Stmt::Proto(int col, google::protobuf::MessageLite* message,
                         std::string_view what) const {
  if (!message->ParseFromString(impl_->Blob(col))) {
    return absl::InternalError(
        absl::StrCat("corrupt stored record: ", absl::string_view(what.data(), what.size())));
  }
  return absl::OkStatus();
}

Transaction::Transaction(Db* db) : db_(db) { begin_status_ = db_->BeginWrite(); }

Transaction::~Transaction() {
  if (begin_status_.ok() && !done_) db_->Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (!begin_status_.ok()) return begin_status_;
  absl::Status status = db_->Exec("COMMIT");
  if (status.ok()) done_ = true;
  return status;
}

bool IsPostgresTarget(std::string_view target) {
  absl::string_view t(target.data(), target.size());
  return absl::StartsWith(t, "postgresql://") || absl::StartsWith(t, "postgres://");
}

absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& target) {
  if (IsPostgresTarget(target)) return OpenPostgres(target);
  return OpenSqlite(target);
}

}  // namespace compressd::sql
