#include "server/store/sqlite_util.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace compressd::sqlite {

absl::Status Error(sqlite3* db, std::string_view what) {
  std::string msg = absl::StrCat("sqlite: ", absl::string_view(what.data(), what.size()), ": ",
                                 sqlite3_errmsg(db));
  switch (sqlite3_errcode(db) & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status status =
        absl::InternalError(absl::StrCat("sqlite: ", sql, ": ", err ? err : "unknown error"));
    sqlite3_free(err);
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<Stmt> Stmt::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return Error(db, absl::StrCat("prepare \"", absl::string_view(sql.data(), sql.size()), "\""));
  }
  return Stmt(db, stmt);
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)),
      bind_error_(std::move(other.bind_error_)) {}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::Bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, "bind");
  }
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view text) {
  if (sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK &&
      bind_error_.ok()) {
    bind_error_ = Error(db_, "bind");
  }
  return *this;
}

Stmt& Stmt::BindBlob(int index, std::string_view bytes) {
  if (sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT) !=
          SQLITE_OK &&
      bind_error_.ok()) {
    bind_error_ = Error(db_, "bind");
  }
  return *this;
}

Stmt& Stmt::BindProto(int index, const google::protobuf::MessageLite& message) {
  return BindBlob(index, message.SerializeAsString());
}

absl::StatusOr<bool> Stmt::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, sqlite3_sql(stmt_));
}

absl::Status Stmt::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return text ? std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(n))
              : std::string();
}

absl::Status Stmt::Proto(int col, google::protobuf::MessageLite* message,
                         std::string_view what) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (!message->ParseFromArray(data, n)) {
    return absl::InternalError(absl::StrCat("corrupt stored record: ",
                                            absl::string_view(what.data(), what.size())));
  }
  return absl::OkStatus();
}

Transaction::Transaction(sqlite3* db) : db_(db) { begin_status_ = Exec(db_, "BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (begin_status_.ok() && !done_) Exec(db_, "ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (!begin_status_.ok()) return begin_status_;
  absl::Status status = Exec(db_, "COMMIT");
  if (status.ok()) done_ = true;
  return status;
}

}  // namespace compressd::sqlite
