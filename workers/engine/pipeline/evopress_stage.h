// An evopress recipe (recipe.proto EvoPressStage, the recipe's only stage)
// inside a model job (model_job.h), in place of the calibration pipeline.
// RunEvoPress takes four named steps:
//   1. session: the search space of the recipe's targets and the initial
//      configuration (evopress_session.h; its random choices, for fractional
//      targets and drop mode, from the stage's seed);
//   2. database (sparsity / bits): the levels database on the calibration
//      windows (levels_db.h; database "sequential", the default: one
//      CompressCalibrated pass per level; "dense_inputs": the paper's
//      layer-wise database on the dense model's inputs), kept in
//      RunOptions::levels_db (compress-worker run --checkpoint-dir: a second
//      run with that directory reuses it; a leased task: the model's shared
//      checkpoints on the server, so a retried attempt and every later job
//      on the same model and calibration set reuse it), else
//      RunOptions::checkpoints, else a temporary directory removed
//      afterwards; with RunOptions::fanout (leased tasks) each missing
//      level is a part computed by any connected worker;
//   3. search (search.h): fitness windows drawn from the calibration set's
//      token stream, seq_len tokens each, checkpointed per generation to
//      RunOptions::checkpoints; with a fan-out, each selection step's
//      offspring are split into parts;
//   4. stitch: the model rebuilt from the best configuration (evaluator.h
//      StitchModel), with the codes of every quantized layer (bits mode) for
//      exact GPTQ / GGUF export, and each unit's result recorded.
// The per-unit configuration goes to <out_dir>/evopress_config.json and, with
// the fitness curve, database and timing figures, to the returned JSON (the
// job summary's "evopress" section).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

// What the stage works on; every pointer must outlive the call.
struct EvoPressJob {
  engine::LlamaModel* model = nullptr;  // replaced by the stitched model
  engine::Backend* backend = nullptr;
  const RecipeSpec* recipe = nullptr;  // with an evopress stage
  const std::vector<ModelTarget>* targets = nullptr;
  const CalibrationSet* calibration = nullptr;
  int threads = 1;
};

// Runs the stage, fills `result`'s layers, totals, quantized codes and
// timings, and returns the summary section. INVALID_ARGUMENT for targets that
// are not block linears or a target outside the levels; CANCELLED when
// `cancel` is set; solver and store errors as they come.
absl::StatusOr<nlohmann::json> RunEvoPress(const EvoPressJob& job, const RunOptions& options,
                                           const std::string& out_dir, EventSink& events,
                                           const CancelToken& cancel, CompressionResult* result);

}  // namespace compressd::engine
