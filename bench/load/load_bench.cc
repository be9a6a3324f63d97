// gRPC load on a running compressd: `--watchers` WatchJob streams held open
// on queued jobs while `--clients` threads submit `--submits` jobs in all
// (each SubmitJob a unique request_id, waiting for its answer before the
// next; with --rate, submit i is due at start + i / rate, so latency is
// measured at that offered load), against a model this tool uploads first. Prints submits per
// second, p50 / p99 / max latency of SubmitJob, and how many watch streams were still open at the
// end. The server needs no worker: jobs stay QUEUED.
//   load_bench --server 127.0.0.1:50051 [--submits 2000] [--clients 64] [--watchers 1000]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "compressd/v1/compressd.grpc.pb.h"
#include "tests/testing/safetensors_bytes.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "compressd's gRPC address");
ABSL_FLAG(int, submits, 2000, "SubmitJob calls in all");
ABSL_FLAG(int, clients, 64, "concurrent submitting clients");
ABSL_FLAG(int, watchers, 1000, "WatchJob streams held open meanwhile");
ABSL_FLAG(double, rate, 0,
          "submits per second offered in all (open loop, spread over the clients); 0: each "
          "client submits again as soon as it has its answer (closed loop)");

namespace compressd::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Stub = v1::CompressionService::Stub;

std::string UploadModel(Stub& stub) {
  const std::string config = R"({"model_type": "llama"})";
  const std::string weights = testing::SafetensorsBytes(256);
  grpc::ClientContext ctx;
  v1::Model model;
  auto writer = stub.UploadModel(&ctx, &model);
  v1::UploadModelRequest header;
  header.mutable_header()->set_name("load-bench");
  header.mutable_header()->set_format(v1::HF_SAFETENSORS);
  for (const auto& [path, content] :
       {std::pair{"config.json", config}, std::pair{"model.safetensors", weights}}) {
    v1::FileEntry* f = header.mutable_header()->add_files();
    f->set_path(path);
    f->set_size(content.size());
    f->set_sha256(Sha256Hex(content));
  }
  writer->Write(header);
  uint32_t index = 0;
  for (const std::string* content : {&config, &weights}) {
    v1::UploadModelRequest chunk;
    chunk.mutable_chunk()->set_file_index(index++);
    chunk.mutable_chunk()->set_data(*content);
    writer->Write(chunk);
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "upload: %s\n", status.error_message().c_str());
    std::exit(1);
  }
  return model.id();
}

v1::SubmitJobRequest SubmitRequest(const std::string& model, const std::string& request_id) {
  v1::SubmitJobRequest req;
  req.set_model_id(model);
  req.set_request_id(request_id);
  req.mutable_recipe()->add_stages()->mutable_magnitude()->set_sparsity(0.5);
  return req;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// A channel to --server with the API key from $COMPRESSD_KEY / $COMPRESSD_KEY_FILE.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenServerChannel() {
  ChannelSecurity security;
  ASSIGN_OR_RETURN(security.api_key, LoadApiKey(""));
  return OpenChannel(absl::GetFlag(FLAGS_server), security, grpc::ChannelArguments());
}

int Run() {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> opened = OpenServerChannel();
  if (!opened.ok()) {
    std::cerr << opened.status() << "\n";
    return 2;
  }
  std::shared_ptr<grpc::Channel> channel = *opened;
  auto stub = v1::CompressionService::NewStub(channel);
  const std::string model = UploadModel(*stub);
  // The watched jobs, and their streams (each on its own thread: blocking reads).
  const int n_watch = absl::GetFlag(FLAGS_watchers);
  std::vector<std::unique_ptr<grpc::ClientContext>> watch_ctx(n_watch);
  std::vector<std::thread> watch_threads;
  std::atomic<int> open{0};
  for (int i = 0; i < n_watch; ++i) {
    grpc::ClientContext ctx;
    v1::Job job;
    if (!stub->SubmitJob(&ctx, SubmitRequest(model, absl::StrCat("watched-", i)), &job).ok())
      return 1;
    watch_ctx[i] = std::make_unique<grpc::ClientContext>();
    watch_threads.emplace_back([&, i, id = job.id()] {
      v1::WatchJobRequest req;
      req.set_job_id(id);
      auto reader = stub->WatchJob(watch_ctx[i].get(), req);
      v1::JobEvent event;
      bool first = true;
      while (reader->Read(&event)) {
        if (first) ++open;
        first = false;
      }
      if (!first) --open;
      reader->Finish();
    });
  }
  const int total = absl::GetFlag(FLAGS_submits), clients = absl::GetFlag(FLAGS_clients);
  std::vector<std::vector<double>> latency(clients);
  std::atomic<int> next{0}, failed{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> submitters;
  for (int c = 0; c < clients; ++c) {
    submitters.emplace_back([&, c] {
      const double rate = absl::GetFlag(FLAGS_rate);
      for (int i = next++; i < total; i = next++) {
        if (rate > 0)
          std::this_thread::sleep_until(start + std::chrono::duration<double>(i / rate));
        grpc::ClientContext ctx;
        v1::Job job;
        const Clock::time_point t = Clock::now();
        const grpc::Status st =
            stub->SubmitJob(&ctx, SubmitRequest(model, absl::StrCat("load-", i)), &job);
        latency[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        if (!st.ok()) ++failed;
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  const int still_open = open.load();
  for (auto& ctx : watch_ctx) ctx->TryCancel();
  for (std::thread& t : watch_threads) t.join();
  std::printf("submits: %d (%d failed) by %d clients in %.2f s: %.1f/s (offered: %s)\n", total,
              failed.load(), clients, seconds, total / seconds,
              absl::GetFlag(FLAGS_rate) > 0 ? absl::StrCat(absl::GetFlag(FLAGS_rate), "/s").c_str()
                                            : "as fast as answered");
  std::printf("submit latency ms: p50 %.1f  p99 %.1f  max %.1f\n", Percentile(all, 0.5),
              Percentile(all, 0.99), Percentile(all, 1.0));
  std::printf("watch streams open throughout: %d of %d\n", still_open, n_watch);
  std::printf(
      "RESULT {\"submits_per_second\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, "
      "\"watchers\": %d}\n",
      total / seconds, Percentile(all, 0.5), Percentile(all, 0.99), still_open);
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace compressd::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return compressd::bench::Run();
}
