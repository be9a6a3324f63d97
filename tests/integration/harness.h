// Test harness for integration tests: starts the real binaries (compressd,
// compress-worker, compressctl) as child processes on free loopback ports and
// waits for readiness. Not thread-safe; one harness per test.
#pragma once

#include <grpcpp/channel.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace compressd::testing {

// Directory holding compressd, compress-worker, compressctl, make-tiny-llama.
std::string BinDir();
// Whether `port` on 127.0.0.1 can be bound now.
bool LoopbackPortFree(int port);
// A fresh empty directory under the test's temp dir.
std::string MakeTempDir(const std::string& name);

// A child process; its stdout is readable line by line, stderr goes to a log file.
class Process {
 public:
  Process() = default;
  ~Process();  // SIGKILLs and reaps the child if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts argv[0] (a path) with the given arguments. Returns false on failure.
  bool Start(const std::vector<std::string>& argv, const std::string& stderr_log);
  // Reads one line of stdout (without '\n'); false on EOF or timeout.
  bool ReadLine(std::string* line, std::chrono::milliseconds timeout);
  void Signal(int sig);
  // Waits for exit; returns the exit code, 128+signal if killed, -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0; }
  // Whether a started child has ended (without reaping it: Wait() still sees it).
  bool Exited() const;
  pid_t pid() const { return pid_; }
  // For a failure message: whether the child still runs (or how it ended,
  // without reaping it) and the last `tail_bytes` of its stderr log.
  std::string Describe(size_t tail_bytes = 4096) const;

 private:
  // The child's state without reaping it (waitid WNOHANG | WNOWAIT); false if waitid fails.
  bool Peek(siginfo_t* info) const;

  pid_t pid_ = -1;
  std::string stderr_log_;
  int stdout_fd_ = -1;
  std::string buffer_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs compressctl against `server` (HOST:PORT) with `args`; waits for it.
CliResult RunCli(const std::string& server, const std::vector<std::string>& args);
class Server;
// The same against a started Server; when compressctl cannot reach it, its
// err ends with the server's Describe() (alive or how it died, and its log).
CliResult RunCli(const Server& server, const std::vector<std::string>& args);
// Runs any binary to completion; returns exit code and outputs.
CliResult RunBinary(const std::vector<std::string>& argv);

// A running compressd.
class Server {
 public:
  // Starts compressd with --data-dir, ephemeral ports and the extra flags;
  // returns once it answers ListModels with its admin key. Sets
  // $COMPRESSD_KEY_FILE to DATA/admin.key, so RunCli calls are the admin.
  bool Start(const std::string& data_dir, const std::vector<std::string>& extra_flags);
  // A channel to the server sending `key` (default: the admin key; "-": no
  // key at all), over TLS verified with the CA of set_ca_cert() if set.
  std::shared_ptr<grpc::Channel> Channel(const std::string& key = "") const;
  // Before Start: the server speaks TLS with a certificate `ca_cert` verifies.
  void set_ca_cert(const std::string& ca_cert) { ca_cert_ = ca_cert; }
  const std::string& admin_key() const { return admin_key_; }
  // DATA/worker.key: a worker key for compress-worker --key-file.
  const std::string& worker_key_file() const { return worker_key_file_; }
  // SIGTERM and wait; returns the exit code.
  int Stop();
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& http_address() const { return http_address_; }
  Process& process() { return process_; }
  const Process& process() const { return process_; }

 private:
  Process process_;
  std::string grpc_address_;
  std::string http_address_;
  std::string admin_key_;
  std::string worker_key_file_;
  std::string ca_cert_;
};

// Polls `pred` every 50 ms until it returns true or `timeout` passes.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// Reads a whole file; empty string if it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace compressd::testing
