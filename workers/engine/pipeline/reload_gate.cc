#include "workers/engine/pipeline/reload_gate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_w8a8.h"
#include "common/status_macros.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/nn/backend_factory.h"
#include "workers/engine/pipeline/hf_block_stream.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kWindows = 2;
constexpr int64_t kMaxWindow = 256;

// The windows the gate runs (see the header).
EvalSet GateSet(const CalibrationSet* calibration, const std::vector<EvalSet>& sets, int vocab) {
  EvalSet set;
  set.name = "reload check";
  set.windows.batch_windows = kWindows;
  if (calibration != nullptr && !calibration->sequences.empty()) {
    const auto& seqs = calibration->sequences;
    const int64_t n = std::min<int64_t>(kWindows, static_cast<int64_t>(seqs.size()));
    int64_t window = kMaxWindow;
    for (int64_t i = 0; i < n; ++i) window = std::min<int64_t>(window, seqs[i].size());
    if (window >= 2) {
      set.source = calibration->source;
      set.windows.window = window;
      set.windows.n_windows = n;
      for (int64_t i = 0; i < n; ++i)
        set.tokens.insert(set.tokens.end(), seqs[i].begin(), seqs[i].begin() + window);
      return set;
    }
  }
  if (!sets.empty()) {
    const EvalSet& first = sets[0];
    set.source = first.source;
    set.windows.window = std::min<int64_t>(first.windows.window, kMaxWindow);
    set.windows.n_windows = std::min<int64_t>(
        kWindows, static_cast<int64_t>(first.tokens.size()) / set.windows.window);
    if (set.windows.n_windows > 0) {
      set.tokens.assign(first.tokens.begin(),
                        first.tokens.begin() + set.windows.n_windows * set.windows.window);
      return set;
    }
  }
  set.source = "fixed pseudo-random tokens";
  set.windows.window = 64;
  set.windows.n_windows = kWindows;
  for (int64_t i = 0; i < 64 * kWindows; ++i) {
    set.tokens.push_back(static_cast<int32_t>((static_cast<uint64_t>(i) * 2654435761u + 7) %
                                              static_cast<uint64_t>(std::max(vocab, 1))));
  }
  return set;
}

absl::StatusOr<PerplexityResult> StreamPerplexity(EvalStream& stream, const LlamaForward& forward,
                                                  const EvalSet& set, const std::string& stage,
                                                  EventSink& events, const CancelToken& cancel) {
  EvalProgress progress{stage, EvalBatches(set)};
  ASSIGN_OR_RETURN(std::vector<PerplexityResult> r,
                   stream.Perplexities(forward, {set}, &progress, events, cancel));
  return r.at(0);
}

}  // namespace

absl::StatusOr<LlamaForward> StreamForward(const ModelStream& source, LlamaModel* holder,
                                           Backend* backend) {
  holder->config = source.config();
  holder->blocks.resize(source.config().n_layers);
  ASSIGN_OR_RETURN(holder->final_norm, source.LoadTensor("model.norm.weight"));
  const std::string head =
      source.config().tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  ForwardOptions options;
  options.blocks_on_demand = true;
  options.lm_head_rows = [src = &source, head](int64_t v0, int64_t n, float* rows) {
    RETURN_IF_ERROR(src->ReadRows(head, v0, n, rows));
    src->Release(head);  // the head's mapped pages do not stay resident
    return absl::OkStatus();
  };
  return LlamaForward::Create(holder, backend, options);
}

ReloadGate PlanReloadGate(const RecipeSpec& spec, const CalibrationSet* calibration,
                          const std::vector<EvalSet>& sets, int vocab, const std::string& out_dir) {
  ReloadGate gate;
  gate.set = GateSet(calibration, sets, vocab);
  gate.path = out_dir;
  switch (spec.format) {
    case OutputFormat::kGguf:
      gate.path = (fs::path(out_dir) / "model.gguf").string();
      gate.gguf = true;
      gate.tolerance = 2e-2;
      // Weights asked to be re-encoded as Q3_K / Q2_K (ggml ids 11, 10) move by a 3- or
      // 2-bit grid's step. Measured on SmolLM2 with every ffn_down re-encoded: Q3_K
      // raises perplexity by 17% on text and 35% on the pseudo-random windows, so the
      // gate allows 100%; Q2_K by 4x on text and 69x on pseudo-random windows, as far
      // as a broken file would, so only a non-finite perplexity fails it.
      for (int id : {spec.gguf.target.value_or(-1), spec.gguf.other}) {
        if (id == 11) gate.tolerance = std::max(gate.tolerance, 1.0);
        if (id == 10) gate.tolerance = std::numeric_limits<double>::infinity();
      }
      break;
    case OutputFormat::kGptq:  // read back by GptqStream (float16 scales and dense tensors)
    case OutputFormat::kCompressedTensors:
      gate.tolerance = 1e-2;
      // W8A8: per-token int8 activations make the perplexity chaotic in the last bits of
      // the weights (the attention sinks' massive activations are quantized with a coarse
      // step). Measured on SmolLM2 over 2 windows of 256: the float16 checkpoint moves it
      // 1.7% (0.06-0.7% with SmoothQuant), and 1e-6 relative noise on the norm weights
      // moves PyTorch's own figure by up to 2%. (That the reader quantizes the inputs at
      // all is compressed_tensors_export_test's; real_model_w8a8_e2e compares the file's
      // perplexity with PyTorch's on 8 windows of 512, where the noise is 0.3%.)
      if (ActivationStage(spec.recipe) >= 0) gate.tolerance = 5e-2;
      break;
    case OutputFormat::kHfSafetensors:
      gate.tolerance = spec.hf_dtype == "F32" ? 1e-4 : 1e-2;
      break;
    case OutputFormat::kSpqr:  // SpQR modules exact (SpqrStream), the rest in float16
      gate.tolerance = 1e-2;
      break;
  }
  return gate;
}

absl::StatusOr<PerplexityResult> ReloadedPerplexity(const ReloadGate& gate,
                                                    const std::string& device, int threads,
                                                    EventSink& events, const CancelToken& cancel) {
  ASSIGN_OR_RETURN(std::unique_ptr<ModelStream> output, OpenModelStream(gate.path, gate.gguf));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(device, threads));
  LlamaModel holder;
  ASSIGN_OR_RETURN(LlamaForward forward, StreamForward(*output, &holder, backend.get()));
  const ModelStream* src = output.get();
  ASSIGN_OR_RETURN(EvalStream stream,
                   EvalStream::Create({gate.set}, output->config().hidden,
                                      [src](const SequenceBatch& b, float* h) {
                                        return EmbedFromStream(*src, b, h);
                                      }));
  BlockWorkspace ws;
  for (int i = 0; i < output->config().n_layers; ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    ASSIGN_OR_RETURN(BlockWeights w, output->LoadBlock(i));
    RETURN_IF_ERROR(stream.Advance(forward, w, &ws));
    output->ReleaseBlock(i);  // after use: F32 weights point into the mapping
  }
  return StreamPerplexity(stream, forward, gate.set, "verify export", events, cancel);
}

absl::StatusOr<nlohmann::json> CompareReload(const ReloadGate& gate,
                                             const PerplexityResult& expected,
                                             const PerplexityResult& reloaded, EventSink& events) {
  const double diff = std::fabs(reloaded.perplexity / expected.perplexity - 1.0);
  const std::string figures = absl::StrFormat(
      "perplexity %.6g in memory, %.6g reloaded from %s (relative difference %.3g, tolerance %g; "
      "%d windows of %d tokens from %s)",
      expected.perplexity, reloaded.perplexity, gate.path, diff, gate.tolerance,
      gate.set.windows.n_windows, gate.set.windows.window, gate.set.source);
  if (!(diff <= gate.tolerance) || !std::isfinite(reloaded.perplexity)) {  // NaN fails too
    return absl::InternalError(absl::StrCat(
        "reload check failed: the exported model does not reproduce the compressed one: ",
        figures));
  }
  EmitLog(events, "info", absl::StrCat("reload check passed: ", figures));
  return nlohmann::json{{"passed", true},
                        {"perplexity_in_memory", expected.perplexity},
                        {"perplexity_reloaded", reloaded.perplexity},
                        {"relative_difference", diff},
                        {"tolerance", gate.tolerance},
                        {"windows", gate.set.windows.n_windows},
                        {"window", gate.set.windows.window},
                        {"source", gate.set.source}};
}

namespace {

nlohmann::json Skipped(const ReloadGate& gate, EventSink& events) {
  EmitLog(events, "warning", absl::StrCat("reload check not run: ", gate.skipped));
  return nlohmann::json{{"passed", nullptr}, {"skipped", gate.skipped}};
}

}  // namespace

absl::StatusOr<nlohmann::json> VerifyModelExport(const LlamaModel& model, const ReloadGate& gate,
                                                 const std::string& device, int threads,
                                                 EventSink& events, const CancelToken& cancel) {
  if (!gate.skipped.empty()) return Skipped(gate, events);
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(device, threads));
  ASSIGN_OR_RETURN(LlamaForward forward, LlamaForward::Create(&model, backend.get()));
  EvalProgress progress{"verify export", EvalBatches(gate.set)};
  ASSIGN_OR_RETURN(PerplexityResult expected,
                   EvaluateSet(forward, gate.set, &progress, events, cancel));
  ASSIGN_OR_RETURN(PerplexityResult reloaded,
                   ReloadedPerplexity(gate, device, threads, events, cancel));
  return CompareReload(gate, expected, reloaded, events);
}

absl::StatusOr<std::unique_ptr<StreamedExportCheck>> StreamedExportCheck::Create(
    const ModelStream& source, ReloadGate gate, const std::string& device, int threads,
    BlockStream& inner) {
  std::unique_ptr<StreamedExportCheck> check(new StreamedExportCheck());
  check->gate_ = std::move(gate);
  check->device_ = device;
  check->threads_ = threads;
  check->blocks_ = &inner;
  if (!check->gate_.skipped.empty()) return check;
  ASSIGN_OR_RETURN(check->backend_, CreateBackend(device, threads));
  ASSIGN_OR_RETURN(check->forward_,
                   StreamForward(source, &check->holder_, check->backend_.get()));
  const ModelStream* src = &source;
  ASSIGN_OR_RETURN(check->stream_, EvalStream::Create({check->gate_.set}, source.config().hidden,
                                                      [src](const SequenceBatch& b, float* h) {
                                                        return EmbedFromStream(*src, b, h);
                                                      }));
  check->evaluating_ = std::make_unique<EvaluatingBlockStream>(inner, *check->forward_, nullptr,
                                                               &*check->stream_);
  check->blocks_ = check->evaluating_.get();
  return check;
}

absl::StatusOr<nlohmann::json> StreamedExportCheck::Verify(EventSink& events,
                                                           const CancelToken& cancel) {
  if (!gate_.skipped.empty()) return Skipped(gate_, events);
  ASSIGN_OR_RETURN(PerplexityResult expected,
                   StreamPerplexity(*stream_, *forward_, gate_.set, "verify export", events,
                                    cancel));
  ASSIGN_OR_RETURN(PerplexityResult reloaded,
                   ReloadedPerplexity(gate_, device_, threads_, events, cancel));
  return CompareReload(gate_, expected, reloaded, events);
}

}  // namespace compressd::engine
