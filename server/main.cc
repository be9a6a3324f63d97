// compressd: the compression server process. Opens the store, starts the
// scheduler, the gRPC and HTTP servers and optionally local workers, prints
//   compressd listening grpc=HOST:PORT http=HOST:PORT
// once both ports are bound, and shuts down cleanly on SIGINT/SIGTERM.
#include <prometheus/registry.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/auth/bootstrap.h"
#include "server/core/event_bus.h"
#include "server/http/http_server.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"
#include "server/models/model_registry.h"
#include "server/rpc/grpc_server.h"
#include "server/scheduler/scheduler.h"
#include "server/store/blob_gc.h"
#include "server/store/blob_scrub.h"
#include "server/store/blob_store.h"
#include "server/store/s3/s3_blobs.h"
#include "server/store/store.h"
#include "server/supervisor/worker_supervisor.h"

ABSL_FLAG(std::string, data_dir, "./data", "Directory for the database and blobs (created).");
ABSL_FLAG(int, grpc_port, 50051, "gRPC port; 0 picks a free one.");
ABSL_FLAG(int, http_port, 8080, "HTTP port (metrics, probes, dashboard); 0 picks a free one.");
ABSL_FLAG(int, probe_port, -1,
          "Port serving only /healthz and /readyz on their own small pool, so slow clients of "
          "the HTTP port cannot starve the probes (Kubernetes); -1 none, 0 a free one.");
ABSL_FLAG(std::string, listen_host, "127.0.0.1", "Address both servers listen on.");
ABSL_FLAG(int, local_workers, 0, "Number of compress-worker processes to run and supervise.");
ABSL_FLAG(std::string, gpus, "",
          "Comma-separated CUDA device indices: one local worker per GPU (--device cuda:N), "
          "besides --local-workers CPU workers beyond them.");
ABSL_FLAG(std::string, worker_binary, "",
          "compress-worker executable; default: the one next to compressd.");
ABSL_FLAG(int64_t, upload_idle_timeout_s, 60,
          "An upload stream that sends nothing for this long is cancelled (frees its temporary "
          "file).");
ABSL_FLAG(int64_t, lease_ttl_ms, 15000, "Task lease lifetime without a heartbeat.");
ABSL_FLAG(int64_t, heartbeat_interval_ms, 2000, "Heartbeat period asked of workers.");
ABSL_FLAG(int64_t, blob_gc_interval_s, 3600,
          "Seconds between blob garbage collection passes (deleting blobs no model, dataset, "
          "artifact or checkpoint refers to); 0 disables it.");
ABSL_FLAG(int64_t, blob_gc_grace_s, 86400,
          "Unreferenced blobs stored less than this many seconds ago are kept (an upload stores "
          "its blobs before the row that refers to them, so this must exceed the longest "
          "upload); at least 3600.");
ABSL_FLAG(int64_t, blob_scrub_interval_s, 86400,
          "Seconds between blob scrub passes (every blob re-hashed against its sha256, corrupt "
          "ones quarantined, missing ones reported); 0 disables it. `compressd fsck` runs one "
          "pass on demand.");
ABSL_FLAG(int64_t, blob_scrub_bytes_per_s, 64 << 20,
          "Read rate of a scrub pass, so it does not starve uploads and downloads; 0 unlimited.");
ABSL_FLAG(std::vector<std::string>, http_allowed_hosts, {},
          "Host header names the HTTP port answers (comma-separated, '*' any); default: "
          "localhost, 127.0.0.1 and [::1] when --listen-host is loopback, else any.");
ABSL_FLAG(std::string, auth, "keys",
          "keys: every call needs an API key (DATA/admin.key is created on first start); none: "
          "local development only, refused unless --listen-host is loopback.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC and HTTP over TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert.");
ABSL_FLAG(std::string, worker_ca, "",
          "PEM CA bundle: workers must present a client certificate it verifies (mTLS).");
ABSL_FLAG(std::string, local_worker_ca_cert, "",
          "With TLS: the CA bundle local workers verify the server's certificate with.");
ABSL_FLAG(std::string, local_worker_cert, "", "With --worker-ca: local workers' client cert.");
ABSL_FLAG(std::string, local_worker_key, "", "With --worker-ca: local workers' client key.");
ABSL_FLAG(double, max_events_per_task_per_s, 1000,
          "Events a task may report a second on average (bursts of 20x that); 0 unlimited.");
ABSL_FLAG(int, max_watch_streams_per_key, 256,
          "WatchJob streams one API key may hold open at once; 0 unlimited.");
ABSL_FLAG(std::string, blobs, "",
          "Where blobs are kept: empty for DATA/blobs, or s3://BUCKET[/PREFIX] for S3-compatible "
          "object storage shared by replicas (DATA/blobs is then a cache); credentials from "
          "$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY.");
ABSL_FLAG(std::string, s3_endpoint, "",
          "With --blobs s3://: the endpoint URL, e.g. http://seaweedfs:8333 (default "
          "https://s3.REGION.amazonaws.com).");
ABSL_FLAG(std::string, s3_region, "us-east-1", "With --blobs s3://: the region signed for.");
ABSL_FLAG(std::string, s3_ca_file, "", "With --blobs s3://: a CA bundle for an https endpoint.");
ABSL_FLAG(std::string, store, "",
          "The job store: empty for SQLite at DATA_DIR/compressd.db, or a PostgreSQL URL "
          "(postgresql://USER@HOST:PORT/DB; the password from PGPASSWORD or ~/.pgpass) shared "
          "by several compressd replicas. Also read from COMPRESSD_STORE.");
ABSL_FLAG(std::string, server_secret_file, "",
          "The secret API keys are hashed with (64 hex characters; created if missing). Default "
          "DATA_DIR/server.secret; $COMPRESSD_SERVER_SECRET overrides both. Replicas sharing a "
          "--store must share it.");
ABSL_FLAG(int64_t, shutdown_grace_ms, 5000,
          "On SIGINT/SIGTERM, how long in-flight RPCs and workers get to finish.");

namespace compressd {
namespace {

// absl flags are spelled with underscores; accept --data-dir as well.
// Returns the arguments with dashes in flag names (not values) replaced.
std::vector<std::string> NormalizeFlagNames(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& arg = args[i];
    if (arg == "--") {
      break;
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      continue;
    }
    const size_t end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + 2, arg.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
  }
  return args;
}

absl::Status ValidateFlags() {
  const auto check_port = [](const char* name, int port) {
    return port >= 0 && port <= 65535 ? absl::OkStatus()
                                      : absl::InvalidArgumentError(absl::StrCat(
                                            name, ": must be in [0, 65535], got ", port));
  };
  RETURN_IF_ERROR(check_port("--grpc-port", absl::GetFlag(FLAGS_grpc_port)));
  RETURN_IF_ERROR(check_port("--http-port", absl::GetFlag(FLAGS_http_port)));
  if (absl::GetFlag(FLAGS_probe_port) != -1) {
    RETURN_IF_ERROR(check_port("--probe-port", absl::GetFlag(FLAGS_probe_port)));
  }
  if (absl::GetFlag(FLAGS_upload_idle_timeout_s) < 1) {
    return absl::InvalidArgumentError("--upload-idle-timeout-s: must be >= 1");
  }
  if (absl::GetFlag(FLAGS_local_workers) < 0) {
    return absl::InvalidArgumentError("--local-workers: must be >= 0");
  }
  if (absl::GetFlag(FLAGS_lease_ttl_ms) <= 0 || absl::GetFlag(FLAGS_heartbeat_interval_ms) <= 0) {
    return absl::InvalidArgumentError("--lease-ttl-ms and --heartbeat-interval-ms: must be > 0");
  }
  constexpr int64_t kMaxSeconds = int64_t{1} << 40;  // no overflow in ms
  // A blob is committed before the row that refers to it (an upload's files
  // before the model, a checkpoint before its row): the grace period must
  // cover that gap.
  constexpr int64_t kMinGraceSeconds = 3600;
  for (const auto& [name, value, min] :
       {std::tuple<const char*, int64_t, int64_t>{"--blob-gc-interval-s",
                                                  absl::GetFlag(FLAGS_blob_gc_interval_s), 0},
        {"--blob-gc-grace-s", absl::GetFlag(FLAGS_blob_gc_grace_s), kMinGraceSeconds},
        {"--blob-scrub-interval-s", absl::GetFlag(FLAGS_blob_scrub_interval_s), 0},
        {"--blob-scrub-bytes-per-s", absl::GetFlag(FLAGS_blob_scrub_bytes_per_s), 0}}) {
    if (value < min || value > kMaxSeconds) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": must be in [", min, ", ", kMaxSeconds, "], got ", value));
    }
  }
  return absl::OkStatus();
}

std::string DefaultWorkerBinary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return "compress-worker";
  }
  return (self.parent_path() / "compress-worker").string();
}

// Workers dial the server; a wildcard listen address is reached via loopback.
std::string WorkerDialHost(const std::string& listen_host) {
  if (listen_host.empty() || listen_host == "0.0.0.0") {
    return "127.0.0.1";
  }
  if (listen_host == "::" || listen_host == "[::]") {
    return "::1";
  }
  return listen_host;
}

// The local workers (--local-workers, --gpus: one per GPU, CPU ones for the
// rest of the count) dialing `server_address`.
absl::StatusOr<WorkerSupervisorOptions> LocalWorkerOptions(const std::string& server_address,
                                                           const std::string& data_dir,
                                                           const std::string& worker_key_path) {
  WorkerSupervisorOptions options;
  options.binary = absl::GetFlag(FLAGS_worker_binary).empty() ? DefaultWorkerBinary()
                                                              : absl::GetFlag(FLAGS_worker_binary);
  options.server_address = server_address;
  options.cache_root = data_dir + "/worker-cache";
  ASSIGN_OR_RETURN(options.gpus, ParseGpuList(absl::GetFlag(FLAGS_gpus)));
  options.count = std::max<int>(absl::GetFlag(FLAGS_local_workers), options.gpus.size());
  options.grace_ms = absl::GetFlag(FLAGS_shutdown_grace_ms);
  options.extra_flags = {{"key-file", worker_key_path},
                         {"ca-cert", absl::GetFlag(FLAGS_local_worker_ca_cert)},
                         {"cert", absl::GetFlag(FLAGS_local_worker_cert)},
                         {"key", absl::GetFlag(FLAGS_local_worker_key)}};
  if (options.count > 0 && !absl::GetFlag(FLAGS_tls_cert).empty() &&
      absl::GetFlag(FLAGS_local_worker_ca_cert).empty()) {
    return absl::InvalidArgumentError(
        "--local-workers with --tls-cert: give --local-worker-ca-cert (the CA that signed "
        "--tls-cert) so the workers can verify the server");
  }
  return options;
}

absl::StatusOr<AuthMode> AuthModeFromFlag() {
  const std::string mode = absl::GetFlag(FLAGS_auth);
  if (mode == "keys") return AuthMode::kKeys;
  if (mode == "none") return AuthMode::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("--auth: expected keys or none, got \"", mode, "\""));
}

absl::Status WaitForShutdownSignal(const sigset_t& signals) {
  int signal_number = 0;
  if (sigwait(&signals, &signal_number) != 0) {
    return absl::InternalError("sigwait failed");
  }
  std::fprintf(stderr, "compressd: received signal %d, shutting down\n", signal_number);
  return absl::OkStatus();
}

BlobCollectorOptions GcOptionsFromFlags() {
  BlobCollectorOptions options;
  options.interval_ms = absl::GetFlag(FLAGS_blob_gc_interval_s) * 1000;
  options.grace_ms = absl::GetFlag(FLAGS_blob_gc_grace_s) * 1000;
  return options;
}

BlobScrubOptions ScrubOptionsFromFlags() {
  BlobScrubOptions options;
  options.interval_ms = absl::GetFlag(FLAGS_blob_scrub_interval_s) * 1000;
  options.bytes_per_second = absl::GetFlag(FLAGS_blob_scrub_bytes_per_s);
  return options;
}

GrpcServerOptions GrpcOptionsFromFlags(const std::string& host) {
  GrpcServerOptions options;
  options.host = host;
  options.port = absl::GetFlag(FLAGS_grpc_port);
  options.upload_idle_timeout_ms = absl::GetFlag(FLAGS_upload_idle_timeout_s) * 1000;
  options.tls.cert_path = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_path = absl::GetFlag(FLAGS_tls_key);
  options.tls.worker_ca_path = absl::GetFlag(FLAGS_worker_ca);
  options.max_watch_streams_per_key = absl::GetFlag(FLAGS_max_watch_streams_per_key);
  return options;
}

// The blob store --blobs asks for: DATA/blobs alone, or an S3 bucket with
// DATA/blobs as its cache.
absl::StatusOr<std::unique_ptr<BlobStore>> OpenBlobs(const std::string& data_dir) {
  const std::string url = absl::GetFlag(FLAGS_blobs);
  if (url.empty()) return BlobStore::Open(data_dir + "/blobs");
  ASSIGN_OR_RETURN(auto bucket_prefix, s3::ParseS3Url(url));
  s3::Config config;
  config.bucket = bucket_prefix.first;
  config.credentials.region = absl::GetFlag(FLAGS_s3_region);
  config.endpoint = absl::GetFlag(FLAGS_s3_endpoint);
  if (config.endpoint.empty()) {
    config.endpoint = absl::StrCat("https://s3.", config.credentials.region, ".amazonaws.com");
  }
  config.ca_file = absl::GetFlag(FLAGS_s3_ca_file);
  const char* key = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (key == nullptr || secret == nullptr || !*key || !*secret) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--blobs ", url, ": set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"));
  }
  config.credentials.access_key = key;
  config.credentials.secret_key = secret;
  ASSIGN_OR_RETURN(std::unique_ptr<s3::S3Blobs> remote,
                   s3::S3Blobs::Open(std::move(config), bucket_prefix.second));
  return BlobStore::Open(data_dir + "/blobs", std::move(remote));
}

SchedulerOptions SchedulerOptionsFromFlags() {
  SchedulerOptions options;
  options.lease_ttl_ms = absl::GetFlag(FLAGS_lease_ttl_ms);
  options.heartbeat_interval_ms = absl::GetFlag(FLAGS_heartbeat_interval_ms);
  options.max_events_per_s = absl::GetFlag(FLAGS_max_events_per_task_per_s);
  options.max_event_burst = 20 * options.max_events_per_s;
  return options;
}

// Other replicas' commits (PostgreSQL NOTIFY) wake this one's streams and
// long-polls; a no-op with SQLite.
absl::Status ListenToOtherReplicas(Store& store, EventBus& bus, Scheduler& scheduler) {
  return store.ListenForChanges(
      {[&bus](const std::string& job, int64_t seq) { bus.Publish(job, seq); },
       [&scheduler] { scheduler.NotifyWorkAvailable(); },
       [&bus, &scheduler] {
         bus.PublishAll();
         scheduler.NotifyWorkAvailable();
       }});
}

// --store, else $COMPRESSD_STORE, else the SQLite file in the data directory.
std::string StoreTarget(const std::string& data_dir) {
  std::string target = absl::GetFlag(FLAGS_store);
  if (const char* env = std::getenv("COMPRESSD_STORE"); target.empty() && env != nullptr) {
    target = env;
  }
  return target.empty() ? data_dir + "/compressd.db" : target;
}

absl::Status Run(const sigset_t& signals) {
  RETURN_IF_ERROR(ValidateFlags());
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string host = absl::GetFlag(FLAGS_listen_host);
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data-dir: cannot create ", data_dir, ": ", ec.message()));
  }

  ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(StoreTarget(data_dir)));
  ASSIGN_OR_RETURN(std::unique_ptr<BlobStore> blobs, OpenBlobs(data_dir));
  ASSIGN_OR_RETURN(AuthMode auth_mode, AuthModeFromFlag());
  ASSIGN_OR_RETURN(AuthSetup auth, SetUpAuth(*store, data_dir, auth_mode, host,
                                                        absl::GetFlag(FLAGS_server_secret_file)));
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  EventBus bus;
  Scheduler scheduler(*store, bus, metrics, SchedulerOptionsFromFlags());
  JobService jobs(*store, bus, scheduler, metrics);
  ModelRegistry models(*store, *blobs, metrics);
  scheduler.Start();
  RETURN_IF_ERROR(ListenToOtherReplicas(*store, bus, scheduler));
  absl::Cleanup stop_listening = [&store] { store->StopListening(); };  // before bus, scheduler go
  BlobCollector collector(*store, *blobs, metrics, GcOptionsFromFlags());
  collector.Start();
  BlobScrubber scrubber(*store, *blobs, metrics, ScrubOptionsFromFlags());
  scrubber.Start();

  const GrpcServerOptions grpc_options = GrpcOptionsFromFlags(host);
  const ServerCore core{*store, *blobs, bus, models, jobs, scheduler, metrics, *auth.auth};
  ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> grpc, GrpcServer::Start(grpc_options, core));
  HttpServerOptions http_options;
  http_options.host = host;
  http_options.port = absl::GetFlag(FLAGS_http_port);
  http_options.probe_port = absl::GetFlag(FLAGS_probe_port);
  http_options.allowed_hosts = absl::GetFlag(FLAGS_http_allowed_hosts);
  http_options.auth = auth_mode == AuthMode::kKeys ? auth.auth.get() : nullptr;
  http_options.tls_cert = grpc_options.tls.cert_path;
  http_options.tls_key = grpc_options.tls.key_path;
  http_options.secure_cookie = !http_options.tls_cert.empty();
  HttpServer http(http_options, registry, core, [&]() -> absl::Status {
    if (!grpc->serving()) {
      return absl::UnavailableError("grpc server is not serving");
    }
    return store->CountJobsByState().status();  // the store answers queries
  });
  RETURN_IF_ERROR(http.Start());

  ASSIGN_OR_RETURN(WorkerSupervisorOptions worker_options,
                   LocalWorkerOptions(JoinHostPort(WorkerDialHost(host), grpc->port()), data_dir,
                                      auth.worker_key_path));
  WorkerSupervisor supervisor(worker_options);
  if (worker_options.count > 0) {
    RETURN_IF_ERROR(supervisor.Start());
  }
  std::printf(
      "compressd listening grpc=%s http=%s%s\n", grpc->address().c_str(),
      JoinHostPort(host, http.port()).c_str(),
      http.probe_port() > 0 ? (" probes=" + JoinHostPort(host, http.probe_port())).c_str() : "");
  std::fflush(stdout);

  absl::Status waited = WaitForShutdownSignal(signals);
  // Local workers go first, while the server can still take their last calls;
  // stopping the scheduler answers pending LeaseTask long-polls, so draining
  // the gRPC server does not wait on them; HTTP goes last so /readyz reports
  // the drain.
  supervisor.Stop();
  collector.Stop();
  scrubber.Stop();
  scheduler.Stop();
  std::move(stop_listening).Invoke();
  bus.Close();  // idle WatchJob streams end now (UNAVAILABLE): clients move to another replica
  grpc->Shutdown(std::chrono::milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms)));
  http.Stop();
  return waited;
}

// `compressd fsck`: one scrub pass over --data-dir (blob_scrub.h); exit 0
// when every blob matches its digest and every referenced blob is stored.
int RunFsck() {
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const std::string target = StoreTarget(data_dir);
  if (!sql::IsPostgresTarget(target) && !std::filesystem::exists(target)) {
    std::fprintf(stderr, "compressd fsck: --data-dir %s: no compressd.db there\n",
                 data_dir.c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_blobs).empty() && !std::filesystem::exists(data_dir + "/blobs")) {
    std::fprintf(stderr, "compressd fsck: --data-dir %s: no blobs there\n", data_dir.c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(target);
  absl::StatusOr<std::unique_ptr<BlobStore>> blobs =
      store.ok() ? OpenBlobs(data_dir)
                 : absl::StatusOr<std::unique_ptr<BlobStore>>(store.status());
  absl::StatusOr<BlobScrubStats> stats =
      blobs.ok() ? ScrubBlobs(**store, **blobs, absl::GetFlag(FLAGS_blob_scrub_bytes_per_s))
                 : absl::StatusOr<BlobScrubStats>(blobs.status());
  if (!stats.ok()) {
    std::fprintf(stderr, "compressd fsck: %s\n", stats.status().ToString().c_str());
    return 2;
  }
  std::fputs(DescribeScrub(*stats).c_str(), stdout);
  return stats->corrupt.empty() && stats->missing.empty() ? 0 : 1;
}

}  // namespace
}  // namespace compressd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "compressd: LLM compression server.\n"
      "  compressd [--data-dir DIR] [--grpc-port N] [--http-port N] [--listen-host H]\n"
      "            [--local-workers N] [--gpus 0,1,...] [--worker-binary PATH]\n"
      "            [--auth keys|none] [--tls-cert PEM --tls-key PEM [--worker-ca PEM]]\n"
      "  compressd fsck --data-dir DIR [--blob-scrub-bytes-per-s N]\n"
      "      re-hashes every blob (corrupt ones are quarantined) and looks for every\n"
      "      referenced one; exit 0 clean, 1 problems found, 2 could not run");
  std::vector<std::string> args = compressd::NormalizeFlagNames(argc, argv);
  const bool fsck = args.size() >= 2 && args[1] == "fsck";
  if (fsck) args.erase(args.begin() + 1);
  std::vector<char*> arg_ptrs;
  arg_ptrs.reserve(args.size());
  for (std::string& arg : args) {
    arg_ptrs.push_back(arg.data());
  }
  absl::ParseCommandLine(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  if (fsck) return compressd::RunFsck();

  // Block the shutdown signals before any thread starts, so every thread
  // inherits the mask and only sigwait() in Run() receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const absl::Status status = compressd::Run(signals);
  if (!status.ok()) {
    std::fprintf(stderr, "compressd: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
