#include "server/store/sql/postgres_db.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace compressd::sql {
namespace {

// The advisory lock every write transaction takes ("compress" in ASCII).
constexpr int64_t kWriteLockKey = 0x636f6d7072657373;
// PostgreSQL type oids of the parameters we send.
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;

absl::Status ConnectionError(PGconn* conn, std::string_view what) {
  std::string msg(PQerrorMessage(conn));
  return absl::UnavailableError(absl::StrCat("postgresql: ", absl::string_view(what.data(),
                                             what.size()), ": ",
                                             absl::StripTrailingAsciiWhitespace(msg)));
}

// Maps a failed result to a Status by its SQLSTATE class.
absl::Status ResultError(PGconn* conn, PGresult* res, std::string_view sql) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string detail = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  std::string msg = absl::StrCat("postgresql: ", absl::string_view(sql.data(), sql.size()), ": ",
                                 absl::StripTrailingAsciiWhitespace(detail));
  const std::string code = state ? state : "";
  if (absl::StartsWith(code, "23")) return absl::AlreadyExistsError(msg);  // integrity
  if (code.empty() || absl::StartsWith(code, "08") || absl::StartsWith(code, "57") ||
      code == "40001" || code == "40P01" || code == "55P03") {
    return absl::UnavailableError(msg);  // connection, shutdown, serialization, lock
  }
  return absl::InternalError(msg);
}

struct ResultDeleter {
  void operator()(PGresult* res) const { PQclear(res); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class PgDb;

class PgStmt : public StmtImpl {
 public:
  PgStmt(PgDb* db, std::string sql, int params);
  absl::Status BindInt(int index, int64_t value) override {
    return Set(index, std::to_string(value), kInt8Oid, 0);
  }
  absl::Status BindText(int index, std::string_view text) override {
    return Set(index, std::string(text), kTextOid, 0);
  }
  absl::Status BindBlob(int index, std::string_view bytes) override {
    return Set(index, std::string(bytes), kByteaOid, 1);
  }
  absl::StatusOr<bool> Step() override;
  int64_t Int(int col) const override {
    return std::strtoll(PQgetvalue(res_.get(), row_, col), nullptr, 10);
  }
  std::string Text(int col) const override {
    return std::string(PQgetvalue(res_.get(), row_, col),
                       static_cast<size_t>(PQgetlength(res_.get(), row_, col)));
  }
  std::string Blob(int col) const override {
    size_t n = 0;
    unsigned char* bytes = PQunescapeBytea(
        reinterpret_cast<const unsigned char*>(PQgetvalue(res_.get(), row_, col)), &n);
    if (bytes == nullptr) return "";
    std::string out(reinterpret_cast<const char*>(bytes), n);
    PQfreemem(bytes);
    return out;
  }

 private:
  absl::Status Set(int index, std::string value, Oid type, int format) {
    if (index < 1 || index > static_cast<int>(values_.size())) {
      return absl::InternalError(absl::StrCat("postgresql: parameter ", index, " of ", sql_));
    }
    values_[index - 1] = std::move(value);
    bound_[index - 1] = true;
    types_[index - 1] = type;
    formats_[index - 1] = format;
    return absl::OkStatus();
  }

  PgDb* db_;
  std::string sql_;
  std::vector<std::string> values_;
  std::vector<bool> bound_;
  std::vector<Oid> types_;
  std::vector<int> formats_;
  Result res_;
  bool executed_ = false;
  int row_ = -1;
};

class PgDb : public Db {
 public:
  explicit PgDb(PGconn* conn) : conn_(conn) {}
  ~PgDb() override { PQfinish(conn_); }

  Dialect dialect() const override { return Dialect::kPostgres; }
  absl::StatusOr<std::unique_ptr<StmtImpl>> Prepare(std::string_view sql) override {
    std::string translated = ToPostgresParams(sql);
    int params = 0;
    for (size_t i = 0; i < translated.size(); ++i) {
      if (translated[i] != '$') continue;
      params = std::max(params, std::atoi(translated.c_str() + i + 1));
    }
    return std::make_unique<PgStmt>(this, std::move(translated), params);
  }
  absl::Status Exec(const std::string& sql) override {
    const bool ending = sql == "COMMIT" || sql == "ROLLBACK";
    if (sql == "COMMIT" && PQtransactionStatus(conn_) != PQTRANS_INTRANS) {
      in_txn_ = false;
      Exec("ROLLBACK").IgnoreError();
      return absl::UnavailableError("postgresql: COMMIT: the transaction failed or its connection "
                                    "was lost; nothing was written");
    }
    RETURN_IF_ERROR(Ready());
    Result res(PQexec(conn_, sql.c_str()));
    if (ending) in_txn_ = false;
    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      return ResultError(conn_, res.get(), sql);
    }
    return absl::OkStatus();
  }
  absl::Status BeginWrite() override {
    RETURN_IF_ERROR(Exec("BEGIN"));
    in_txn_ = true;
    txn_generation_ = generation_;
    absl::Status locked = Exec(absl::StrCat("SELECT pg_advisory_xact_lock(", kWriteLockKey, ")"));
    if (!locked.ok()) Exec("ROLLBACK").IgnoreError();
    return locked;
  }
  int64_t Changes() const override { return changes_; }
  absl::Status Notify(std::string_view channel, std::string_view payload) override {
    ASSIGN_OR_RETURN(std::unique_ptr<StmtImpl> stmt, Prepare("SELECT pg_notify(?, ?)"));
    RETURN_IF_ERROR(stmt->BindText(1, channel));
    RETURN_IF_ERROR(stmt->BindText(2, payload));
    return stmt->Step().status();
  }
  absl::StatusOr<bool> TryLock(int64_t key) override {
    ASSIGN_OR_RETURN(std::unique_ptr<StmtImpl> stmt, Prepare("SELECT pg_try_advisory_lock(?)"));
    RETURN_IF_ERROR(stmt->BindInt(1, key));
    ASSIGN_OR_RETURN(bool row, stmt->Step());
    return row && stmt->Text(0) == "t";
  }
  absl::Status Unlock(int64_t key) override {
    ASSIGN_OR_RETURN(std::unique_ptr<StmtImpl> stmt, Prepare("SELECT pg_advisory_unlock(?)"));
    RETURN_IF_ERROR(stmt->BindInt(1, key));
    return stmt->Step().status();
  }

  // Before each statement: a lost connection is reset, but a write
  // transaction it carried is gone, so its remaining statements fail.
  absl::Status Ready() {
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQreset(conn_);
      ++generation_;
      if (PQstatus(conn_) != CONNECTION_OK) return ConnectionError(conn_, "reconnect");
    }
    if (in_txn_ && txn_generation_ != generation_) {
      return absl::UnavailableError("postgresql: the connection was lost during a transaction");
    }
    return absl::OkStatus();
  }
  PGconn* conn() { return conn_; }
  void set_changes(int64_t n) { changes_ = n; }

 private:
  PGconn* conn_;
  int64_t changes_ = 0;
  bool in_txn_ = false;
  int64_t generation_ = 0;
  int64_t txn_generation_ = 0;
};

PgStmt::PgStmt(PgDb* db, std::string sql, int params)
    : db_(db), sql_(std::move(sql)), values_(params), bound_(params, false),
      types_(params, kTextOid), formats_(params, 0) {}

absl::StatusOr<bool> PgStmt::Step() {
  if (!executed_) {
    executed_ = true;
    RETURN_IF_ERROR(db_->Ready());
    std::vector<const char*> values(values_.size());
    std::vector<int> lengths(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) {
      values[i] = bound_[i] ? values_[i].data() : nullptr;
      lengths[i] = static_cast<int>(values_[i].size());
    }
    res_.reset(PQexecParams(db_->conn(), sql_.c_str(), static_cast<int>(values.size()),
                            types_.data(), values.data(), lengths.data(), formats_.data(), 0));
    const ExecStatusType status = res_ ? PQresultStatus(res_.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK) {
      db_->set_changes(std::strtoll(PQcmdTuples(res_.get()), nullptr, 10));
    } else if (status != PGRES_TUPLES_OK) {
      return ResultError(db_->conn(), res_.get(), sql_);
    }
  }
  if (PQresultStatus(res_.get()) != PGRES_TUPLES_OK) return false;
  ++row_;
  return row_ < PQntuples(res_.get());
}

void IgnoreNotice(void*, const char*) {}

absl::StatusOr<PGconn*> ConnectTo(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (conn == nullptr) return absl::ResourceExhaustedError("postgresql: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status status = ConnectionError(conn, "cannot connect");
    PQfinish(conn);
    return status;
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);  // "already exists, skipping" and the like
  return conn;
}

}  // namespace

std::string ToPostgresParams(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 8);
  int largest = 0;
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (quoted || c != '?') {
      out += c;
      continue;
    }
    size_t j = i + 1;
    while (j < sql.size() && absl::ascii_isdigit(static_cast<unsigned char>(sql[j]))) ++j;
    const int number =
        j > i + 1 ? std::atoi(std::string(sql.substr(i + 1, j - i - 1)).c_str()) : largest + 1;
    largest = std::max(largest, number);
    absl::StrAppend(&out, "$", number);
    i = j - 1;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Db>> OpenPostgres(const std::string& url) {
  ASSIGN_OR_RETURN(PGconn * conn, ConnectTo(url));
  return std::unique_ptr<Db>(new PgDb(conn));
}

// ---- Listener ----

Listener::Listener(std::string url, std::vector<std::string> channels, Callback on_notify,
                   std::function<void()> on_reconnect)
    : url_(std::move(url)), channels_(std::move(channels)), on_notify_(std::move(on_notify)),
      on_reconnect_(std::move(on_reconnect)) {}

Listener::~Listener() {
  Stop();
  if (conn_ != nullptr) PQfinish(static_cast<PGconn*>(conn_));
}

absl::Status Listener::Connect() {
  if (conn_ != nullptr) PQfinish(static_cast<PGconn*>(conn_));
  conn_ = nullptr;
  ASSIGN_OR_RETURN(PGconn * conn, ConnectTo(url_));
  conn_ = conn;
  for (const std::string& channel : channels_) {
    Result res(PQexec(conn, absl::StrCat("LISTEN ", channel).c_str()));
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
      return ResultError(conn, res.get(), "LISTEN " + channel);
    }
  }
  return absl::OkStatus();
}

absl::Status Listener::Start() {
  RETURN_IF_ERROR(Connect());
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Listener::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Listener::Loop() {
  while (!stop_) {
    PGconn* conn = static_cast<PGconn*>(conn_);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (Connect().ok()) on_reconnect_();  // what was sent meanwhile is lost: re-read
      continue;
    }
    pollfd fd{PQsocket(conn), POLLIN, 0};
    if (poll(&fd, 1, 200) < 0) continue;
    if (PQconsumeInput(conn) == 0) continue;  // the connection is bad: reconnect above
    while (PGnotify* note = PQnotifies(conn)) {
      on_notify_(note->relname, note->extra);
      PQfreemem(note);
    }
  }
}

}  // namespace compressd::sql
