// Thin RAII helpers over the SQLite C API for Store: prepared statements with
// typed binds and columns, and an IMMEDIATE transaction that rolls back unless
// committed. Errors are absl::Status with SQLite's message: ALREADY_EXISTS
// for constraint violations, UNAVAILABLE for a busy database, else INTERNAL.
// Not thread-safe: used under Store's mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace compressd::sqlite {

absl::Status Error(sqlite3* db, std::string_view what);
// Runs one or more statements that return no rows (or whose rows are ignored).
absl::Status Exec(sqlite3* db, const std::string& sql);

class Stmt {
 public:
  static absl::StatusOr<Stmt> Prepare(sqlite3* db, std::string_view sql);
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt();

  // Parameter indexes are 1-based, as in SQLite.
  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view text);
  Stmt& BindBlob(int index, std::string_view bytes);
  Stmt& BindProto(int index, const google::protobuf::MessageLite& message);

  // True if a row is available, false when the statement is done.
  absl::StatusOr<bool> Step();
  // Steps a statement that returns no rows.
  absl::Status Run();

  // Column indexes are 0-based, as in SQLite.
  int64_t Int(int col) const;
  std::string Text(int col) const;
  // Parses a BLOB column into `message`; INTERNAL naming `what` if corrupt.
  absl::Status Proto(int col, google::protobuf::MessageLite* message, std::string_view what) const;

 private:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_error_;
};

// BEGIN IMMEDIATE on construction (check status()); ROLLBACK on destruction
// unless Commit() succeeded.
class Transaction {
 public:
  explicit Transaction(sqlite3* db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const absl::Status& status() const { return begin_status_; }
  absl::Status Commit();

 private:
  sqlite3* db_;
  absl::Status begin_status_;
  bool done_ = false;
};

}  // namespace compressd::sqlite
