#include "server/store/sql/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace compressd::sql {
namespace {

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

class SqliteStmt : public StmtImpl {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~SqliteStmt() override { sqlite3_finalize(stmt_); }

  absl::Status BindInt(int index, int64_t value) override {
    return Check(sqlite3_bind_int64(stmt_, index, value));
  }
  absl::Status BindText(int index, std::string_view text) override {
    return Check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                   SQLITE_TRANSIENT));
  }
  absl::Status BindBlob(int index, std::string_view bytes) override {
    return Check(sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT));
  }
  absl::StatusOr<bool> Step() override {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(db_, sqlite3_sql(stmt_));
  }
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const override {
    const unsigned char* text = sqlite3_column_text(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return text ? std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(n))
                : std::string();
  }
  std::string Blob(int col) const override {
    const void* data = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return data ? std::string(static_cast<const char*>(data), static_cast<size_t>(n))
                : std::string();
  }

 private:
  absl::Status Check(int rc) { return rc == SQLITE_OK ? absl::OkStatus() : Error(db_, "bind"); }
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb : public Db {
 public:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  ~SqliteDb() override { sqlite3_close(db_); }

  Dialect dialect() const override { return Dialect::kSqlite; }
  absl::StatusOr<std::unique_ptr<StmtImpl>> Prepare(std::string_view sql) override {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
        SQLITE_OK) {
      return Error(db_,
                   absl::StrCat("prepare \"", absl::string_view(sql.data(), sql.size()), "\""));
    }
    return std::make_unique<SqliteStmt>(db_, stmt);
  }
  absl::Status Exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      absl::Status status =
          absl::InternalError(absl::StrCat("sqlite: ", sql, ": ", err ? err : "unknown error"));
      sqlite3_free(err);
      return status;
    }
    return absl::OkStatus();
  }
  absl::Status BeginWrite() override { return Exec("BEGIN IMMEDIATE"); }
  int64_t Changes() const override { return sqlite3_changes(db_); }
  absl::Status Notify(std::string_view, std::string_view) override { return absl::OkStatus(); }
  absl::StatusOr<bool> TryLock(int64_t) override { return true; }
  absl::Status Unlock(int64_t) override { return absl::OkStatus(); }

 private:
  sqlite3* db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Db>> OpenSqlite(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(absl::StrCat(
        "cannot open database ", path, ": ", db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  auto wrapped = std::make_unique<SqliteDb>(db);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    absl::Status status = wrapped->Exec(pragma);
    if (!status.ok()) return status;
  }
  return wrapped;
}

}  // namespace compressd::sql
