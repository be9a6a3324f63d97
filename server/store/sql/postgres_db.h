// sql::Db over libpq (PostgreSQL 12 or newer), for several compressd replicas
// on one database: `compressd --store postgresql://user@host:port/db`.
//
// Statements use Store's portable SQL; parameters `?` and `?N` become `$N`
// (ToPostgresParams). Parameters go typed (int8, text, bytea in binary) and
// results come back as text. A lost connection is reset before the next
// statement; a write transaction it interrupted fails with UNAVAILABLE
// instead of carrying on in a new session. Writers take one advisory lock per
// transaction (Db::BeginWrite), so leasing and every other read-modify-write
// is serialized across replicas exactly as SQLite serializes it within one.
//
// Listener receives NOTIFY on its own connection and thread: Store sends one
// when it appends a job's events or queues work, and each replica wakes its
// WatchJob streams and LeaseTask long-polls with them. The Store stays the
// source of truth: a notification only says "read again", so one lost while
// the listener reconnects costs latency, not events (on_reconnect lets the
// caller re-read everything).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/sql/db.h"

namespace compressd::sql {

absl::StatusOr<std::unique_ptr<Db>> OpenPostgres(const std::string& url);

// "a = ? AND b = ?3 AND c = ?" -> "a = $1 AND b = $3 AND c = $4": a bare `?`
// takes one more than the largest number so far, as in SQLite. Quoted text is
// left alone.
std::string ToPostgresParams(std::string_view sql);

class Listener {
 public:
  using Callback = std::function<void(const std::string& channel, const std::string& payload)>;
  Listener(std::string url, std::vector<std::string> channels, Callback on_notify,
           std::function<void()> on_reconnect);
  ~Listener();  // Stop()
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Connects and LISTENs, then runs the thread; UNAVAILABLE if it cannot connect.
  absl::Status Start();
  void Stop();

 private:
  absl::Status Connect();
  void Loop();

  const std::string url_;
  const std::vector<std::string> channels_;
  const Callback on_notify_;
  const std::function<void()> on_reconnect_;
  void* conn_ = nullptr;  // PGconn*, used only by the thread after Start()
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace compressd::sql
