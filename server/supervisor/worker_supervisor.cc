#include "server/supervisor/worker_supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/util.h"

namespace compressd {

absl::StatusOr<std::vector<int>> ParseGpuList(const std::string& text) {
  std::vector<int> out;
  if (text.empty()) return out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int index = -1;
    if (!absl::SimpleAtoi(part, &index) || index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--gpus: \"", part, "\" is not a device index (e.g. --gpus 0,1)"));
    }
    if (std::find(out.begin(), out.end(), index) != out.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--gpus: device ", index, " is listed twice"));
    }
    out.push_back(index);
  }
  return out;
}
namespace {

constexpr int64_t kReapPollMs = 20;

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with code ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status));
  }
  return absl::StrCat("ended with wait status ", status);
}

// Runs in the forked child: only async-signal-safe calls until execv.
[[noreturn]] void ExecChild(pid_t parent, const std::vector<char*>& argv) {
  // Die with the supervisor thread, whatever the worker does with SIGTERM: a
  // worker outliving a killed compressd would go on working on (and sharing
  // the scratch space of) a task the restarted server leases again.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) {
    _exit(1);  // the parent is already gone
  }
  setpgid(0, 0);  // terminal signals go to compressd only
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);  // compressd blocks SIGINT/SIGTERM
  signal(SIGPIPE, SIG_DFL);                  // gRPC ignores it in compressd
  dup2(STDERR_FILENO, STDOUT_FILENO);
  execv(argv[0], argv.data());
  _exit(127);
}

// SIGTERM, wait up to grace_ms, then SIGKILL; reaps every pid.
void TerminateAll(const std::vector<pid_t>& pids, int64_t grace_ms) {
  for (pid_t pid : pids) {
    kill(pid, SIGTERM);
  }
  std::vector<pid_t> alive = pids;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(grace_ms);
  while (!alive.empty() && absl::Now() < deadline) {
    std::vector<pid_t> still;
    for (pid_t pid : alive) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == 0) {
        still.push_back(pid);
      }
    }
    alive.swap(still);
    if (!alive.empty()) {
      absl::SleepFor(absl::Milliseconds(kReapPollMs));
    }
  }
  for (pid_t pid : alive) {
    std::fprintf(stderr, "compressd: worker pid %d ignored SIGTERM; sending SIGKILL\n", pid);
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace

WorkerSupervisor::WorkerSupervisor(WorkerSupervisorOptions options)
    : options_(std::move(options)) {}

WorkerSupervisor::~WorkerSupervisor() { Stop(); }

absl::Status WorkerSupervisor::Start() {
  if (access(options_.binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker binary ", options_.binary, " is not executable: ", std::strerror(errno)));
  }
  for (int i = 0; i < options_.count; ++i) {
    std::error_code ec;
    const std::string dir = absl::StrCat(options_.cache_root, "/", i);
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create worker cache dir ", dir, ": ", ec.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (started_) {
    return absl::FailedPreconditionError("worker supervisor already started");
  }
  started_ = true;
  slots_.assign(options_.count, Slot{});
  // Every child is forked from the monitor thread: PR_SET_PDEATHSIG follows
  // the forking thread, and this one lives as long as the children should.
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void WorkerSupervisor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

std::vector<pid_t> WorkerSupervisor::pids() const {
  absl::MutexLock lock(&mu_);
  std::vector<pid_t> out;
  for (const Slot& slot : slots_) {
    out.push_back(slot.pid);
  }
  return out;
}

int64_t WorkerSupervisor::spawn_count() const {
  absl::MutexLock lock(&mu_);
  return spawn_count_;
}

void WorkerSupervisor::Run() {
  std::vector<pid_t> to_stop;
  {
    absl::MutexLock lock(&mu_);
    while (!stopping_) {
      CheckSlotsLocked();
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(options_.poll_ms));
    }
    for (Slot& slot : slots_) {
      if (slot.pid > 0) {
        to_stop.push_back(slot.pid);
      }
      slot.pid = 0;
    }
  }
  TerminateAll(to_stop, options_.grace_ms);
}

void WorkerSupervisor::CheckSlotsLocked() {
  const int64_t now = NowMs();
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.pid > 0) {
      int status = 0;
      const pid_t r = waitpid(slot.pid, &status, WNOHANG);
      if (r == 0 || (r < 0 && errno == EINTR)) {
        continue;  // still running
      }
      const bool healthy = now - slot.started_ms >= options_.healthy_run_ms;
      slot.backoff_ms = healthy || slot.backoff_ms == 0
                            ? options_.min_backoff_ms
                            : std::min(slot.backoff_ms * 2, options_.max_backoff_ms);
      std::fprintf(stderr, "compressd: worker %zu (pid %d) %s; restarting in %lld ms\n", i,
                   slot.pid, DescribeExit(status).c_str(), static_cast<long long>(slot.backoff_ms));
      slot.pid = 0;
      slot.restart_at_ms = now + slot.backoff_ms;
    }
    if (slot.pid == 0 && now >= slot.restart_at_ms) {
      absl::Status status = SpawnLocked(static_cast<int>(i));
      if (!status.ok()) {
        std::fprintf(stderr, "compressd: %s\n", status.ToString().c_str());
        slot.backoff_ms = std::min(std::max(slot.backoff_ms * 2, options_.min_backoff_ms),
                                   options_.max_backoff_ms);
        slot.restart_at_ms = now + slot.backoff_ms;
      }
    }
  }
}

absl::Status WorkerSupervisor::SpawnLocked(int index) {
  std::vector<std::string> args = {options_.binary, "--server", options_.server_address,
                                   "--cache-dir", absl::StrCat(options_.cache_root, "/", index)};
  if (index < static_cast<int>(options_.gpus.size())) {
    args.push_back("--device");
    args.push_back(absl::StrCat("cuda:", options_.gpus[index]));
  }
  for (const auto& [flag, value] : options_.extra_flags) {
    if (value.empty()) continue;
    args.push_back(absl::StrCat("--", flag));
    args.push_back(value);
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  argv.reserve(args.size());
  for (std::string& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot fork worker ", index, ": ", std::strerror(errno)));
  }
  if (pid == 0) {
    ExecChild(parent, argv);
  }
  Slot& slot = slots_[index];
  slot.pid = pid;
  slot.started_ms = NowMs();
  ++spawn_count_;
  return absl::OkStatus();
}

}  // namespace compressd
