#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/channel.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/postgres.h"

namespace compressd::testing {
namespace fs = std::filesystem;
namespace v1 = ::compressd::v1;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string BinDir() {
  const char* build = std::getenv("COMPRESSD_BUILD_DIR");
  return std::string(build ? build : ".") + "/bin";
}

namespace {

// This process's directory of test directories: removed at exit when every
// test passed (kept for a look at the logs otherwise).
struct TempRoot {
  std::string path =
      ::testing::TempDir() + "compressd-it-" + std::to_string(getpid());
  ~TempRoot() {
    if (!::testing::UnitTest::GetInstance()->Failed()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

const std::string& TempRootPath() {
  static TempRoot root;
  return root.path;
}

}  // namespace

bool LoopbackPortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string MakeTempDir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string base = TempRootPath() + "/" +
                     (info ? std::string(info->test_suite_name()) + "." + info->name() : "x") +
                     "/" + name;
  fs::remove_all(base);
  fs::create_directories(base);
  return base;
}

Process::~Process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool Process::Start(const std::vector<std::string>& argv, const std::string& stderr_log) {
  if (stdout_fd_ >= 0) close(stdout_fd_);  // a Process started again
  stdout_fd_ = -1;
  buffer_.clear();
  int out_pipe[2];
  if (pipe(out_pipe) != 0) return false;
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    int err = open(stderr_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    close(out_pipe[0]);
    close(out_pipe[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  stdout_fd_ = out_pipe[0];
  pid_ = pid;
  stderr_log_ = stderr_log;
  return true;
}

bool Process::Peek(siginfo_t* info) const {
  *info = siginfo_t{};
  // WNOWAIT: looks without reaping, so Wait() still sees the exit.
  return waitid(P_PID, static_cast<id_t>(pid_), info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

bool Process::Exited() const {
  siginfo_t info;
  return pid_ > 0 && Peek(&info) && info.si_pid != 0;
}

std::string Process::Describe(size_t tail_bytes) const {
  std::string state = "never started";
  if (pid_ > 0) {
    siginfo_t info;
    if (!Peek(&info)) {
      state = "state unknown (waitid failed)";
    } else if (info.si_pid == 0) {
      state = "still running";
    } else if (info.si_code == CLD_EXITED) {
      state = "exited with code " + std::to_string(info.si_status);
    } else {
      state = "killed by signal " + std::to_string(info.si_status);
    }
  }
  std::string log = ReadFile(stderr_log_);
  if (log.size() > tail_bytes) log = "..." + log.substr(log.size() - tail_bytes);
  return "pid " + std::to_string(pid_) + " " + state + "; the end of " + stderr_log_ + ":\n" + log;
}

bool Process::ReadLine(std::string* line, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      *line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (left.count() <= 0 || stdout_fd_ < 0) return false;
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int Process::Wait(milliseconds timeout) {
  if (pid_ <= 0) return -1;
  auto deadline = steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

CliResult RunBinary(const std::vector<std::string>& argv) {
  static int counter = 0;
  std::string out_path = ::testing::TempDir() + "cli-out-" + std::to_string(getpid()) + "-" +
                         std::to_string(counter) + ".txt";
  std::string err_path = ::testing::TempDir() + "cli-err-" + std::to_string(getpid()) + "-" +
                         std::to_string(counter++) + ".txt";
  CliResult result;
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return result;
}

CliResult RunCli(const std::string& server, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinDir() + "/compressctl", "--server", server};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunBinary(argv);
}

CliResult RunCli(const Server& server, const std::vector<std::string>& args) {
  CliResult result = RunCli(server.grpc_address(), args);
  if (result.exit_code != 0 && result.err.find("cannot reach compressd") != std::string::npos) {
    result.err += "\n[harness] compressd " + server.process().Describe();
  }
  return result;
}

bool Server::Start(const std::string& data_dir, const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {BinDir() + "/compressd", "--data-dir", data_dir,
                                   "--grpc-port", "0", "--http-port", "0"};
  // COMPRESSD_TEST_STORE=postgresql: the suite runs on PostgreSQL, one
  // database per data directory (kept across the test's restarts).
  static std::map<std::string, std::string>* databases = new std::map<std::string, std::string>();
  if (TestStoreIsPostgres() &&
      std::find(extra_flags.begin(), extra_flags.end(), "--store") == extra_flags.end()) {
    std::string& url = (*databases)[data_dir];
    if (url.empty()) url = TestStoreTarget(data_dir + "/compressd.db");
    argv.insert(argv.end(), {"--store", url});
  }
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  if (!process_.Start(argv, data_dir + "/../compressd.stderr.log")) return false;
  std::string line;
  while (process_.ReadLine(&line, milliseconds(30000))) {
    // "compressd listening grpc=HOST:PORT http=HOST:PORT"
    auto g = line.find("grpc=");
    auto h = line.find(" http=");
    if (line.rfind("compressd listening", 0) == 0 && g != std::string::npos &&
        h != std::string::npos) {
      grpc_address_ = line.substr(g + 5, h - (g + 5));
      http_address_ = line.substr(h + 6);
      break;
    }
  }
  if (grpc_address_.empty()) return false;
  const std::string key_file = data_dir + "/admin.key";
  admin_key_ = ReadFile(key_file);
  while (!admin_key_.empty() && admin_key_.back() == '\n') admin_key_.pop_back();
  setenv("COMPRESSD_KEY_FILE", key_file.c_str(), 1);
  worker_key_file_ = data_dir + "/worker.key";
  auto stub = v1::CompressionService::NewStub(Channel());
  return WaitFor(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(500));
        v1::ListModelsRequest req;
        v1::ListModelsResponse resp;
        return stub->ListModels(&ctx, req, &resp).ok();
      },
      milliseconds(30000));
}

std::shared_ptr<grpc::Channel> Server::Channel(const std::string& key) const {
  ChannelSecurity security;
  security.api_key = key.empty() ? admin_key_ : (key == "-" ? "" : key);
  security.ca_cert_path = ca_cert_;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      OpenChannel(grpc_address_, security, grpc::ChannelArguments());
  return channel.ok() ? *channel : nullptr;
}

int Server::Stop() {
  process_.Signal(SIGTERM);
  return process_.Wait(milliseconds(30000));
}

bool WaitFor(const std::function<bool()>& pred, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  while (steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return pred();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace compressd::testing
