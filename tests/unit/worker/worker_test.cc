#include "workers/worker/worker.h"

#include <grpcpp/create_channel.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/recipe_spec.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/tiny_llama.h"
#include "tests/unit/worker/fake_worker_service.h"
#include "workers/engine/model/hf_model.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;
using testing::FakeWorkerService;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A recipe as the server leases it: defaults applied and validated on
// SubmitJob (the worker only compiles it).
void Prepare(v1::Task* task) {
  absl::StatusOr<RecipeSpec> spec = PrepareRecipe(task->recipe());
  ASSERT_TRUE(spec.ok()) << spec.status();
  *task->mutable_recipe() = spec->recipe;
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("wk_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (thread_.joinable()) {
      worker_->Shutdown();
      thread_.join();
    }
    if (server_) server_->Shutdown();
    fs::remove_all(root_);
  }

  void StartServer(int port = 0) {
    port_ = port;
    server_ = testing::StartFakeServer(service_, &port_);
    ASSERT_NE(server_, nullptr);
  }

  void StartWorker() {
    client_ = std::make_unique<WorkerClient>(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
    WorkerOptions o;
    o.cache_dir = (root_ / "cache").string();
    o.name = "test-worker";
    o.lease_wait_ms = 200;
    o.initial_backoff_ms = 10;
    o.max_backoff_ms = 100;
    o.events.flush_interval_ms = 20;
    o.slow_ms_per_layer = slow_ms_per_layer_;
    worker_ = std::make_unique<Worker>(o, *client_);
    thread_ = std::thread([this] { run_status_ = worker_->Run(); });
  }

  void StopWorker() {
    worker_->Shutdown();
    thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_;
  }

  // Queues a task for the files in `model_dir`, served as blobs.
  void QueueTask(const fs::path& model_dir, const std::string& recipe_sparsity = "0.5") {
    v1::Task task;
    task.set_task_id("task-1");
    task.set_lease_token("lease-1");
    task.set_job_id("job-1");
    task.set_attempt(1);
    task.mutable_recipe()->add_stages()->mutable_magnitude()->set_sparsity(
        std::stod(recipe_sparsity));
    Prepare(&task);
    for (const fs::directory_entry& e : fs::directory_iterator(model_dir)) {
      const std::string content = ReadFile(e.path());
      v1::FileEntry* f = task.mutable_model()->add_files();
      f->set_path(e.path().filename().string());
      f->set_size(content.size());
      f->set_sha256(Sha256Hex(content));
      service_.blobs[f->sha256()] = content;
    }
    std::lock_guard<std::mutex> lock(service_.mu);
    service_.queue.push_back(task);
    service_.cv.notify_all();
  }

  // Task directories left in the worker's cache.
  int TaskDirs() const {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root_ / "cache" / "tasks", ec))
      n += e.is_directory();
    return n;
  }

  fs::path root_;
  FakeWorkerService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<WorkerClient> client_;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
  absl::Status run_status_;
  int64_t slow_ms_per_layer_ = 0;
};

TEST_F(WorkerTest, RunsALeasedTaskEndToEnd) {
  const fs::path model = root_ / "model";
  ASSERT_TRUE(testing::WriteTinyLlama(model.string()).ok());
  QueueTask(model);
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] { return !service_.completed.empty(); }))
      << (service_.failed.empty() ? "" : service_.failed[0].error);
  StopWorker();

  EXPECT_EQ(worker_->stats().completed, 1);
  EXPECT_TRUE(service_.failed.empty());
  nlohmann::json summary = nlohmann::json::parse(service_.completed[0]);
  EXPECT_EQ(summary["totals"]["targeted_tensors"], 14);
  // The uploaded output is a valid pruned model.
  ASSERT_EQ(service_.artifacts.size(), 2u);
  EXPECT_EQ(service_.artifacts["config.json"], ReadFile(model / "config.json"));
  const fs::path out = root_ / "uploaded";
  fs::create_directories(out);
  for (const auto& [path, content] : service_.artifacts) std::ofstream(out / path) << content;
  absl::StatusOr<std::unique_ptr<engine::HfModel>> pruned = engine::HfModel::Open(out.string());
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  engine::HfModel::TensorRef up = (*pruned)->Find("model.layers.1.mlp.up_proj.weight");
  std::vector<float> w = *up.shard->file->ReadAsFloat(*up.info);
  EXPECT_EQ(std::count(w.begin(), w.end(), 0.0f), static_cast<long>(w.size() / 2));
  // Events arrived (prune progress for every targeted tensor), heartbeats were sent.
  int prune = 0;
  for (const v1::JobEvent& e : service_.events) {
    prune += e.has_progress() && e.progress().stage() == "prune";
  }
  EXPECT_EQ(prune, 14);
  // Blobs stay cached by sha256; the task directory is gone.
  for (const auto& [sha, content] : service_.blobs) {
    EXPECT_EQ(ReadFile(root_ / "cache" / "blobs" / sha), content);
  }
  EXPECT_EQ(TaskDirs(), 0);
}

// An evaluate-only task: the worker fetches the dataset file the recipe names
// next to the model, evaluates, and uploads only the summary. A recipe naming
// a local file is refused without retry.
TEST_F(WorkerTest, EvaluatesOnAFetchedDatasetFile) {
  const fs::path model = root_ / "model";
  ASSERT_TRUE(testing::WriteTinyLlama(model.string()).ok());
  std::ofstream(model / "tokenizer.json") << testing::ByteLevelTokenizerJson();
  QueueTask(model);
  v1::Task& task = service_.queue.back();
  task.mutable_recipe()->clear_stages();
  v1::EvalDataset* set = task.mutable_recipe()->mutable_evaluation()->add_perplexity();
  set->set_name("text");
  set->set_dataset_id("ds-1");
  set->set_file("dir/text.txt");
  set->set_window(16);
  set->set_windows(4);
  const std::string text(64, 'x');
  v1::Dataset* dataset = task.add_datasets();
  dataset->set_id("ds-1");
  v1::FileEntry* file = dataset->add_files();
  file->set_path("dir/text.txt");
  file->set_size(text.size());
  file->set_sha256(Sha256Hex(text));
  service_.blobs[file->sha256()] = text;
  Prepare(&task);
  v1::Task local = task;
  local.set_task_id("task-2");
  local.mutable_recipe()->mutable_evaluation()->mutable_perplexity(0)->set_path("/etc/hostname");
  local.mutable_recipe()->mutable_evaluation()->mutable_perplexity(0)->clear_dataset_id();
  local.mutable_recipe()->mutable_evaluation()->mutable_perplexity(0)->clear_file();
  service_.queue.push_back(local);
  StartServer();
  StartWorker();
  ASSERT_TRUE(
      service_.WaitFor([&] { return service_.completed.size() + service_.failed.size() >= 2; }));
  StopWorker();
  ASSERT_EQ(service_.completed.size(), 1u)
      << (service_.failed.empty() ? "" : service_.failed[0].error);
  nlohmann::json summary = nlohmann::json::parse(service_.completed[0]);
  EXPECT_EQ(summary["evaluation"]["datasets"][0]["source"], "ds-1/dir/text.txt");
  EXPECT_GT(summary["evaluation"]["datasets"][0]["perplexity"]["dense"].get<double>(), 1.0);
  ASSERT_EQ(service_.artifacts.size(), 1u);
  EXPECT_EQ(service_.artifacts.begin()->first, "summary.json");
  ASSERT_EQ(service_.failed.size(), 1u);
  EXPECT_FALSE(service_.failed[0].retryable);
  EXPECT_THAT(service_.failed[0].error, HasSubstr("evaluation.perplexity[0].path"));
}

TEST_F(WorkerTest, BadModelFailsTheTaskWithoutRetry) {
  const fs::path model = root_ / "model";
  fs::create_directories(model);
  std::ofstream(model / "model.gguf", std::ios::binary) << "GGUF\x03\0\0\0";
  QueueTask(model);
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] { return !service_.failed.empty(); }));
  StopWorker();
  EXPECT_FALSE(service_.failed[0].retryable);
  EXPECT_THAT(service_.failed[0].error, HasSubstr("GGUF"));
  EXPECT_TRUE(service_.completed.empty());
  EXPECT_EQ(worker_->stats().failed, 1);
}

// Found by an adversarial probe: the error of a GGUF whose metadata key is not
// UTF-8 could not be sent (gRPC refuses invalid UTF-8), so the task ended in
// lease expiries and "stopped heartbeating" instead of the parser's message.
TEST_F(WorkerTest, NonUtf8ErrorTextStillFailsTheTaskWithItsMessage) {
  const fs::path model = root_ / "model";
  fs::create_directories(model);
  std::string gguf("GGUF", 4);
  auto put = [&gguf](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) gguf.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(3, 4);  // version
  put(0, 8);  // tensors
  put(1, 8);  // metadata entries
  put(4, 8);  // key length
  gguf +=
      "\xFF\xFE"
      "ab";    // a key that is not UTF-8
  put(99, 4);  // an unknown value type
  std::ofstream(model / "model.gguf", std::ios::binary) << gguf;
  QueueTask(model);
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] { return !service_.failed.empty(); }));
  StopWorker();
  EXPECT_FALSE(service_.failed[0].retryable);
  EXPECT_TRUE(IsValidUtf8(service_.failed[0].error));
  EXPECT_THAT(service_.failed[0].error, HasSubstr("key \"\xEF\xBF\xBD\xEF\xBF\xBD"
                                                  "ab\" at offset 24: unknown value type 99"));
  EXPECT_EQ(worker_->stats().failed, 1);
}

// Found by a chaos run: a worker killed mid-task left its attempt's scratch
// files behind for good. A starting worker removes those of dead processes
// (and only those: several workers may share a cache).
TEST_F(WorkerTest, StartingWorkerRemovesTaskDirsOfDeadProcesses) {
  const fs::path tasks = root_ / "cache" / "tasks";
  const pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);  // a pid that no process has now
  fs::create_directories(tasks / ("task-9.a1.p" + std::to_string(dead)) / "out");
  std::ofstream(tasks / ("task-9.a1.p" + std::to_string(dead)) / "out" / "big.bin") << "x";
  const fs::path live = tasks / ("task-8.a1.p" + std::to_string(getpid()));
  fs::create_directories(live);
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] { return service_.lease_calls >= 1; }));
  StopWorker();
  EXPECT_FALSE(fs::exists(tasks / ("task-9.a1.p" + std::to_string(dead))));
  EXPECT_TRUE(fs::exists(live));
}

TEST_F(WorkerTest, CancelledJobStopsWithoutResultAndLeasesAgain) {
  const fs::path model = root_ / "model";
  ASSERT_TRUE(testing::WriteTinyLlama(model.string()).ok());
  QueueTask(model);
  service_.cancel_job = true;
  service_.hold_fetch_until_cancel = true;  // the cancel lands during the download
  StartServer();
  StartWorker();
  ASSERT_TRUE(
      service_.WaitFor([&] { return service_.cancels_sent > 0 && service_.lease_calls >= 2; }));
  StopWorker();
  EXPECT_EQ(worker_->stats().cancelled, 1);
  EXPECT_TRUE(service_.completed.empty());
  EXPECT_TRUE(service_.failed.empty());
  EXPECT_TRUE(service_.artifacts.empty());
  EXPECT_EQ(TaskDirs(), 0);
}

// Shutdown (SIGTERM) mid-task: the run stops at its next cancellation check
// and the lease goes back to the server as a release (not a failure), so
// another worker can take the task at once; nothing is completed.
TEST_F(WorkerTest, ShutdownMidTaskHandsTheLeaseBackPromptly) {
  const fs::path model = root_ / "model";
  ASSERT_TRUE(testing::WriteTinyLlama(model.string()).ok());
  QueueTask(model);
  slow_ms_per_layer_ = 60000;  // a minute per layer: the task would take 14 minutes
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] {
    for (const v1::JobEvent& e : service_.events) {
      if (e.has_progress() && e.progress().stage() == "prune") return true;
    }
    return false;
  }));
  const auto start = std::chrono::steady_clock::now();
  StopWorker();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(service_.failed.size(), 1u);
  EXPECT_TRUE(service_.failed[0].release);
  EXPECT_THAT(service_.failed[0].error, HasSubstr("shutting down"));
  EXPECT_TRUE(service_.completed.empty());
  EXPECT_TRUE(service_.artifacts.empty());
  EXPECT_EQ(worker_->stats().cancelled, 1);
  EXPECT_EQ(TaskDirs(), 0);
}

TEST_F(WorkerTest, ReRegistersWhenTheServerForgetsIt) {
  service_.not_found_leases = 1;
  StartServer();
  StartWorker();
  ASSERT_TRUE(
      service_.WaitFor([&] { return service_.registers >= 2 && service_.lease_calls >= 2; }));
  StopWorker();
}

TEST_F(WorkerTest, KeepsRetryingUntilTheServerComesUp) {
  StartServer();  // only to find a free port
  const int port = port_;
  server_->Shutdown();
  server_.reset();
  StartWorker();  // nothing listens yet: registration fails and is retried
  ASSERT_TRUE(
      worker_->WaitForStats([](const WorkerStats& s) { return s.rpc_failures >= 3; }, 20000));
  EXPECT_EQ(service_.registers, 0);
  StartServer(port);
  ASSERT_TRUE(
      service_.WaitFor([&] { return service_.registers >= 1 && service_.lease_calls >= 1; }));
  StopWorker();
}

TEST_F(WorkerTest, ShutdownInterruptsTheLongPoll) {
  StartServer();
  StartWorker();
  ASSERT_TRUE(service_.WaitFor([&] { return service_.lease_calls >= 1; }));
  const auto start = std::chrono::steady_clock::now();
  StopWorker();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// The real binary: SIGTERM while idle exits 0.
TEST_F(WorkerTest, BinaryExitsZeroOnSigterm) {
  const char* build = std::getenv("COMPRESSD_BUILD_DIR");
  ASSERT_NE(build, nullptr) << "run under ctest";
  const std::string binary = std::string(build) + "/bin/compress-worker";
  ASSERT_TRUE(fs::exists(binary)) << binary;
  StartServer();
  const std::string server = "127.0.0.1:" + std::to_string(port_);
  const std::string cache = (root_ / "cache").string();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(binary.c_str(), binary.c_str(), "--server", server.c_str(), "--cache-dir",
            cache.c_str(), "--name", "sigterm-test", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_TRUE(service_.WaitFor([&] { return service_.lease_calls >= 1; }));
  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace compressd
