// Perplexity with the shared protocol (ppl-persuasion by default) on a GGUF
// model, compared with the transformers number of the golden fixture
// (tests/golden/nn_real_model_fixtures.py), with the peak RSS of the process
// against its budget: model weights + one batch's block activations + one
// logits chunk.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/forward/bench_common.h"
#include "nlohmann/json.hpp"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/nn/blas_setup.h"
#include "workers/engine/nn/cpu_backend.h"

ABSL_FLAG(std::string, model, "", "GGUF model");
ABSL_FLAG(std::string, tokens, "tests/golden/fixtures/nn_ppl_persuasion_tokens.bin",
          "int32 tokens of the evaluation text");
ABSL_FLAG(std::string, fixture, "tests/golden/fixtures/nn_real_smollm2.json",
          "transformers' numbers to compare with ('' to skip)");
ABSL_FLAG(int, threads, 2, "threads");
ABSL_FLAG(int, window, 512, "tokens per window");
ABSL_FLAG(int, windows, 64, "windows (0: all)");
ABSL_FLAG(int, batch_windows, 8, "windows per forward");
ABSL_FLAG(int, vocab_chunk, 4096, "LM head rows per chunk");

namespace compressd::engine::bench {
namespace {

double ModelMiB(const LlamaModel& m) {
  double floats = static_cast<double>(m.embed_tokens.numel() + m.final_norm.numel());
  if (m.lm_head.data != m.embed_tokens.data) floats += static_cast<double>(m.lm_head.numel());
  for (const BlockWeights& b : m.blocks) {
    for (const Tensor* t : {&b.attn_norm, &b.q_proj, &b.k_proj, &b.v_proj, &b.o_proj, &b.q_bias,
                            &b.k_bias, &b.v_bias, &b.mlp_norm, &b.gate_proj, &b.up_proj,
                            &b.down_proj}) {
      if (!t->empty()) floats += static_cast<double>(t->numel());
    }
  }
  return floats * 4 / (1 << 20);
}

int Run() {
  const double rss_start = RssMiB();
  auto model = LoadGgufModel(absl::GetFlag(FLAGS_model));
  if (!model.ok()) {
    std::fprintf(stderr, "loading model: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto tokens = ReadTokens(absl::GetFlag(FLAGS_tokens));
  if (!tokens.ok()) {
    std::fprintf(stderr, "%s\n", tokens.status().ToString().c_str());
    return 1;
  }
  const double rss_loaded = RssMiB();
  CpuBackend backend(CpuBackendOptions{absl::GetFlag(FLAGS_threads), 128});
  auto fwd = LlamaForward::Create(&*model, &backend, ForwardOptions{absl::GetFlag(FLAGS_vocab_chunk)});
  if (!fwd.ok()) {
    std::fprintf(stderr, "%s\n", fwd.status().ToString().c_str());
    return 1;
  }
  const WindowOptions opts{absl::GetFlag(FLAGS_window), absl::GetFlag(FLAGS_windows),
                           absl::GetFlag(FLAGS_batch_windows)};
  const double start = Now();
  auto result = Perplexity(*fwd, *tokens, opts);
  const double seconds = Now() - start;
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
    return 1;
  }
  std::printf("perplexity: %.6f (mean nll %.6f over %lld tokens, %lld windows, %.1f s)\n",
              result->perplexity, result->mean_nll, static_cast<long long>(result->n_predicted),
              static_cast<long long>(result->n_windows), seconds);

  const std::string fixture = absl::GetFlag(FLAGS_fixture);
  if (!fixture.empty()) {
    std::ifstream in(fixture);
    std::stringstream ss;
    ss << in.rdbuf();
    const auto meta = nlohmann::json::parse(ss.str(), nullptr, false);
    if (!meta.is_discarded() && meta.contains("ppl_persuasion")) {
      const auto& ref = meta["ppl_persuasion"];
      if (ref["window"] == opts.window && ref["n_windows"] == result->n_windows) {
        const double want = ref["perplexity"];
        std::printf("transformers: %.6f  relative difference: %.2e\n", want,
                    std::fabs(result->perplexity - want) / want);
      } else {
        std::printf("transformers: fixture has other windows; not compared\n");
      }
    }
  }
  const LlamaConfig& c = model->config;
  const int64_t t = opts.batch_windows * opts.window;
  BlockWorkspace ws;
  ws.Reserve(c, t, false);
  const double act_mib = (static_cast<double>(ws.bytes()) + 2.0 * t * c.hidden * 4) / (1 << 20);
  const double chunk_mib = static_cast<double>(t) * absl::GetFlag(FLAGS_vocab_chunk) * 4 / (1 << 20);
  const double model_mib = ModelMiB(*model);
  std::printf("rss_mib: start %.0f, after load %.0f, peak %.0f\n", rss_start, rss_loaded,
              PeakRssMiB());
  std::printf("budget_mib: %.0f = model %.0f + block activations %.0f + logits chunk %.0f "
              "(+ process baseline %.0f)\n",
              model_mib + act_mib + chunk_mib, model_mib, act_mib, chunk_mib, rss_start);
  return 0;
}

}  // namespace
}  // namespace compressd::engine::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string warning = compressd::engine::BlasCoreWarning();
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  return compressd::engine::bench::Run();
}
