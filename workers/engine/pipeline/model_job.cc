#include "workers/engine/pipeline/model_job.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/nn/backend_factory.h"
#include "workers/engine/pipeline/eval_sets.h"
#include "workers/engine/pipeline/eval_stream.h"
#include "workers/engine/pipeline/evopress_stage.h"
#include "workers/engine/pipeline/hf_block_stream.h"
#include "workers/engine/pipeline/memory_estimate.h"
#include "workers/engine/pipeline/model_export.h"
#include "workers/engine/pipeline/model_inputs.h"
#include "workers/engine/pipeline/reload_gate.h"
#include "workers/engine/pipeline/summary.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// A metric and a log line per set; returns `results`.
std::vector<PerplexityResult> ReportPerplexities(const std::vector<EvalSet>& sets,
                                                 const std::vector<PerplexityResult>& results,
                                                 const char* label, EventSink& events) {
  for (size_t i = 0; i < sets.size(); ++i) {
    const EvalSet& set = sets[i];
    EmitLabeledMetric(events, "perplexity", results[i].perplexity,
                      {{"dataset", set.name}, {"model", label}});
    EmitLog(events, "info",
            absl::StrFormat("%s perplexity on %s: %.4f (%d windows of %d)", label, set.name,
                            results[i].perplexity, set.windows.n_windows, set.windows.window));
  }
  return results;
}

void ReportKl(const EvalSet& set, const CompareResult& kl, EventSink& events) {
  EmitLabeledMetric(events, "kl", kl.mean_kl, {{"dataset", set.name}});
  EmitLabeledMetric(events, "top1", kl.top1_agreement, {{"dataset", set.name}});
}

// Perplexity of `forward` on every set, with a metric per set.
absl::StatusOr<std::vector<engine::PerplexityResult>> EvaluateAll(
    const engine::LlamaForward& forward, const std::vector<EvalSet>& sets, const char* label,
    EvalProgress* progress, EventSink& events, const CancelToken& cancel) {
  std::vector<engine::PerplexityResult> results;
  for (const EvalSet& set : sets) {
    ASSIGN_OR_RETURN(engine::PerplexityResult r,
                     EvaluateSet(forward, set, progress, events, cancel));
    results.push_back(r);
  }
  return ReportPerplexities(sets, results, label, events);
}

json EvaluationJson(const std::vector<EvalSet>& sets,
                    const std::vector<engine::PerplexityResult>& dense,
                    const std::vector<engine::PerplexityResult>& compressed,
                    const std::optional<engine::CompareResult>& kl, int threads) {
  json out = {{"threads", threads}, {"datasets", json::array()}};
  for (size_t i = 0; i < sets.size(); ++i) {
    json d = {{"name", sets[i].name},
              {"source", sets[i].source},
              {"window", sets[i].windows.window},
              {"windows", sets[i].windows.n_windows},
              {"text_tokens", sets[i].text_tokens},
              {"perplexity", json::object()},
              {"mean_nll", json::object()}};
    if (i < dense.size()) {
      d["predicted_tokens"] = dense[i].n_predicted;
      d["perplexity"]["dense"] = dense[i].perplexity;
      d["mean_nll"]["dense"] = dense[i].mean_nll;
    }
    if (i < compressed.size()) {
      d["predicted_tokens"] = compressed[i].n_predicted;
      d["perplexity"]["compressed"] = compressed[i].perplexity;
      d["mean_nll"]["compressed"] = compressed[i].mean_nll;
    }
    out["datasets"].push_back(std::move(d));
  }
  if (kl) {
    out["kl"] = {{"dataset", sets.front().name},
                 {"mean_kl", kl->mean_kl},
                 {"top1_agreement", kl->top1_agreement},
                 {"positions", kl->n_positions}};
  }
  return out;
}

int TotalBatches(const std::vector<EvalSet>& sets) {
  int n = 0;
  for (const EvalSet& set : sets) n += EvalBatches(set);
  return n;
}

// One run of RunModelJob, step by step. Not thread-safe.
class ModelJob {
 public:
  ModelJob(const JobPlan& plan, const RecipeSpec& spec, const std::string& out_dir,
           const RunOptions& options, EventSink& events, CancelToken& cancel)
      : plan_(plan),
        spec_(spec),
        recipe_(spec.recipe),
        out_dir_(out_dir),
        options_(options),
        events_(events),
        cancel_(cancel),
        threads_(EvaluationThreads(recipe_, options)) {}

  absl::StatusOr<std::string> Run() {
    if (spec_.format == OutputFormat::kGguf && !plan_.input.gguf &&
        plan_.compression != Compression::kNone) {  // its tokenizer converts, before any work
      RETURN_IF_ERROR(GgufMetadataSource(plan_.input, /*vocab=*/0, nullptr).status());
    }
    RETURN_IF_ERROR(CheckMemory());
    if (recipe_.compute() == "bf16") EmitLog(events_, "info", engine::BackendComputeLine());
    if (plan_.path == JobPath::kBlockStream) return RunBlockStream();
    RETURN_IF_ERROR(Load());
    if (plan_.compression != Compression::kNone) {  // the output's family checks, before any work
      RETURN_IF_ERROR(CheckOutputExportable(spec_, in_.model.config));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<engine::Backend> backend, NewBackend(threads_));
    if (plan_.evaluate_dense) RETURN_IF_ERROR(EvaluateDense(*backend));
    if (plan_.compression != Compression::kNone) {
      // Shares every tensor with the model; compression replaces, never writes.
      std::optional<engine::LlamaModel> dense;
      if (plan_.kl) dense = in_.model;
      RETURN_IF_ERROR(Compress());
      if (plan_.evaluate) RETURN_IF_ERROR(EvaluateCompressed(*backend, dense));
      RETURN_IF_ERROR(Export());
    }
    const std::string summary = Summary();
    if (spec_.evaluate_only) {
      RETURN_IF_ERROR(
          WriteFileAtomically((fs::path(out_dir_) / "summary.json").string(), summary + "\n"));
    }
    return summary;
  }

 private:
  // A backend on `threads` threads in the recipe's compute precision.
  absl::StatusOr<std::unique_ptr<engine::Backend>> NewBackend(int threads) const {
    ASSIGN_OR_RETURN(const engine::Compute compute, engine::ParseCompute(recipe_.compute()));
    return engine::CreateBackend(options_.device, threads, compute);
  }

  absl::Status Load() {
    const Clock::time_point t = Clock::now();
    const std::string name = fs::path(plan_.input.path).filename().string();
    EmitProgress(events_, "load", 0, 1, name);
    RETURN_IF_ERROR(LoadModelInputs(plan_, spec_, options_, LoadWhat{}, events_, &in_));
    model_json_ = ModelSummaryJson(in_.model, plan_.input);
    load_s_ = SecondsSince(t);
    EmitProgress(events_, "load", 1, 1, name);
    EmitLog(
        events_, "info",
        absl::StrCat("loaded ", in_.model.config.model_type, " model: ", in_.model.config.n_layers,
                     " layers, ", model_json_["parameters"].get<uint64_t>(), " parameters, ",
                     in_.targets.size(), " targeted"));
    return cancel_.cancelled() ? absl::CancelledError("job cancelled") : absl::OkStatus();
  }

  // The job's peak memory, estimated from the model's headers before any
  // weight is read, as an event. Over the budget, a calibrated job's
  // activations go to scratch files when that makes it fit (spill_dir_);
  // otherwise RESOURCE_EXHAUSTED.
  absl::Status CheckMemory() {
    ASSIGN_OR_RETURN(const StoredModel stored, InspectModel(plan_.input.path));
    MemoryEstimate e = EstimateJobMemory(plan_, spec_, stored.config, stored.weight_bytes);
    const uint64_t budget = options_.memory_budget_bytes;
    const bool calibrated = plan_.compression == Compression::kCalibrated;
    if (budget > 0 && e.peak_bytes > budget && calibrated) {
      // Spilled is never larger: it is what this job needs at the least
      // (also what a refusal reports, so a worker that could spill gets it).
      e = EstimateJobMemory(plan_, spec_, stored.config, stored.weight_bytes,
                            /*spill_activations=*/true);
      if (e.peak_bytes <= budget) spill_dir_ = out_dir_;
    }
    EmitMetric(events_, "memory_estimate_bytes", static_cast<double>(e.peak_bytes), "");
    EmitLog(events_, "info",
            absl::StrCat("memory estimate: peak ", FormatBytes(e.peak_bytes), " (", e.breakdown,
                         "); output ", FormatBytes(e.output_bytes),
                         e.scratch_bytes > 0
                             ? absl::StrCat("; scratch files ", FormatBytes(e.scratch_bytes))
                             : ""));
    if (calibrated && options_.solver != nullptr && options_.solver->DeviceMemoryBytes() > 0) {
      const uint64_t device = EstimateDeviceBytes(stored.config, *options_.solver);
      const uint64_t free_bytes = options_.solver->DeviceMemoryBytes();
      EmitLog(events_, "info",
              absl::StrCat("device memory estimate: ", FormatBytes(device), " on ",
                           options_.solver->name(), " (", FormatBytes(free_bytes), " free)"));
      if (device > free_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("this job's largest layer solve needs an estimated ", FormatBytes(device),
                         " of device memory, more than the ", FormatBytes(free_bytes), " free on ",
                         options_.solver->name(), "; use a GPU with more memory or a CPU worker"));
      }
    }
    if (budget > 0 && e.peak_bytes > budget) {
      return MemoryRefusal(
          e.peak_bytes,
          absl::StrCat(
              "this job needs an estimated ", FormatBytes(e.peak_bytes), " of memory at its peak (",
              e.breakdown, "), more than this worker's budget of ", FormatBytes(budget),
              " (compress-worker --memory-budget); use a worker with more memory, or fewer "
              "calibration tokens"));
    }
    return absl::OkStatus();
  }

  // The job block by block (job_plan.h): the model's config and tensor
  // shapes up front, each block read, [evaluated dense,] compressed,
  // [evaluated,] written and freed in turn (hf_block_stream.h,
  // eval_stream.h); an evaluate-only job just advances its windows. The same
  // summary as Run().
  absl::StatusOr<std::string> RunBlockStream() {
    Clock::time_point t = Clock::now();
    const std::string name = fs::path(plan_.input.path).filename().string();
    EmitProgress(events_, "load", 0, 1, name);
    ASSIGN_OR_RETURN(source_, OpenModelStream(plan_.input.path, plan_.input.gguf));
    const ModelStream* source = source_.get();
    const LlamaConfig& c = source->config();
    in_.model.config = c;
    in_.model.blocks.resize(c.n_layers);
    const std::vector<NamedShape> shapes = ConfigShapes(c);
    model_json_ = ModelSummaryJson(c, shapes, c.tie_word_embeddings, plan_.input);
    RETURN_IF_ERROR(LoadTextInputs(plan_, spec_, options_, LoadWhat{}, events_, &in_));
    ASSIGN_OR_RETURN(in_.targets, SelectTargets(shapes, spec_));
    load_s_ = SecondsSince(t);
    EmitProgress(events_, "load", 1, 1, name);
    EmitLog(events_, "info",
            absl::StrCat("opened ", c.model_type, " model block by block: ", c.n_layers,
                         " layers, ", model_json_["parameters"].get<uint64_t>(), " parameters, ",
                         in_.targets.size(), " targeted"));
    if (cancel_.cancelled()) return absl::CancelledError("job cancelled");
    if (plan_.evaluate) RETURN_IF_ERROR(StartEvaluation(*source));
    if (plan_.compression == Compression::kNone) return RunEvaluateOnlyStream(*source);
    // The output, written block by block.
    ASSIGN_OR_RETURN(std::unique_ptr<StreamedExport> output,
                     StreamedExport::Create(*source, spec_, in_.targets, plan_.input, out_dir_,
                                            &result_, events_));
    ASSIGN_OR_RETURN(
        std::unique_ptr<StreamedExportCheck> check,
        StreamedExportCheck::Create(*source, Gate(), options_.device, threads_, output->blocks()));
    const int threads = CalibrationThreads(recipe_, options_);
    ASSIGN_OR_RETURN(std::unique_ptr<engine::Backend> backend, NewBackend(threads));
    std::optional<EvaluatingBlockStream> evaluating;
    BlockStream* blocks = &check->blocks();
    if (plan_.evaluate) {
      blocks = &evaluating.emplace(check->blocks(), *eval_forward_,
                                   dense_stream_ ? &*dense_stream_ : nullptr, &*compressed_stream_);
    }
    RETURN_IF_ERROR(
        plan_.compression == Compression::kUncalibrated
            ? CompressUncalibrated(c, recipe_, in_.targets, events_, cancel_, &result_, *blocks)
            : CompressCalibrated(in_.model, *backend, recipe_, in_.targets, *in_.calibration,
                                 threads, options_.checkpoints, events_, cancel_, &result_, blocks,
                                 spill_dir_, options_.solver));
    if (evaluating) eval_s_ += evaluating->seconds();
    t = Clock::now();
    EmitProgress(events_, "export", 0, 1, out_dir_);
    ASSIGN_OR_RETURN(export_report_, output->Finish(events_));
    export_s_ = SecondsSince(t);
    output_bytes_ = DirectoryBytes(out_dir_);
    EmitProgress(events_, "export", 1, 1, out_dir_);
    ASSIGN_OR_RETURN(export_report_["reload_check"], check->Verify(events_, cancel_));
    if (plan_.evaluate) RETURN_IF_ERROR(EvaluateStreams());
    return Summary();
  }

  // An evaluate-only job on the block stream: the windows advance through
  // each block as it is read.
  absl::StatusOr<std::string> RunEvaluateOnlyStream(const ModelStream& source) {
    const Clock::time_point t = Clock::now();
    const int n = source.config().n_layers;
    BlockWorkspace ws;
    for (int i = 0; i < n; ++i) {
      if (cancel_.cancelled()) return absl::CancelledError("job cancelled");
      EmitProgress(events_, "evaluate dense", 0, TotalBatches(in_.sets),
                   absl::StrCat("block ", i + 1, " of ", n));
      ASSIGN_OR_RETURN(BlockWeights w, source.LoadBlock(i));
      source.ReleaseBlock(i);
      RETURN_IF_ERROR(dense_stream_->Advance(*eval_forward_, w, &ws));
    }
    eval_s_ += SecondsSince(t);
    RETURN_IF_ERROR(EvaluateStreams());
    const std::string summary = Summary();
    RETURN_IF_ERROR(
        WriteFileAtomically((fs::path(out_dir_) / "summary.json").string(), summary + "\n"));
    return summary;
  }

  // Evaluation that rides along with the blocks (eval_stream.h): the final
  // norm, an LM head read in vocabulary chunks from the mapped file, and the
  // windows embedded into a dense stream (when the dense model is evaluated
  // or compared) and a compressed one (when there is compression).
  absl::Status StartEvaluation(const ModelStream& source) {
    const Clock::time_point t = Clock::now();
    ASSIGN_OR_RETURN(eval_backend_, NewBackend(threads_));
    ASSIGN_OR_RETURN(eval_forward_, StreamForward(source, &in_.model, eval_backend_.get()));
    auto embed = [src = &source](const SequenceBatch& b, float* h) {
      return EmbedFromStream(*src, b, h);
    };
    const int64_t hidden = source.config().hidden;
    if (plan_.evaluate_dense || plan_.kl) {
      ASSIGN_OR_RETURN(dense_stream_, EvalStream::Create(in_.sets, hidden, embed));
    }
    if (plan_.compression != Compression::kNone) {
      ASSIGN_OR_RETURN(compressed_stream_, EvalStream::Create(in_.sets, hidden, embed));
    }
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  // The evaluation of a block-stream job once every block has run: the same
  // results, metrics and progress stages as EvaluateDense / EvaluateCompressed.
  absl::Status EvaluateStreams() {
    const Clock::time_point t = Clock::now();
    const LlamaForward& forward = *eval_forward_;
    if (plan_.evaluate_dense) {
      EvalProgress progress{"evaluate dense", TotalBatches(in_.sets)};
      ASSIGN_OR_RETURN(std::vector<PerplexityResult> r,
                       dense_stream_->Perplexities(forward, in_.sets, &progress, events_, cancel_));
      dense_ = ReportPerplexities(in_.sets, r, "dense", events_);
    }
    if (!compressed_stream_) {
      eval_s_ += SecondsSince(t);
      return absl::OkStatus();
    }
    EvalProgress progress{"evaluate",
                          TotalBatches(in_.sets) + (plan_.kl ? EvalBatches(in_.sets[0]) : 0)};
    ASSIGN_OR_RETURN(
        std::vector<PerplexityResult> r,
        compressed_stream_->Perplexities(forward, in_.sets, &progress, events_, cancel_));
    compressed_ = ReportPerplexities(in_.sets, r, "compressed", events_);
    if (plan_.kl) {
      ASSIGN_OR_RETURN(kl_, EvalStream::Compare(forward, *dense_stream_, *compressed_stream_,
                                                in_.sets, 0, &progress, events_, cancel_));
      ReportKl(in_.sets[0], *kl_, events_);
    }
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  absl::Status EvaluateDense(engine::Backend& backend) {
    const Clock::time_point t = Clock::now();
    ASSIGN_OR_RETURN(engine::LlamaForward forward,
                     engine::LlamaForward::Create(&in_.model, &backend));
    EvalProgress progress{"evaluate dense", TotalBatches(in_.sets)};
    ASSIGN_OR_RETURN(dense_, EvaluateAll(forward, in_.sets, "dense", &progress, events_, cancel_));
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  // Compresses in_.model in place, as the plan says.
  absl::Status Compress() {
    if (plan_.compression == Compression::kUncalibrated) {
      return CompressUncalibrated(in_.model, recipe_, in_.targets, events_, cancel_, &result_);
    }
    const int threads = CalibrationThreads(recipe_, options_);
    ASSIGN_OR_RETURN(std::unique_ptr<engine::Backend> backend, NewBackend(threads));
    if (plan_.compression == Compression::kEvoPress) {
      EvoPressJob job{&in_.model, backend.get(), &spec_, &in_.targets, &*in_.calibration, threads};
      ASSIGN_OR_RETURN(evopress_, RunEvoPress(job, options_, out_dir_, events_, cancel_, &result_));
      return absl::OkStatus();
    }
    return CompressCalibrated(in_.model, *backend, recipe_, in_.targets, *in_.calibration, threads,
                              options_.checkpoints, events_, cancel_, &result_, nullptr, spill_dir_,
                              options_.solver);
  }

  // Perplexity of the compressed model, and its KL from `dense` when kept.
  absl::Status EvaluateCompressed(engine::Backend& backend,
                                  const std::optional<engine::LlamaModel>& dense) {
    const Clock::time_point t = Clock::now();
    ASSIGN_OR_RETURN(engine::LlamaForward forward,
                     engine::LlamaForward::Create(&in_.model, &backend));
    EvalProgress progress{"evaluate",
                          TotalBatches(in_.sets) + (dense ? EvalBatches(in_.sets[0]) : 0)};
    ASSIGN_OR_RETURN(compressed_,
                     EvaluateAll(forward, in_.sets, "compressed", &progress, events_, cancel_));
    if (dense) {
      ASSIGN_OR_RETURN(engine::LlamaForward dense_fwd,
                       engine::LlamaForward::Create(&*dense, &backend));
      ASSIGN_OR_RETURN(kl_,
                       CompareOnSet(dense_fwd, forward, in_.sets[0], &progress, events_, cancel_));
      ReportKl(in_.sets[0], *kl_, events_);
    }
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  absl::Status Export() {
    if (cancel_.cancelled()) return absl::CancelledError("job cancelled");
    const Clock::time_point t = Clock::now();
    EmitProgress(events_, "export", 0, 1, out_dir_);
    ExportRequest request{&in_.model, &result_.quantized, &in_.targets, plan_.input, out_dir_};
    ASSIGN_OR_RETURN(export_report_, ExportModel(request, spec_, events_));
    export_s_ = SecondsSince(t);
    output_bytes_ = DirectoryBytes(out_dir_);
    EmitProgress(events_, "export", 1, 1, out_dir_);
    ASSIGN_OR_RETURN(
        export_report_["reload_check"],
        VerifyModelExport(in_.model, Gate(), options_.device, threads_, events_, cancel_));
    return absl::OkStatus();
  }

  // The post-export reload check of this job's output (reload_gate.h).
  ReloadGate Gate() const {
    return PlanReloadGate(spec_, in_.calibration ? &*in_.calibration : nullptr, in_.sets,
                          in_.model.config.vocab, out_dir_);
  }

  std::string Summary() const {
    JobSummary s;
    const bool compressed = plan_.compression != Compression::kNone;
    s.format = compressed ? OutputFormatName(spec_.format) : "none";
    s.model = model_json_;
    if (recipe_.compute() == "bf16") s.compute = "bf16";
    if (plan_.evaluate) s.evaluation = EvaluationJson(in_.sets, dense_, compressed_, kl_, threads_);
    if (compressed) {
      s.layers = result_.layers;
      s.experts = ExpertsJson(result_.layers);
      s.totals = CompressionTotals{in_.targets.size(), result_.targeted_parameters,
                                   result_.zeros,      model_json_["parameters"].get<uint64_t>(),
                                   result_.bits_sum,   output_bytes_};
      if (in_.calibration) {
        s.calibration =
            CalibrationJson(*in_.calibration, recipe_.calibration(), result_.resumed_blocks);
        if (!result_.owl.is_null()) (*s.calibration)["owl"] = result_.owl;
        if (!result_.awq.empty()) (*s.calibration)["awq"] = result_.awq;
        if (!result_.smoothquant.empty()) (*s.calibration)["smoothquant"] = result_.smoothquant;
      }
      if (!export_report_.is_null()) s.export_report = export_report_;
      if (!evopress_.is_null()) s.evopress = evopress_;
    }
    s.timing = {{"load", load_s_},
                {"evaluate", eval_s_},
                {"forward", result_.forward_s},
                {"hessian", result_.hessian_s},
                {"awq", result_.awq_s},
                {"solve", result_.solve_s},
                {"error", result_.error_s},
                {"checkpoint", result_.checkpoint_s},
                {"export", export_s_},
                {"total", SecondsSince(start_)}};
    s.peak_rss = true;
    return s.Dump();
  }

  const Clock::time_point start_ = Clock::now();
  const JobPlan& plan_;
  const RecipeSpec& spec_;
  const v1::Recipe& recipe_;
  const std::string out_dir_;
  std::string spill_dir_;  // non-empty: calibration activations in scratch files here
  const RunOptions& options_;
  EventSink& events_;
  CancelToken& cancel_;
  const int threads_;  // evaluation threads

  ModelInputs in_;
  CompressionResult result_;
  json model_json_, export_report_, evopress_;
  uint64_t output_bytes_ = 0;
  std::vector<engine::PerplexityResult> dense_, compressed_;
  std::optional<engine::CompareResult> kl_;
  // The block-stream path's model (RunBlockStream); the evaluation's LM head
  // reads from it.
  std::unique_ptr<ModelStream> source_;
  // Block-stream evaluation (StartEvaluation).
  std::unique_ptr<engine::Backend> eval_backend_;
  std::optional<LlamaForward> eval_forward_;
  std::optional<EvalStream> dense_stream_, compressed_stream_;
  double load_s_ = 0, eval_s_ = 0, export_s_ = 0;
};

}  // namespace

absl::StatusOr<std::string> RunModelJob(const JobPlan& plan, const RecipeSpec& recipe,
                                        const std::string& out_dir, const RunOptions& options,
                                        EventSink& events, CancelToken& cancel) {
  return ModelJob(plan, recipe, out_dir, options, events, cancel).Run();
}

}  // namespace compressd::engine
