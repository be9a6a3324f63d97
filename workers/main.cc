// compress-worker: the process that does the numerical work of compressd.
//
//   compress-worker --server HOST:PORT --cache-dir DIR [--threads N] [--name NAME]
//       Registers with the server and serves leased tasks until SIGTERM/SIGINT,
//       which stops the current task at its next cancellation check, hands its
//       lease back to the server (queued again, the attempt not counted) and
//       exits 0.
//   compress-worker run --model DIR|FILE.gguf --recipe FILE --out DIR [--checkpoint-dir DIR]
//       Runs a recipe locally, no server: progress on stderr, summary JSON on stdout.
//       With --checkpoint-dir, a long job keeps its progress there and the same
//       command run again resumes from it.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "workers/cuda/devices.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/worker/local_run.h"
#include "workers/worker/server_client.h"
#include "workers/worker/worker.h"

namespace {

// Written by the signal handler (async-signal-safe), read by the signal thread.
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnStopSignal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_signal_pipe[1], &c, 1);
}

constexpr char kUsage[] =
    "usage: compress-worker --server HOST:PORT --cache-dir DIR [--threads N] [--name NAME]\n"
    "                       [--memory-budget SIZE]   (e.g. 20G; default 90% of RAM: a job\n"
    "                                                estimated to need more is refused)\n"
    "                       [--device cpu|cuda|cuda:N|auto]   (where layer solves run;\n"
    "                                                default cpu, auto: the first GPU if any)\n"
    "                       [--slow-ms-per-layer N]   (fault injection: pause after each layer)\n"
    "                       [--key-file FILE]   (a worker API key; default $COMPRESSD_KEY,\n"
    "                                            $COMPRESSD_KEY_FILE)\n"
    "                       [--ca-cert PEM [--cert PEM --key PEM]]   (TLS; mTLS with a\n"
    "                                            client certificate)\n"
    "       compress-worker run --model DIR|FILE.gguf --recipe FILE --out DIR\n"
    "                           [--checkpoint-dir DIR]   (resume a long job from here)\n"
    "                           [--whole-model 1]   (load the model whole even where the\n"
    "                                                job could stream it block by block)\n"
    "                           [--memory-budget SIZE]   (as above; over it, calibration\n"
    "                                                activations go to scratch files)\n"
    "                           [--device cpu|cuda|cuda:N|auto]   (as above)\n";

// Parses "--flag value" pairs; false on an unknown flag or a missing value.
bool ParseFlags(int argc, char** argv, int first, std::map<std::string, std::string>* flags,
                std::initializer_list<const char*> known) {
  for (int i = first; i < argc; i += 2) {
    const std::string flag = argv[i];
    bool ok = false;
    for (const char* k : known) ok |= flag == k;
    if (!ok || i + 1 >= argc) return false;
    (*flags)[flag] = argv[i + 1];
  }
  return true;
}

// --device (default cpu) resolved against this machine's GPUs, its solver
// created once for the process; false (after saying why) when unusable.
bool SetUpDevice(std::map<std::string, std::string>& f, std::string* name,
                 std::unique_ptr<compressd::engine::SolverBackend>* solver,
                 compressd::engine::GpuInfo* gpu = nullptr) {
  namespace engine = compressd::engine;
  absl::StatusOr<engine::DeviceSpec> spec =
      engine::ParseDeviceSpec(f.count("--device") ? f["--device"] : "cpu");
  std::string why_none;
  std::vector<engine::GpuInfo> gpus;  // a CPU worker never loads the CUDA plugin
  if (spec.ok() && spec->kind != engine::DeviceSpec::Kind::kCpu) {
    gpus = compressd::cuda::ListGpus(&why_none);
  }
  if (spec.ok()) spec = engine::ResolveDevice(*spec, gpus, why_none);
  absl::StatusOr<std::unique_ptr<engine::SolverBackend>> created =
      spec.ok() ? compressd::cuda::CreateSolver(*spec)
                : absl::StatusOr<std::unique_ptr<engine::SolverBackend>>(spec.status());
  if (!created.ok()) {
    std::fprintf(stderr, "compress-worker: --device: %s\n",
                 std::string(created.status().message()).c_str());
    return false;
  }
  *name = spec->ToString();
  *solver = std::move(*created);
  for (const engine::GpuInfo& g : gpus) {
    if (spec->kind == engine::DeviceSpec::Kind::kCuda && g.index == spec->index) {
      if (gpu != nullptr) *gpu = g;
      std::fprintf(stderr, "compress-worker: device %s: %s, compute capability %d.%d, %s\n",
                   name->c_str(), g.name.c_str(), g.cc_major, g.cc_minor,
                   absl::StrFormat("%.1f GiB", g.total_bytes / 1073741824.0).c_str());
    }
  }
  return true;
}

// --memory-budget into *bytes when given; false (after saying why) when bad.
bool ParseBudget(std::map<std::string, std::string>& f, uint64_t* bytes) {
  if (!f.count("--memory-budget")) return true;
  absl::StatusOr<uint64_t> parsed = compressd::engine::ParseByteSize(f["--memory-budget"]);
  if (!parsed.ok()) {
    std::fprintf(stderr, "compress-worker: --memory-budget: %s\n",
                 std::string(parsed.status().message()).c_str());
    return false;
  }
  *bytes = *parsed;
  return true;
}

int RunLocalMode(int argc, char** argv) {
  std::map<std::string, std::string> f;
  if (!ParseFlags(argc, argv, 2, &f,
                  {"--model", "--recipe", "--out", "--checkpoint-dir", "--whole-model",
                   "--memory-budget", "--device"}) ||
      !f.count("--model") || !f.count("--recipe") || !f.count("--out") ||
      (f.count("--checkpoint-dir") && f["--checkpoint-dir"].empty()) ||
      (f.count("--whole-model") && f["--whole-model"] != "1")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  uint64_t budget = 0;
  if (!ParseBudget(f, &budget)) return 2;
  std::string device;
  std::unique_ptr<compressd::engine::SolverBackend> solver;
  if (!SetUpDevice(f, &device, &solver)) return 2;
  const absl::Status st =
      compressd::RunLocal(f["--model"], f["--recipe"], f["--out"], f["--checkpoint-dir"],
                          f.count("--whole-model") > 0, budget, solver.get());
  if (!st.ok()) {
    std::fprintf(stderr, "compress-worker: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

// The channel to --server: TLS with --ca-cert (and a client certificate with
// --cert/--key), the API key of --key-file, $COMPRESSD_KEY or $COMPRESSD_KEY_FILE.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenWorkerChannel(
    std::map<std::string, std::string>& f, const grpc::ChannelArguments& args) {
  compressd::ChannelSecurity security;
  ASSIGN_OR_RETURN(security.api_key, compressd::LoadApiKey(f["--key-file"]));
  security.ca_cert_path = f["--ca-cert"];
  security.cert_path = f["--cert"];
  security.key_path = f["--key"];
  return compressd::OpenChannel(f["--server"], security, args);
}

int RunWorkerMode(int argc, char** argv) {
  std::map<std::string, std::string> f;
  if (!ParseFlags(
          argc, argv, 1, &f,
          {"--server", "--cache-dir", "--threads", "--name", "--memory-budget",
           "--slow-ms-per-layer", "--device", "--key-file", "--ca-cert", "--cert", "--key"}) ||
      !f.count("--server") || !f.count("--cache-dir")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  compressd::WorkerOptions options;
  options.cache_dir = f["--cache-dir"];
  options.name = f["--name"];
  options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (f.count("--threads") &&
      (!absl::SimpleAtoi(f["--threads"], &options.threads) || options.threads < 1)) {
    std::fprintf(stderr, "compress-worker: --threads: must be a positive integer\n");
    return 2;
  }
  if (!ParseBudget(f, &options.memory_bytes)) return 2;
  std::unique_ptr<compressd::engine::SolverBackend> solver;
  compressd::engine::GpuInfo gpu;
  if (!SetUpDevice(f, &options.device, &solver, &gpu)) return 2;
  options.solver = solver.get();
  options.device_name = gpu.name;
  if (gpu.cc_major > 0) options.compute_capability = absl::StrFormat("%d.%d", gpu.cc_major, gpu.cc_minor);
  options.device_memory_bytes = gpu.total_bytes;
  if (f.count("--slow-ms-per-layer") &&
      (!absl::SimpleAtoi(f["--slow-ms-per-layer"], &options.slow_ms_per_layer) ||
       options.slow_ms_per_layer < 0)) {
    std::fprintf(stderr, "compress-worker: --slow-ms-per-layer: must be a non-negative integer\n");
    return 2;
  }
  // SIGTERM/SIGINT run a handler that writes to a pipe; one thread reads it
  // and shuts the worker down. (Not sigwait: OpenBLAS starts its threads when
  // the library loads, before main could block the signals in them, so a
  // process-directed signal may land on any thread.)
  if (::pipe(g_signal_pipe) != 0) {
    std::perror("compress-worker: pipe");
    return 1;
  }
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  // Reconnect within seconds of the server coming back (gRPC's default caps at 120 s).
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenWorkerChannel(f, channel_args);
  if (!channel.ok()) {
    std::fprintf(stderr, "compress-worker: %s\n", channel.status().ToString().c_str());
    return 2;
  }
  compressd::WorkerClient client(*channel);
  compressd::Worker worker(options, client);
  std::thread signal_thread([&worker] {
    char sig = 0;
    ssize_t n = 0;
    do {
      n = ::read(g_signal_pipe[0], &sig, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1) {
      std::fprintf(stderr,
                   "compress-worker: signal %d: stopping (a running task hands its lease back)\n",
                   sig);
      worker.Shutdown();
    }
  });
  signal_thread.detach();  // it may wait forever; the process exit ends it
  const absl::Status st = worker.Run();
  if (!st.ok()) {
    std::fprintf(stderr, "compress-worker: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "run") return RunLocalMode(argc, argv);
  if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return RunWorkerMode(argc, argv);
}
