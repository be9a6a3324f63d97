// The SQL database under Store, behind one small interface with two
// implementations: SQLite (sqlite_db.h; the embedded default) and PostgreSQL
// (postgres_db.h; several compressd replicas on one database). Store's
// statements are written once, in the SQL both accept (positional parameters
// `?` / `?N`, INSERT ... ON CONFLICT, row-value comparisons); the PostgreSQL
// implementation rewrites the parameters to `$N`. The schema is per dialect
// (server/store/schema.cc).
//
// Errors are absl::Status with the database's message: ALREADY_EXISTS for a
// constraint violation, UNAVAILABLE for a busy database, a serialization
// failure or a lost connection, else INTERNAL. Not thread-safe: Store uses a
// Db under its mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace compressd::sql {

enum class Dialect { kSqlite, kPostgres };

// One prepared statement of a Db (implementations: sqlite_db.cc, postgres_db.cc).
class StmtImpl {
 public:
  virtual ~StmtImpl() = default;
  virtual absl::Status BindInt(int index, int64_t value) = 0;
  virtual absl::Status BindText(int index, std::string_view text) = 0;
  virtual absl::Status BindBlob(int index, std::string_view bytes) = 0;
  virtual absl::StatusOr<bool> Step() = 0;
  virtual int64_t Int(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual std::string Blob(int col) const = 0;
};

class Db {
 public:
  virtual ~Db() = default;
  virtual Dialect dialect() const = 0;
  virtual absl::StatusOr<std::unique_ptr<StmtImpl>> Prepare(std::string_view sql) = 0;
  // Runs one or more statements without parameters (their rows are ignored).
  virtual absl::Status Exec(const std::string& sql) = 0;
  // Starts a write transaction that excludes every other writer of the
  // database until it ends: SQLite's BEGIN IMMEDIATE; on PostgreSQL, BEGIN
  // plus a transaction-scoped advisory lock every compressd takes, so writes
  // from several replicas are serialized like writes from one.
  virtual absl::Status BeginWrite() = 0;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  virtual int64_t Changes() const = 0;
  // Tells the other connections `payload` on `channel` when the current
  // transaction commits (PostgreSQL NOTIFY; nothing on SQLite, which has one
  // process).
  virtual absl::Status Notify(std::string_view channel, std::string_view payload) = 0;
  // A session-scoped exclusive lock named by `key` (PostgreSQL advisory
  // lock), for duties one replica at a time should run; true if taken. SQLite
  // has one process: always true.
  virtual absl::StatusOr<bool> TryLock(int64_t key) = 0;
  virtual absl::Status Unlock(int64_t key) = 0;
};

// A statement with typed binds and columns. Parameter indexes are 1-based,
// columns 0-based (as in SQLite). A bind error is reported by Step().
class Stmt {
 public:
  static absl::StatusOr<Stmt> Prepare(Db* db, std::string_view sql);
  explicit Stmt(std::unique_ptr<StmtImpl> impl) : impl_(std::move(impl)) {}

  Stmt& Bind(int index, int64_t value) { return Keep(impl_->BindInt(index, value)); }
  Stmt& Bind(int index, std::string_view text) { return Keep(impl_->BindText(index, text)); }
  Stmt& BindBlob(int index, std::string_view bytes) { return Keep(impl_->BindBlob(index, bytes)); }
  Stmt& BindProto(int index, const google::protobuf::MessageLite& message) {
    return BindBlob(index, message.SerializeAsString());
  }

  // True if a row is available, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  absl::Status Run();

  int64_t Int(int col) const { return impl_->Int(col); }
  std::string Text(int col) const { return impl_->Text(col); }
  std::string Blob(int col) const { return impl_->Blob(col); }
  // Parses a BLOB/BYTEA column into `message`; INTERNAL naming `what` if corrupt.
  absl::Status Proto(int col, google::protobuf::MessageLite* message, std::string_view what) const;

 private:
  Stmt& Keep(absl::Status status) {
    if (bind_error_.ok()) bind_error_ = std::move(status);
    return *this;
  }
  std::unique_ptr<StmtImpl> impl_;
  absl::Status bind_error_;
};

// A write transaction (Db::BeginWrite) that rolls back on destruction unless
// Commit() succeeded. Check status() after constructing.
class Transaction {
 public:
  explicit Transaction(Db* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const absl::Status& status() const { return begin_status_; }
  absl::Status Commit();

 private:
  Db* db_;
  absl::Status begin_status_;
  bool done_ = false;
};

// Opens `target`: a postgresql:// or postgres:// URL, else a SQLite file path.
absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& target);
bool IsPostgresTarget(std::string_view target);

}  // namespace compressd::sql
