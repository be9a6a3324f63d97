// A throwaway PostgreSQL server for tests: the Debian `postgresql` package's
// initdb and postgres (the newest /usr/lib/postgresql/N/bin, or
// $COMPRESSD_PG_BIN) on a free loopback port, its cluster in a fresh /tmp
// directory, trust authentication for user "compressd", fsync off. As root
// (PostgreSQL refuses to run as root) it runs as the `postgres` user the
// package creates, through setpriv.
//
// TestStoreTarget() is how a test suite runs against either store: it names
// a SQLite file, or with COMPRESSD_TEST_STORE=postgresql a new database on a
// server started once per test process (ctest registers such suites twice).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tests/integration/harness.h"

namespace compressd::testing {

class PostgresServer {
 public:
  ~PostgresServer();  // Stop()
  // initdb + postgres, waiting until it accepts connections (up to 60 s).
  absl::Status Start();
  // SIGINT (fast shutdown), then SIGKILL after 10 s; removes the cluster.
  void Stop();
  // A new empty database; its URL.
  absl::StatusOr<std::string> NewDatabase();
  int port() const { return port_; }

 private:
  absl::Status RunAs(const std::vector<std::string>& argv, const std::string& log);
  std::vector<std::string> AsOwner(std::vector<std::string> argv) const;

  Process process_;
  std::string dir_;
  int port_ = 0;
  int databases_ = 0;
};

// The directory holding initdb and postgres ("" when none is found).
std::string PostgresBinDir();

// True when COMPRESSD_TEST_STORE=postgresql.
bool TestStoreIsPostgres();
// Where a test's Store lives: `sqlite_path`, or (TestStoreIsPostgres) the URL
// of a new database. Fails the test (ADD_FAILURE) and returns "" when the
// server cannot start.
std::string TestStoreTarget(const std::string& sqlite_path);

}  // namespace compressd::testing
