// Writing the compressed model of a model job (model_job.h) in the recipe's
// output format:
//   hf_safetensors  config.json + model.safetensors in F32 (export/llama_export.h);
//   gptq            GPTQ-packed int4/int8 tensors (export/gptq_export.h), v2
//                   checkpoint format when a grid is asymmetric;
//   gguf            model.gguf for llama.cpp (export/gguf_export.h), quantized
//                   tensors encoded exactly from their grids where a ggml type
//                   fits, the rest at output.gguf's types.
// An HF output of an HF input also gets the input's tokenizer and generation
// files; an HF output of a GGUF input gets tokenizer.json and
// tokenizer_config.json converted from the GGUF's tokenizer (a warning, not an
// error, when it has none).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/pipeline/hf_block_stream.h"
#include "workers/engine/pipeline/job_plan.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

struct ExportRequest {
  engine::LlamaModel* model = nullptr;  // not modified (the writers take it mutable)
  const std::map<std::string, engine::QuantizedTensor>* quantized = nullptr;  // by HF tensor name
  const std::vector<ModelTarget>* targets = nullptr;
  ModelInput input;
  std::string out_dir;
};

// Writes the model; returns the exporter's report for the summary (null for
// hf_safetensors). Errors from the writers as they come.
absl::StatusOr<nlohmann::json> ExportModel(const ExportRequest& request, const RecipeSpec& recipe,
                                           EventSink& events);
// The files an HF output carries beside its weights (ExportModel writes them
// too): the tokenizer converted from a GGUF input, or an HF input's tokenizer
// and generation files copied.
// INVALID_ARGUMENT when a model of `config` cannot be written in the recipe's
// output format (its family's checks; a packed format's own limits): run
// before any work.
absl::Status CheckOutputExportable(const RecipeSpec& spec, const LlamaConfig& config);

absl::Status ExportSideFiles(const ModelInput& input, const std::string& out_dir,
                             EventSink& events);

// The GGUF writer's options from the recipe's output.gguf and the targets.
GgufExportOptions GgufOptionsFor(const RecipeSpec& recipe, const std::vector<ModelTarget>& targets);
// The summary's export report of a GGUF output: tensors per type, how many
// were encoded exactly from their quantization grid, and each tensor's type.
nlohmann::json GgufReportJson(const GgufExportReport& report);

// The GPTQ writer's options from the recipe (damp_percent, true_sequential);
// the format is chosen from the grids (gptq_v2 for an asymmetric one).
GptqExportOptions GptqOptionsFor(const RecipeSpec& recipe);
// The GGUF a GGUF output copies its general.* and tokenizer.* keys from: the
// input GGUF, or for a Hugging Face input its tokenizer.json converted
// (export/gguf_tokenizer_source.h; NOT_FOUND without one, UNIMPLEMENTED for a
// pre-tokenizer llama.cpp has no name for).
// `vocab` <= 0: the tokenizer's own size (a check before the model is read).
// Says what it converted on `events` when given.
absl::StatusOr<std::unique_ptr<engine::GgufFile>> GgufMetadataSource(const ModelInput& input,
                                                                     int32_t vocab,
                                                                     EventSink* events);
// The summary's export report of a GPTQ output.
nlohmann::json GptqReportJson(const GptqExportStats& stats);
// The summary's export report of an spqr output: modules, outliers, and the
// exact bits per parameter of the SpQR modules.
nlohmann::json SpqrReportJson(const SpqrExportStats& stats);

// The output of a block-at-a-time job (job_plan.h kBlockStream), written as
// its blocks finish (hf_block_stream.h): the same files and export report as
// ExportModel for the same weights. Not thread-safe.
class StreamedExport {
 public:
  // `source` and `result` must outlive the export; `events` gets the log of
  // a tokenizer converted for a GGUF output.
  static absl::StatusOr<std::unique_ptr<StreamedExport>> Create(
      const ModelStream& source, const RecipeSpec& spec, const std::vector<ModelTarget>& targets,
      const ModelInput& input, const std::string& out_dir, CompressionResult* result,
      EventSink& events);

  // The stream the calibrated pipeline reads blocks from and hands them back to.
  BlockStream& blocks() { return *blocks_; }
  // Every block done: the rest of the output and its side files; the export
  // report as ExportModel's (null for hf_safetensors).
  absl::StatusOr<nlohmann::json> Finish(EventSink& events);

 private:
  StreamedExport(const RecipeSpec& spec, ModelInput input, std::string out_dir)
      : spec_(spec), input_(std::move(input)), out_dir_(std::move(out_dir)) {}

  const RecipeSpec& spec_;
  const ModelInput input_;
  const std::string out_dir_;
  std::unique_ptr<HfBlockStream> hf_;
  std::unique_ptr<GptqBlockStream> gptq_;
  std::unique_ptr<GgufBlockStream> gguf_;
  std::unique_ptr<SpqrBlockStream> spqr_;
  BlockStream* blocks_ = nullptr;
};

// Total bytes of the regular files under `dir`.
uint64_t DirectoryBytes(const std::string& dir);

}  // namespace compressd::engine
