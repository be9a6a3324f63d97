#include "workers/engine/pipeline/model_export.h"

#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/recipe_w8a8.h"
#include "common/status_macros.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/export/gguf_tokenizer_source.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/packed_layer.h"
#include "workers/engine/model/gguf/ggml_types.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/tokenizer/gguf_tokenizer.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Small files of an HF model directory that belong with the exported model.
constexpr const char* kSideFiles[] = {"tokenizer.json",
                                      "tokenizer_config.json",
                                      "special_tokens_map.json",
                                      "generation_config.json",
                                      "vocab.json",
                                      "merges.txt"};

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

// An HF export of a GGUF model: the GGUF's tokenizer as tokenizer.json and
// tokenizer_config.json, so the output directory loads in transformers alone.
// A GGUF without a tokenizer, or with one that has no tokenizer.json form,
// still exports its weights (with a warning saying why there is none).
absl::Status WriteTokenizerFromGguf(const std::string& gguf_path, const std::string& out_dir,
                                    EventSink& events) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::GgufFile> source, engine::GgufFile::Open(gguf_path));
  if (!source->HasKey("tokenizer.ggml.model")) {
    EmitLog(events, "warning", "the GGUF has no tokenizer: the HF output has no tokenizer files");
    return absl::OkStatus();
  }
  absl::StatusOr<engine::HfTokenizerFiles> converted = engine::HfTokenizerFilesFromGguf(*source);
  if (!converted.ok()) {
    EmitLog(events, "warning",
            absl::StrCat("no tokenizer files in the HF output: ", converted.status().message()));
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "tokenizer.json").string(),
                                      converted->tokenizer_json));
  RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "tokenizer_config.json").string(),
                                      converted->tokenizer_config_json));
  EmitLog(events, "info",
          "wrote tokenizer.json and tokenizer_config.json from the GGUF's tokenizer");
  return absl::OkStatus();
}

std::map<std::string, const engine::QuantizedTensor*> QuantizedMap(
    const std::map<std::string, engine::QuantizedTensor>& quantized) {
  std::map<std::string, const engine::QuantizedTensor*> map;
  for (const auto& [name, q] : quantized) map[name] = &q;
  return map;
}

absl::StatusOr<json> ExportGptq(const ExportRequest& r, const RecipeSpec& spec, EventSink& events) {
  GptqExportOptions options = GptqOptionsFor(spec);
  // v1 ("gptq") stores zero - 1 and cannot hold an asymmetric zero of 0.
  for (const auto& [name, q] : *r.quantized) {
    if (!q.grid.symmetric) options.format = GptqCheckpointFormat::kGptqV2;
  }
  ASSIGN_OR_RETURN(GptqExportStats stats,
                   WriteGptqLlama(*r.model, QuantizedMap(*r.quantized), r.out_dir, options));
  EmitLog(events, "info",
          absl::StrCat("wrote a ", OutputFormatName(spec.format), " model (",
                       stats.quantized_tensors, " packed tensors) to ", r.out_dir));
  return GptqReportJson(stats);
}

absl::StatusOr<json> ExportSpqr(const ExportRequest& r, EventSink& events) {
  engine::LlamaModel& model = *r.model;
  ASSIGN_OR_RETURN(std::unique_ptr<SpqrWriter> writer, SpqrWriter::Create(model.config, r.out_dir));
  for (int i = 0; i < static_cast<int>(model.blocks.size()); ++i) {
    const std::vector<NamedTensor> tensors = BlockTensors(model.config, i, &model.blocks[i]);
    std::map<std::string, const engine::QuantizedTensor*> quantized;
    for (const NamedTensor& t : tensors) {
      auto it = r.quantized->find(t.name);
      if (it != r.quantized->end()) quantized[t.name] = &it->second;
    }
    RETURN_IF_ERROR(writer->WriteBlock(i, tensors, quantized));
  }
  for (const NamedTensor& t : NamedTensors(&model)) {
    if (absl::StartsWith(t.name, "model.layers.")) continue;
    RETURN_IF_ERROR(writer->WriteDense(t.name, 0, t.tensor->data, t.tensor->numel()));
  }
  RETURN_IF_ERROR(writer->Finish());
  EmitLog(events, "info",
          absl::StrCat("wrote an spqr model (", writer->stats().spqr_tensors, " SpQR modules, ",
                       writer->stats().outliers, " outliers) to ", r.out_dir));
  return SpqrReportJson(writer->stats());
}

absl::StatusOr<json> ExportGguf(const ExportRequest& r, const RecipeSpec& spec, EventSink& events) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::GgufFile> source,
                   GgufMetadataSource(r.input, r.model->config.vocab, &events));
  const GgufExportOptions options = GgufOptionsFor(spec, *r.targets);
  std::error_code ec;
  fs::create_directories(r.out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(r.out_dir, ": mkdir: ", ec.message()));
  const std::string file = (fs::path(r.out_dir) / "model.gguf").string();
  ASSIGN_OR_RETURN(
      GgufExportReport report,
      WriteGgufLlama(*r.model, source.get(), QuantizedMap(*r.quantized), options, file));
  EmitLog(events, "info", absl::StrCat("wrote a GGUF model to ", file));
  return GgufReportJson(report);
}

}  // namespace

absl::StatusOr<std::unique_ptr<engine::GgufFile>> GgufMetadataSource(const ModelInput& input,
                                                                     int32_t vocab,
                                                                     EventSink* events) {
  if (input.gguf) return engine::GgufFile::Open(input.path);
  ASSIGN_OR_RETURN(std::unique_ptr<engine::GgufFile> file,
                   engine::TokenizerGgufFromHf(input.path, vocab));
  if (events == nullptr) return file;
  const absl::StatusOr<std::string> pre = file->GetString("tokenizer.ggml.pre");
  EmitLog(*events, "info",
          absl::StrCat("GGUF tokenizer converted from ", input.path,
                       "/tokenizer.json (tokenizer.ggml.pre \"", pre.ok() ? *pre : "", "\")"));
  return file;
}

GgufExportOptions GgufOptionsFor(const RecipeSpec& spec, const std::vector<ModelTarget>& targets) {
  GgufExportOptions options;
  if (spec.gguf.target) options.target_type = static_cast<engine::GgmlType>(*spec.gguf.target);
  options.other_type = static_cast<engine::GgmlType>(spec.gguf.other);
  for (const ModelTarget& t : targets) options.targets.insert(t.tensor);
  return options;
}

json GgufReportJson(const GgufExportReport& report) {
  std::map<std::string, int> by_type;
  int exact = 0;
  json tensors = json::array();
  for (const GgufTensorReport& t : report.tensors) {
    const std::string type = engine::GgmlTypeName(t.type);
    ++by_type[type];
    exact += t.exact_from_grid;
    json entry = {{"name", t.gguf_name},
                  {"type", type},
                  {"exact_from_grid", t.exact_from_grid},
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

GptqExportOptions GptqOptionsFor(const RecipeSpec& spec) {
  GptqExportOptions options;
  if (spec.format == OutputFormat::kCompressedTensors) {
    options.layout = PackedLayout::kCompressedTensors;
  }
  for (const v1::Stage& s : spec.recipe.stages()) {
    if (s.has_gptq()) options.damp_percent = s.gptq().percdamp();
  }
  options.true_sequential = spec.recipe.calibration().true_sequential();
  if (ActivationStage(spec.recipe) >= 0) options.activation_bits = 8;
  return options;
}

json SpqrReportJson(const SpqrExportStats& stats) {
  const double bits = stats.spqr_params > 0 ? static_cast<double>(stats.spqr_bits) /
                                                  static_cast<double>(stats.spqr_params)
                                            : 0.0;
  return json{{"spqr_tensors", stats.spqr_tensors}, {"dense_tensors", stats.dense_tensors},
              {"outliers", stats.outliers},         {"spqr_parameters", stats.spqr_params},
              {"spqr_bits_per_parameter", bits},    {"weight_bytes", stats.file_bytes}};
}

json GptqReportJson(const GptqExportStats& stats) {
  return json{{"quantized_tensors", stats.quantized_tensors},
              {"dense_tensors", stats.dense_tensors},
              {"desc_act", stats.desc_act},
              {"max_abs_diff_fp16_scales", stats.max_abs_diff}};
}

absl::StatusOr<json> ExportModel(const ExportRequest& r, const RecipeSpec& spec,
                                 EventSink& events) {
  json report;
  switch (spec.format) {
    case OutputFormat::kGguf:
      return ExportGguf(r, spec, events);  // the GGUF carries its tokenizer
    case OutputFormat::kGptq:
    case OutputFormat::kCompressedTensors: {
      ASSIGN_OR_RETURN(report, ExportGptq(r, spec, events));
      break;
    }
    case OutputFormat::kSpqr: {
      ASSIGN_OR_RETURN(report, ExportSpqr(r, events));
      break;
    }
    case OutputFormat::kHfSafetensors: {
      ASSIGN_OR_RETURN(const DType dtype, ParseDType(spec.hf_dtype));
      RETURN_IF_ERROR(WriteHfLlama(*r.model, r.out_dir, dtype));
      EmitLog(events, "info",
              absl::StrCat("wrote an HF safetensors model (", spec.hf_dtype, ") to ", r.out_dir));
      break;
    }
  }
  RETURN_IF_ERROR(ExportSideFiles(r.input, r.out_dir, events));
  return report;
}

absl::Status CheckOutputExportable(const RecipeSpec& spec, const LlamaConfig& config) {
  if (spec.format == OutputFormat::kGguf) return CheckGgufExportable(config);
  if (spec.format == OutputFormat::kSpqr) {
    std::vector<int64_t> stat_groups;  // the stage's and any override's
    for (const v1::Stage& s : spec.recipe.stages()) {
      if (s.has_spqr()) stat_groups.push_back(s.spqr().stat_group());
    }
    for (const v1::LayerOverride& o : spec.recipe.overrides()) {
      if (o.params().has_spqr()) stat_groups.push_back(o.params().spqr().stat_group());
    }
    return CheckSpqrExportable(config, stat_groups);
  }
  RETURN_IF_ERROR(CheckHfExportable(config));
  if (spec.format == OutputFormat::kHfSafetensors) return absl::OkStatus();
  bool symmetric = true;  // the grids the stages quantize on
  for (const v1::Stage& s : spec.recipe.stages()) {
    if (s.has_gptq()) symmetric &= !s.gptq().grid().asymmetric();
    if (s.has_rtn()) symmetric &= !s.rtn().grid().asymmetric();
    if (s.has_sparsegpt()) symmetric &= !s.sparsegpt().quantize().asymmetric();
  }
  return gptq_export_internal::CheckPackable(config, GptqOptionsFor(spec).layout, symmetric);
}

absl::Status ExportSideFiles(const ModelInput& input, const std::string& out_dir,
                             EventSink& events) {
  if (input.gguf) return WriteTokenizerFromGguf(input.path, out_dir, events);
  return CopySideFiles(input.path, out_dir);
}

absl::StatusOr<std::unique_ptr<StreamedExport>> StreamedExport::Create(
    const ModelStream& source, const RecipeSpec& spec, const std::vector<ModelTarget>& targets,
    const ModelInput& input, const std::string& out_dir, CompressionResult* result,
    EventSink& events) {
  std::unique_ptr<StreamedExport> e(new StreamedExport(spec, input, out_dir));
  switch (spec.format) {
    case OutputFormat::kGguf: {
      std::unique_ptr<engine::GgufFile> metadata;
      if (source.gguf() == nullptr) {
        ASSIGN_OR_RETURN(metadata, GgufMetadataSource(input, source.config().vocab, &events));
      }
      ASSIGN_OR_RETURN(e->gguf_, GgufBlockStream::Create(
                                     source, (fs::path(out_dir) / "model.gguf").string(),
                                     GgufOptionsFor(spec, targets), result, std::move(metadata)));
      e->blocks_ = e->gguf_.get();
      break;
    }
    case OutputFormat::kGptq:
    case OutputFormat::kCompressedTensors:
      RETURN_IF_ERROR(CheckOutputExportable(spec, source.config()));
      e->gptq_ = std::make_unique<GptqBlockStream>(source, out_dir, GptqOptionsFor(spec), result);
      e->blocks_ = e->gptq_.get();
      break;
    case OutputFormat::kSpqr: {
      ASSIGN_OR_RETURN(std::unique_ptr<SpqrWriter> writer,
                       SpqrWriter::Create(source.config(), out_dir));
      e->spqr_ = std::make_unique<SpqrBlockStream>(source, std::move(writer), result);
      e->blocks_ = e->spqr_.get();
      break;
    }
    case OutputFormat::kHfSafetensors: {
      ASSIGN_OR_RETURN(const DType dtype, ParseDType(spec.hf_dtype));
      ASSIGN_OR_RETURN(e->hf_, HfBlockStream::Create(source, out_dir, dtype, result));
      e->blocks_ = e->hf_.get();
      break;
    }
  }
  return e;
}

absl::StatusOr<json> StreamedExport::Finish(EventSink& events) {
  if (gguf_) {
    ASSIGN_OR_RETURN(const GgufExportReport report, gguf_->Finish());
    EmitLog(events, "info", absl::StrCat("wrote a GGUF model to ", report.path));
    return GgufReportJson(report);  // the GGUF carries its own tokenizer
  }
  json report;
  if (gptq_) {
    RETURN_IF_ERROR(gptq_->Finish());
    report = GptqReportJson(gptq_->stats());
    EmitLog(events, "info",
            absl::StrCat("wrote a GPTQ model (", gptq_->stats().quantized_tensors,
                         " packed tensors) to ", out_dir_));
  } else if (spqr_) {
    RETURN_IF_ERROR(spqr_->Finish());
    report = SpqrReportJson(spqr_->stats());
    EmitLog(events, "info",
            absl::StrCat("wrote an spqr model (", spqr_->stats().spqr_tensors, " SpQR modules, ",
                         spqr_->stats().outliers, " outliers) to ", out_dir_));
  } else {
    RETURN_IF_ERROR(hf_->Finish());
    EmitLog(events, "info",
            absl::StrCat("wrote an HF safetensors model (", spec_.hf_dtype, ") to ", out_dir_));
  }
  RETURN_IF_ERROR(ExportSideFiles(input_, out_dir_, events));
  return report;
}

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace compressd::engine
