#include "tests/integration/postgres.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace compressd::testing {
namespace {

namespace fs = std::filesystem;

// Below Linux's ephemeral range (32768+), where other processes' outgoing
// connections and port-0 listeners could take it before postgres binds.
int FreeLoopbackPort() {
  std::mt19937 rng(std::random_device{}());
  for (int tries = 0; tries < 200; ++tries) {
    const int port = 22000 + static_cast<int>(rng() % 10000);
    if (LoopbackPortFree(port)) return port;
  }
  return -1;
}

std::string AdminUrl(int port, const std::string& db) {
  return absl::StrCat("postgresql://compressd@127.0.0.1:", port, "/", db);
}

absl::Status ExecAdmin(int port, const std::string& sql) {
  PGconn* conn = PQconnectdb(AdminUrl(port, "postgres").c_str());
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(PQerrorMessage(conn));
  } else {
    PGresult* res = PQexec(conn, sql.c_str());
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      status = absl::InternalError(absl::StrCat(sql, ": ", PQresultErrorMessage(res)));
    }
    PQclear(res);
  }
  PQfinish(conn);
  return status;
}

}  // namespace

std::string PostgresBinDir() {
  if (const char* env = std::getenv("COMPRESSD_PG_BIN"); env != nullptr && *env) return env;
  std::string best;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = (entry.path() / "bin").string();
    if (fs::exists(bin + "/postgres") && bin > best) best = bin;
  }
  return best;
}

PostgresServer::~PostgresServer() { Stop(); }

std::vector<std::string> PostgresServer::AsOwner(std::vector<std::string> argv) const {
  if (geteuid() != 0) return argv;
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) return argv;  // initdb will say why it cannot run as root
  std::vector<std::string> wrapped = {"/usr/bin/setpriv", absl::StrCat("--reuid=", pw->pw_uid),
                                      absl::StrCat("--regid=", pw->pw_gid), "--clear-groups"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

absl::Status PostgresServer::RunAs(const std::vector<std::string>& argv, const std::string& log) {
  Process p;
  if (!p.Start(AsOwner(argv), log)) return absl::InternalError("cannot start " + argv[0]);
  const int code = p.Wait(std::chrono::seconds(120));
  if (code != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " exited with ", code, " (log: ", log, ")"));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::Start() {
  const std::string bin = PostgresBinDir();
  if (bin.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server (Debian package postgresql; run scripts/install-deps.sh, or set "
        "COMPRESSD_PG_BIN)");
  }
  char tmpl[] = "/tmp/compressd-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;
  if (geteuid() == 0) {
    if (const passwd* pw = getpwnam("postgres"); pw != nullptr) {
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        return absl::InternalError("cannot chown " + dir_);
      }
    }
  }
  const std::string data = dir_ + "/data";
  absl::Status init = RunAs({bin + "/initdb", "-D", data, "-U", "compressd", "--auth=trust",
                             "-E", "UTF8", "--no-sync", "--no-instructions"},
                            dir_ + "/initdb.log");
  if (!init.ok()) return init;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = FreeLoopbackPort();
    if (!process_.Start(AsOwner({bin + "/postgres", "-D", data, "-p", std::to_string(port_), "-k",
                                 dir_, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                 "-c", "max_connections=200"}),
                        dir_ + "/postgres.log")) {
      return absl::InternalError("cannot start postgres");
    }
    const std::string url = AdminUrl(port_, "postgres");
    for (int i = 0; i < 240 && process_.running(); ++i) {
      if (PQping(url.c_str()) == PQPING_OK) return absl::OkStatus();
      if (process_.Wait(std::chrono::milliseconds(250)) >= 0) break;  // exited (port taken?)
    }
    if (process_.running()) process_.Signal(SIGKILL);
    process_.Wait(std::chrono::seconds(10));
  }
  return absl::UnavailableError("postgres did not start (log: " + dir_ + "/postgres.log)");
}

void PostgresServer::Stop() {
  if (process_.running()) {
    process_.Signal(SIGINT);
    if (process_.Wait(std::chrono::seconds(10)) < 0) process_.Signal(SIGKILL);
    process_.Wait(std::chrono::seconds(10));
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
}

absl::StatusOr<std::string> PostgresServer::NewDatabase() {
  const std::string name = absl::StrCat("t", getpid(), "_", ++databases_);
  absl::Status created = ExecAdmin(port_, "CREATE DATABASE " + name);
  if (!created.ok()) return created;
  return AdminUrl(port_, name);
}

bool TestStoreIsPostgres() {
  const char* env = std::getenv("COMPRESSD_TEST_STORE");
  return env != nullptr && std::string(env) == "postgresql";
}

std::string TestStoreTarget(const std::string& sqlite_path) {
  if (!TestStoreIsPostgres()) return sqlite_path;
  // One server per test process, stopped when the process exits.
  static PostgresServer* server = [] {
    auto* s = new PostgresServer();
    absl::Status started = s->Start();
    if (!started.ok()) {
      ADD_FAILURE() << "PostgreSQL: " << started;
      delete s;
      return static_cast<PostgresServer*>(nullptr);
    }
    std::atexit([] { server->Stop(); });
    return s;
  }();
  if (server == nullptr) return "";
  absl::StatusOr<std::string> url = server->NewDatabase();
  if (!url.ok()) ADD_FAILURE() << url.status();
  return url.ok() ? *url : "";
}

}  // namespace compressd::testing
