#include "workers/engine/model_job.h"

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/atomic_file.h"
#include "common/recipe.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/gguf/ggml_types.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/model_eval.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/evopress/evopress_run.h"
#include "workers/engine/model_prune.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/tokenizer/gguf_tokenizer.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Small files of an HF model directory that belong with the exported model.
constexpr const char* kSideFiles[] = {"tokenizer.json",    "tokenizer_config.json",
                                      "special_tokens_map.json", "generation_config.json",
                                      "vocab.json",        "merges.txt"};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t PeakRssBytes() {
  struct rusage ru = {};
  if (::getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

int Threads(const v1::Recipe& recipe, const RunOptions& options) {
  if (recipe.evaluation().threads() > 0) return recipe.evaluation().threads();
  if (options.threads > 0) return options.threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

json ModelJson(engine::LlamaModel& model, const std::string& path, bool gguf) {
  uint64_t params = 0;
  for (const engine::NamedTensor& t : engine::NamedTensors(&model)) params += t.tensor->numel();
  const engine::LlamaConfig& c = model.config;
  return {{"input_format", gguf ? "gguf" : "hf_safetensors"},
          {"file", fs::path(path).filename().string()},
          {"model_type", c.model_type},
          {"layers", c.n_layers},
          {"hidden", c.hidden},
          {"intermediate", c.intermediate},
          {"heads", c.n_heads},
          {"kv_heads", c.n_kv_heads},
          {"vocab", c.vocab},
          {"tied_embeddings", engine::LmHeadIsTied(model)},
          {"parameters", params}};
}

// Perplexity of `forward` on every set, with a metric per set.
absl::StatusOr<std::vector<engine::PerplexityResult>> EvaluateAll(
    const engine::LlamaForward& forward, const std::vector<EvalSet>& sets, const char* label,
    EvalProgress* progress, EventSink& events, const CancelToken& cancel) {
  std::vector<engine::PerplexityResult> results;
  for (const EvalSet& set : sets) {
    ASSIGN_OR_RETURN(engine::PerplexityResult r,
                     EvaluateSet(forward, set, progress, events, cancel));
    EmitLabeledMetric(events, "perplexity", r.perplexity, {{"dataset", set.name}, {"model", label}});
    EmitLog(events, "info", absl::StrFormat("%s perplexity on %s: %.4f (%d windows of %d)", label,
                                            set.name, r.perplexity, set.windows.n_windows,
                                            set.windows.window));
    results.push_back(r);
  }
  return results;
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

absl::Status CopySideFiles(const std::string& model_dir, const std::string& out_dir) {
  for (const char* name : kSideFiles) {
    const fs::path from = fs::path(model_dir) / name;
    std::error_code ec;
    if (!fs::is_regular_file(from, ec)) continue;
    fs::copy_file(from, fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat(from.string(), ": copy: ", ec.message()));
  }
  return absl::OkStatus();
}

// The export report in the summary: tensors per type, how many were encoded
// exactly from their quantization grid, and each tensor's type.
json GgufReportJson(const GgufExportReport& report) {
  std::map<std::string, int> by_type;
  int exact = 0;
  json tensors = json::array();
  for (const GgufTensorReport& t : report.tensors) {
    const std::string type = engine::GgmlTypeName(t.type);
    ++by_type[type];
    exact += t.exact_from_grid;
    json entry = {{"name", t.gguf_name}, {"type", type}, {"exact_from_grid", t.exact_from_grid},
                  {"bytes", t.bytes}};
    if (!t.note.empty()) entry["note"] = t.note;
    tensors.push_back(std::move(entry));
  }
  return {{"file", fs::path(report.path).filename().string()},
          {"file_size", report.file_size},
          {"file_type", report.file_type},
          {"tensors_by_type", by_type},
          {"exact_from_grid", exact},
          {"tensors", tensors}};
}

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

absl::Status WriteSummaryFile(const std::string& out_dir, const std::string& summary) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": mkdir: ", ec.message()));
  const fs::path path = fs::path(out_dir) / "summary.json";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << summary << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

int TotalBatches(const std::vector<EvalSet>& sets) {
  int n = 0;
  for (const EvalSet& set : sets) n += EvalBatches(set);
  return n;
}

// One run of RunModelRecipe, step by step. Not thread-safe.
class ModelJob {
 public:
  ModelJob(const std::string& model_path, bool gguf, const v1::Recipe& recipe,
           const std::string& out_dir, const RunOptions& options, EventSink& events,
           CancelToken& cancel)
      : path_(model_path), gguf_(gguf), recipe_(recipe), out_dir_(out_dir), options_(options),
        events_(events), cancel_(cancel) {}

  absl::StatusOr<std::string> Run() {
    RETURN_IF_ERROR(Load());
    engine::CpuBackend backend(engine::CpuBackendOptions{Threads(recipe_, options_), 128});
    RETURN_IF_ERROR(EvaluateDense(backend));
    if (!targets_.empty()) {
      RETURN_IF_ERROR(Compress(backend));
      RETURN_IF_ERROR(Export());
    }
    const std::string summary = Summary(backend.num_threads());
    if (IsEvaluateOnly(recipe_)) RETURN_IF_ERROR(WriteSummaryFile(out_dir_, summary));
    return summary;
  }

 private:
  // The model, the tokenized evaluation texts, the targets (checked before any long step).
  absl::Status Load() {
    const Clock::time_point t = Clock::now();
    const std::string name = fs::path(path_).filename().string();
    EmitProgress(events_, "load", 0, 1, name);
    ASSIGN_OR_RETURN(model_, engine::LoadModel(path_));
    const bool calibrate = NeedsCalibration(recipe_);
    if (!recipe_.evaluation().perplexity().empty() || calibrate) {
      ASSIGN_OR_RETURN(engine::Tokenizer tokenizer, LoadModelTokenizer(path_, gguf_));
      ASSIGN_OR_RETURN(sets_, LoadEvalSets(recipe_.evaluation(), tokenizer, options_));
      if (calibrate) {
        ASSIGN_OR_RETURN(calibration_,
                         LoadCalibrationSet(recipe_.calibration(), tokenizer, options_));
        EmitLog(events_, "info",
                absl::StrFormat("calibration set %s: %d windows of %d tokens from %s (%d files, "
                                "%d tokens, seed %d)",
                                calibration_->name, calibration_->sequences.size(),
                                recipe_.calibration().seq_len(), calibration_->source,
                                calibration_->files, calibration_->text_tokens,
                                recipe_.calibration().seed()));
      }
    }
    if (!recipe_.stages().empty()) {
      ASSIGN_OR_RETURN(targets_, SelectModelTargets(model_, recipe_));
    }
    model_json_ = ModelJson(model_, path_, gguf_);
    load_s_ = SecondsSince(t);
    EmitProgress(events_, "load", 1, 1, name);
    EmitLog(events_, "info", absl::StrCat("loaded ", model_.config.model_type, " model: ",
                                          model_.config.n_layers, " layers, ",
                                          model_json_["parameters"].get<uint64_t>(),
                                          " parameters, ", targets_.size(), " targeted"));
    return cancel_.cancelled() ? absl::CancelledError("job cancelled") : absl::OkStatus();
  }

  absl::Status EvaluateDense(engine::Backend& backend) {
    if (sets_.empty() || (recipe_.evaluation().skip_dense() && !targets_.empty())) {
      return absl::OkStatus();
    }
    const Clock::time_point t = Clock::now();
    ASSIGN_OR_RETURN(engine::LlamaForward forward, engine::LlamaForward::Create(&model_, &backend));
    EvalProgress progress{"evaluate dense", TotalBatches(sets_)};
    ASSIGN_OR_RETURN(dense_, EvaluateAll(forward, sets_, "dense", &progress, events_, cancel_));
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  // Prunes model_ in place, then evaluates it (and compares it with the dense model).
  absl::Status Compress(engine::Backend& backend) {
    const bool want_kl = recipe_.evaluation().kl() && !sets_.empty();
    engine::LlamaModel dense;
    if (want_kl) dense = model_;  // shares every tensor; pruning replaces, never writes
    if (calibration_) {
      const int threads = recipe_.calibration().threads() > 0 ? recipe_.calibration().threads()
                                                              : Threads(recipe_, options_);
      engine::CpuBackend calib_backend(engine::CpuBackendOptions{threads, 128});
      if (recipe_.stages_size() == 1 && recipe_.stages(0).has_evopress()) {
        RETURN_IF_ERROR(RunEvoPress(model_, calib_backend, recipe_, targets_, *calibration_,
                                    threads, options_, out_dir_, events_, cancel_, &result_,
                                    &evopress_));
      } else {
        RETURN_IF_ERROR(CompressCalibrated(model_, calib_backend, recipe_, targets_,
                                           *calibration_, threads, options_.checkpoints, events_,
                                           cancel_, &result_));
      }
    } else {
      RETURN_IF_ERROR(CompressUncalibrated(model_, recipe_, targets_, events_, cancel_, &result_));
    }
    if (sets_.empty()) return absl::OkStatus();
    const Clock::time_point t = Clock::now();
    ASSIGN_OR_RETURN(engine::LlamaForward forward, engine::LlamaForward::Create(&model_, &backend));
    EvalProgress progress{"evaluate", TotalBatches(sets_) + (want_kl ? EvalBatches(sets_[0]) : 0)};
    ASSIGN_OR_RETURN(compressed_,
                     EvaluateAll(forward, sets_, "compressed", &progress, events_, cancel_));
    if (want_kl) {
      ASSIGN_OR_RETURN(engine::LlamaForward dense_fwd,
                       engine::LlamaForward::Create(&dense, &backend));
      ASSIGN_OR_RETURN(kl_, CompareOnSet(dense_fwd, forward, sets_[0], &progress, events_, cancel_));
      EmitLabeledMetric(events_, "kl", kl_->mean_kl, {{"dataset", sets_[0].name}});
      EmitLabeledMetric(events_, "top1", kl_->top1_agreement, {{"dataset", sets_[0].name}});
    }
    eval_s_ += SecondsSince(t);
    return absl::OkStatus();
  }

  absl::Status Export() {
    if (cancel_.cancelled()) return absl::CancelledError("job cancelled");
    const Clock::time_point t = Clock::now();
    EmitProgress(events_, "export", 0, 1, out_dir_);
    const std::string& format = recipe_.output().format();
    if (format == "gguf") {
      RETURN_IF_ERROR(ExportGguf());
    } else if (format == "gptq") {
      RETURN_IF_ERROR(ExportGptq());
    } else {
      RETURN_IF_ERROR(WriteHfLlama(model_, out_dir_));
      EmitLog(events_, "info", absl::StrCat("wrote an HF safetensors model (F32) to ", out_dir_));
    }
    if (!gguf_ && format != "gguf") RETURN_IF_ERROR(CopySideFiles(path_, out_dir_));
    if (gguf_ && format != "gguf") RETURN_IF_ERROR(WriteTokenizerFromGguf());
    export_s_ = SecondsSince(t);
    output_bytes_ = DirectoryBytes(out_dir_);
    EmitProgress(events_, "export", 1, 1, out_dir_);
    return absl::OkStatus();
  }

  // An HF export of a GGUF model: the GGUF's tokenizer as tokenizer.json and
  // tokenizer_config.json, so the output directory loads in transformers alone.
  // A GGUF without a tokenizer, or with one that has no tokenizer.json form,
  // still exports its weights (with a warning saying why there is none).
  absl::Status WriteTokenizerFromGguf() {
    ASSIGN_OR_RETURN(std::unique_ptr<engine::GgufFile> source, engine::GgufFile::Open(path_));
    if (!source->HasKey("tokenizer.ggml.model")) {
      EmitLog(events_, "warning", "the GGUF has no tokenizer: the HF output has no tokenizer files");
      return absl::OkStatus();
    }
    absl::StatusOr<engine::HfTokenizerFiles> converted =
        engine::HfTokenizerFilesFromGguf(*source);
    if (!converted.ok()) {
      EmitLog(events_, "warning",
              absl::StrCat("no tokenizer files in the HF output: ", converted.status().message()));
      return absl::OkStatus();
    }
    const engine::HfTokenizerFiles& files = *converted;
    RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir_) / "tokenizer.json").string(),
                                        files.tokenizer_json));
    RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir_) / "tokenizer_config.json").string(),
                                        files.tokenizer_config_json));
    EmitLog(events_, "info", "wrote tokenizer.json and tokenizer_config.json from the GGUF's tokenizer");
    return absl::OkStatus();
  }

  std::map<std::string, const engine::QuantizedTensor*> QuantizedMap() const {
    std::map<std::string, const engine::QuantizedTensor*> map;
    for (const auto& [name, q] : result_.quantized) map[name] = &q;
    return map;
  }

  absl::Status ExportGptq() {
    GptqExportOptions options;
    for (const v1::Stage& s : recipe_.stages()) {
      if (s.has_gptq()) options.damp_percent = s.gptq().percdamp();
    }
    options.true_sequential = recipe_.calibration().true_sequential();
    // v1 ("gptq") stores zero - 1 and cannot hold an asymmetric zero of 0.
    for (const auto& [name, q] : result_.quantized) {
      if (!q.grid.symmetric) options.format = GptqCheckpointFormat::kGptqV2;
    }
    ASSIGN_OR_RETURN(GptqExportStats stats, WriteGptqLlama(model_, QuantizedMap(), out_dir_, options));
    export_report_ = {{"quantized_tensors", stats.quantized_tensors},
                      {"dense_tensors", stats.dense_tensors},
                      {"desc_act", stats.desc_act},
                      {"max_abs_diff_fp16_scales", stats.max_abs_diff}};
    EmitLog(events_, "info", absl::StrCat("wrote a GPTQ model (", stats.quantized_tensors,
                                          " packed tensors) to ", out_dir_));
    return absl::OkStatus();
  }

  absl::Status ExportGguf() {
    std::unique_ptr<engine::GgufFile> source;
    if (gguf_) {
      ASSIGN_OR_RETURN(source, engine::GgufFile::Open(path_));
    }
    GgufExportOptions options;
    const v1::GgufOutput& g = recipe_.output().gguf();
    if (!g.target_type().empty()) options.target_type = g.target_type();
    if (!g.other_type().empty()) options.other_type = g.other_type();
    for (const ModelTarget& t : targets_) options.targets.insert(t.tensor);
    std::error_code ec;
    fs::create_directories(out_dir_, ec);
    if (ec) return absl::InternalError(absl::StrCat(out_dir_, ": mkdir: ", ec.message()));
    const std::string file = (fs::path(out_dir_) / "model.gguf").string();
    ASSIGN_OR_RETURN(GgufExportReport report,
                     WriteGgufLlama(model_, source.get(), QuantizedMap(), options, file));
    export_report_ = GgufReportJson(report);
    EmitLog(events_, "info", absl::StrCat("wrote a GGUF model to ", file));
    return absl::OkStatus();
  }

  std::string Summary(int threads) {
    json summary = {{"format", targets_.empty() ? "none" : recipe_.output().format()},
                    {"model", model_json_}};
    if (!sets_.empty()) summary["evaluation"] = EvaluationJson(sets_, dense_, compressed_, kl_, threads);
    if (!targets_.empty()) {
      const uint64_t params = model_json_["parameters"].get<uint64_t>();
      const uint64_t targeted = result_.targeted_parameters;
      summary["layers"] = result_.layers;
      summary["totals"] = {
          {"targeted_tensors", targets_.size()},
          {"targeted_parameters", targeted},
          {"zeros", result_.zeros},
          {"sparsity", targeted ? static_cast<double>(result_.zeros) / targeted : 0.0},
          {"model_sparsity", params ? static_cast<double>(result_.zeros) / params : 0.0},
          {"targeted_bits_per_parameter", targeted ? result_.bits_sum / targeted : 0.0},
          {"output_bytes", output_bytes_}};
      if (calibration_) {
        summary["calibration"] = {{"name", calibration_->name},
                                  {"source", calibration_->source},
                                  {"files", calibration_->files},
                                  {"text_tokens", calibration_->text_tokens},
                                  {"samples", calibration_->sequences.size()},
                                  {"seq_len", recipe_.calibration().seq_len()},
                                  {"seed", recipe_.calibration().seed()},
                                  {"true_sequential", recipe_.calibration().true_sequential()},
                                  {"resumed_blocks", result_.resumed_blocks}};
      }
      if (!export_report_.is_null()) summary["export"] = export_report_;
      if (!evopress_.is_null()) summary["evopress"] = evopress_;
    }
    summary["timing_seconds"] = {{"load", load_s_},
                                 {"evaluate", eval_s_},
                                 {"forward", result_.forward_s},
                                 {"hessian", result_.hessian_s},
                                 {"solve", result_.solve_s},
                                 {"error", result_.error_s},
                                 {"checkpoint", result_.checkpoint_s},
                                 {"export", export_s_},
                                 {"total", SecondsSince(start_)}};
    summary["peak_rss_bytes"] = PeakRssBytes();
    return summary.dump();
  }

  const Clock::time_point start_ = Clock::now();
  const std::string path_;
  const bool gguf_;
  const v1::Recipe& recipe_;
  const std::string out_dir_;
  const RunOptions& options_;
  EventSink& events_;
  CancelToken& cancel_;

  engine::LlamaModel model_;
  std::vector<EvalSet> sets_;
  std::vector<ModelTarget> targets_;
  std::optional<CalibrationSet> calibration_;
  CompressionResult result_;
  json model_json_, export_report_, evopress_;
  uint64_t output_bytes_ = 0;
  std::vector<engine::PerplexityResult> dense_, compressed_;
  std::optional<engine::CompareResult> kl_;
  double load_s_ = 0, eval_s_ = 0, export_s_ = 0;
};

// A CheckpointStore that forwards to another, set per part.
class ForwardingStore : public CheckpointStore {
 public:
  void set(CheckpointStore* target) { target_ = target; }
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    if (target_ == nullptr) return absl::FailedPreconditionError("no checkpoint store for the part");
    return target_->Put(name, bytes);
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    if (target_ == nullptr) return absl::FailedPreconditionError("no checkpoint store for the part");
    return target_->Get(name);
  }

 private:
  CheckpointStore* target_ = nullptr;
};

class EvoPressPartRunner : public ModelPartRunner {
 public:
  absl::Status Init(const std::string& path, bool gguf, const v1::Recipe& recipe,
                    const RunOptions& options) {
    ASSIGN_OR_RETURN(model_, engine::LoadModel(path));
    ASSIGN_OR_RETURN(engine::Tokenizer tokenizer, LoadModelTokenizer(path, gguf));
    ASSIGN_OR_RETURN(calibration_, LoadCalibrationSet(recipe.calibration(), tokenizer, options));
    ASSIGN_OR_RETURN(std::vector<ModelTarget> targets, SelectModelTargets(model_, recipe));
    recipe_ = recipe;
    targets_ = std::move(targets);
    return SetThreads(recipe.calibration().threads() > 0 ? recipe.calibration().threads()
                                                         : Threads(recipe, options));
  }
  absl::StatusOr<std::string> Run(const WorkPart& part, CheckpointStore* store, EventSink& events,
                                  const CancelToken& cancel) override {
    // The job's worker names its thread count: compute with as many, so the
    // result is bit-identical to its own.
    const json p = json::parse(part.payload, nullptr, /*allow_exceptions=*/false);
    if (p.is_object() && p.contains("threads") && p["threads"].is_number_integer()) {
      const int threads = p["threads"].get<int>();
      if (threads >= 1 && threads <= 1024 && threads != threads_) {
        RETURN_IF_ERROR(SetThreads(threads));
      }
    }
    store_.set(store);
    absl::StatusOr<std::string> result = session_->RunPart(part.payload, events, cancel);
    store_.set(nullptr);
    return result;
  }

 private:
  absl::Status SetThreads(int threads) {
    session_.reset();
    backend_ = std::make_unique<engine::CpuBackend>(engine::CpuBackendOptions{threads, 128});
    ASSIGN_OR_RETURN(session_, EvoPressSession::Create(model_, *backend_, recipe_, targets_,
                                                       calibration_, threads, &store_,
                                                       /*for_parts=*/true));
    threads_ = threads;
    return absl::OkStatus();
  }

  engine::LlamaModel model_;
  CalibrationSet calibration_;
  v1::Recipe recipe_;
  std::vector<ModelTarget> targets_;
  int threads_ = 0;
  std::unique_ptr<engine::CpuBackend> backend_;
  ForwardingStore store_;
  std::unique_ptr<EvoPressSession> session_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ModelPartRunner>> ModelPartRunner::Create(
    const std::string& model_path, bool gguf, const v1::Recipe& recipe, const RunOptions& options,
    EventSink& events, const CancelToken& cancel) {
  if (!(recipe.stages_size() == 1 && recipe.stages(0).has_evopress() &&
        recipe.has_calibration())) {
    return absl::InvalidArgumentError(
        "recipe: only a calibrated evopress stage is computed in parts");
  }
  EmitLog(events, "info", absl::StrCat("part runner: loading ", model_path));
  auto runner = std::make_unique<EvoPressPartRunner>();
  RETURN_IF_ERROR(runner->Init(model_path, gguf, recipe, options));
  if (cancel.cancelled()) return absl::CancelledError("job cancelled");
  return std::unique_ptr<ModelPartRunner>(std::move(runner));
}

absl::StatusOr<std::string> RunModelRecipe(const std::string& model_path, bool gguf,
                                           const v1::Recipe& recipe, const std::string& out_dir,
                                           const RunOptions& options, EventSink& events,
                                           CancelToken& cancel) {
  return ModelJob(model_path, gguf, recipe, out_dir, options, events, cancel).Run();
}

}  // namespace compressd
