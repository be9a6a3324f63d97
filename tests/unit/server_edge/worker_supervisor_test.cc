// WorkerSupervisor against stand-in worker scripts (the real compress-worker
// is not needed to test process management).
#include "server/supervisor/worker_supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

namespace compressd {
namespace {

class WorkerSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "supervisor_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes an executable shell script standing in for compress-worker.
  std::string Script(const std::string& body) {
    std::string path = dir_ + "/fake-worker.sh";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
    return path;
  }

  WorkerSupervisorOptions Options(const std::string& binary, int count) {
    WorkerSupervisorOptions options;
    options.binary = binary;
    options.server_address = "127.0.0.1:12345";
    options.cache_root = dir_ + "/worker-cache";
    options.count = count;
    options.min_backoff_ms = 10;
    options.max_backoff_ms = 50;
    options.poll_ms = 10;
    options.grace_ms = 300;
    return options;
  }

  // Polls `cond` (a child process's progress cannot be waited on otherwise).
  static bool Eventually(const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (cond()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return cond();
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
  }

  static bool AllRunning(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
      if (pid <= 0) {
        return false;
      }
    }
    return true;
  }

  std::string dir_;
};

TEST_F(WorkerSupervisorTest, StartsWorkersWithServerAndCacheDir) {
  WorkerSupervisor supervisor(Options(Script("echo \"$@\" > \"$4/args\"\nexec sleep 30"), 2));
  ASSERT_TRUE(supervisor.Start().ok());
  for (int i = 0; i < 2; ++i) {
    const std::string args_file = dir_ + "/worker-cache/" + std::to_string(i) + "/args";
    ASSERT_TRUE(Eventually([&] { return !ReadFile(args_file).empty(); }));
    EXPECT_EQ(ReadFile(args_file), "--server 127.0.0.1:12345 --cache-dir " + dir_ +
                                       "/worker-cache/" + std::to_string(i) + "\n");
  }
  supervisor.Stop();
}

TEST_F(WorkerSupervisorTest, OneWorkerPerGpuGetsItsDevice) {
  WorkerSupervisorOptions options = Options(Script("echo \"$@\" > \"$4/args\"\nexec sleep 30"), 3);
  options.gpus = *ParseGpuList("0,2");
  WorkerSupervisor supervisor(options);
  ASSERT_TRUE(supervisor.Start().ok());
  const std::string expect[] = {" --device cuda:0\n", " --device cuda:2\n", "/worker-cache/2\n"};
  for (int i = 0; i < 3; ++i) {
    const std::string args_file = dir_ + "/worker-cache/" + std::to_string(i) + "/args";
    ASSERT_TRUE(Eventually([&] { return !ReadFile(args_file).empty(); }));
    const std::string args = ReadFile(args_file);
    EXPECT_EQ(args.substr(args.size() - expect[i].size()), expect[i]) << args;
  }
  supervisor.Stop();
}

TEST(ParseGpuListTest, AcceptsIndicesAndRejectsTheRest) {
  EXPECT_TRUE(ParseGpuList("")->empty());
  EXPECT_EQ(*ParseGpuList("1,0,3"), (std::vector<int>{1, 0, 3}));
  for (const char* bad : {"a", "0,,1", "-1", "0,0", "1.5"}) {
    auto r = ParseGpuList(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("--gpus"), std::string::npos) << r.status();
  }
}

TEST_F(WorkerSupervisorTest, RestartsAWorkerThatExits) {
  WorkerSupervisor supervisor(Options(Script("exec sleep 30"), 1));
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(Eventually([&] { return AllRunning(supervisor.pids()); }));
  const pid_t first = supervisor.pids()[0];
  ASSERT_EQ(kill(first, SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] {
    const pid_t now = supervisor.pids()[0];
    return now > 0 && now != first;
  }));
  EXPECT_EQ(supervisor.spawn_count(), 2);
  supervisor.Stop();
}

TEST_F(WorkerSupervisorTest, StopKillsWorkersThatIgnoreSigterm) {
  // Each worker says when it has started ignoring SIGTERM.
  WorkerSupervisor supervisor(
      Options(Script("trap '' TERM\ntouch \"$4/ready\"\nexec sleep 30"), 2));
  ASSERT_TRUE(supervisor.Start().ok());
  for (int i = 0; i < 2; ++i) {
    const std::string ready = dir_ + "/worker-cache/" + std::to_string(i) + "/ready";
    ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(ready); }));
  }
  ASSERT_TRUE(AllRunning(supervisor.pids()));
  const std::vector<pid_t> pids = supervisor.pids();
  const auto start = std::chrono::steady_clock::now();
  supervisor.Stop();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));  // waited the grace period
  EXPECT_LT(elapsed, std::chrono::seconds(3));
  for (pid_t pid : pids) {
    EXPECT_NE(kill(pid, 0), 0) << "pid " << pid << " is still alive (or not reaped)";
  }
}

// Found by an adversarial probe: after kill -9 of compressd its local worker
// kept running (it ignored SIGTERM for over a minute) beside the restarted
// server's new worker. Workers now get SIGKILL when their supervisor dies.
TEST_F(WorkerSupervisorTest, WorkersDieWithAKilledSupervisor) {
  const std::string pid_file = dir_ + "/worker-cache/0/pid";
  const std::string script = Script("trap '' TERM\necho $$ > \"$4/pid.tmp\"\n"
                                    "mv \"$4/pid.tmp\" \"$4/pid\"\nexec sleep 30");
  const pid_t compressd = fork();
  ASSERT_GE(compressd, 0);
  if (compressd == 0) {  // stands in for compressd
    WorkerSupervisor supervisor(Options(script, 1));
    if (!supervisor.Start().ok()) _exit(1);
    pause();
    _exit(0);
  }
  ASSERT_TRUE(Eventually([&] { return !ReadFile(pid_file).empty(); }));
  const pid_t worker = std::stoi(ReadFile(pid_file));
  ASSERT_EQ(kill(compressd, SIGKILL), 0);
  ASSERT_EQ(waitpid(compressd, nullptr, 0), compressd);
  // Gone, or a zombie waiting for init to reap it.
  EXPECT_TRUE(Eventually([&] {
    const std::string stat = ReadFile("/proc/" + std::to_string(worker) + "/stat");
    const size_t paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
  })) << "worker " << worker << " outlived its supervisor";
  kill(worker, SIGKILL);  // in case it did not die
}

TEST_F(WorkerSupervisorTest, StopIsQuickForWorkersThatExitOnSigterm) {
  WorkerSupervisor supervisor(Options(Script("exec sleep 30"), 1));
  ASSERT_TRUE(supervisor.Start().ok());
  ASSERT_TRUE(Eventually([&] { return AllRunning(supervisor.pids()); }));
  const auto start = std::chrono::steady_clock::now();
  supervisor.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
}

TEST_F(WorkerSupervisorTest, MissingBinaryIsRejected) {
  WorkerSupervisor supervisor(Options(dir_ + "/no-such-worker", 1));
  absl::Status status = supervisor.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("no-such-worker"), std::string::npos);
}

}  // namespace
}  // namespace compressd
