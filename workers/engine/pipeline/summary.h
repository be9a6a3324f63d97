// The one builder of a job's summary JSON (returned by RunJob, stored by the
// server as the job's summary_json, printed by `compress-worker run`). Both
// job paths fill a JobSummary; sections a path does not produce stay absent.
//
//   format          output format ("none" for an evaluate-only job)
//   model           what was loaded (input format, shape, parameters)
//   evaluation      perplexity per set, dense and compressed; KL / top-1
//   layers, totals  per-layer results and their sums (with stages)
//   calibration     the calibration set (calibrated jobs)
//   export          the exporter's report (GGUF / GPTQ) and the reload check
//                   (reload_gate.h)
//   evopress        the search (evopress jobs)
//   timing_seconds  wall time per phase and in total
//   peak_rss_bytes  the process's peak resident memory (model path)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calib_data.h"

namespace compressd::engine {

struct CompressionTotals {
  uint64_t targeted_tensors = 0;
  uint64_t targeted_parameters = 0;
  uint64_t zeros = 0;
  uint64_t model_parameters = 0;
  std::optional<double> bits_sum;        // sum of bits x parameters (model path)
  std::optional<uint64_t> output_bytes;  // bytes written (model path)
};

struct JobSummary {
  std::string format;
  nlohmann::json model;
  std::optional<nlohmann::json> evaluation;
  std::optional<nlohmann::json> layers;
  std::optional<CompressionTotals> totals;
  std::optional<nlohmann::json> calibration;
  std::optional<nlohmann::json> export_report;
  std::optional<nlohmann::json> evopress;
  std::optional<nlohmann::json> experts;  // ExpertsJson
  std::vector<std::pair<std::string, double>> timing;  // phase -> seconds, "total" last
  bool peak_rss = false;                               // report the process's peak RSS
  std::string compute;  // "bf16" for a recipe's compute: bf16 (written only then)

  std::string Dump() const;
};

// The summary's calibration section.
nlohmann::json CalibrationJson(const CalibrationSet& c, const v1::Calibration& recipe,
                               int resumed_blocks);

// The summary's experts section (mixture-of-experts models) from the layers
// section: every compressed expert ("model.layers.3.mlp.experts.5") with its
// calibration tokens, its Hessian ("routed": its own tokens; "pooled": the
// layer's, below calibration.min_expert_tokens) and its compressed linears,
// then the pooled ones' names. nullopt when no layer is an expert's.
std::optional<nlohmann::json> ExpertsJson(const nlohmann::json& layers);

// The process's peak resident set size in bytes (getrusage).
uint64_t PeakRssBytes();

}  // namespace compressd::engine
