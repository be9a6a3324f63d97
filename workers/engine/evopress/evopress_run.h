// An evopress recipe (recipe.proto EvoPressStage, the recipe's only stage)
// inside a model job (model_job.cc), in place of the calibration pipeline:
//   1. the search space of the recipe's targets and the initial
//      configuration (search_space.h; its random choices, for fractional
//      targets and drop mode, from the stage's seed);
//   2. sparsity / bits: the levels database on the calibration windows
//      (levels_db.h; stage.database "sequential", the default: one
//      CompressCalibrated pass per level; "dense_inputs": the paper's
//      layer-wise database on the dense model's inputs), kept in
//      RunOptions::levels_db (compress-worker run --checkpoint-dir: a second
//      run with that directory reuses it) or, with none, in a temporary
//      directory removed afterwards;
//   3. the search (search.h) with fitness windows drawn from the calibration
//      set's token stream, seq_len tokens each, checkpointed per generation
//      to the same store;
//   4. the model stitched from the best configuration (evaluator.h
//      StitchModel), with the codes of every quantized layer (bits mode) for
//      exact GPTQ / GGUF export.
// The per-unit configuration goes to <out_dir>/evopress_config.json and, with
// the fitness curve, database and timing figures, to `summary` (the job
// summary's "evopress" section).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model_prune.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/run_context.h"

namespace compressd {

// The one-stage recipe of a sequential levels-database pass at `level`:
// sparsegpt at sparsity `level` (the spec's block size and damping), or gptq
// at `level` bits on the spec's grid; calibration.true_sequential from the
// spec.
v1::Recipe UniformLevelRecipe(const evopress::LevelsDbSpec& spec, double level);

// The sequential build's pass (levels_db.h UniformCompressor): a copy of
// `dense` cut after `blocks` blocks, its units of `space` compressed by
// CompressCalibrated with UniformLevelRecipe on `windows`. Progress events
// of the pass go to `events` as "levels" progress; its per-layer metrics and
// logs are dropped. Every argument is held by reference and must outlive the
// returned function.
evopress::UniformCompressor SequentialCompressor(
    const engine::LlamaModel& dense, engine::Backend& backend, const evopress::SearchSpace& space,
    const evopress::LevelsDbSpec& spec, const std::vector<std::vector<int32_t>>& windows,
    int threads, EventSink& events, const CancelToken& cancel);

// Replaces the units of `model` by their chosen levels and fills `result`'s
// layers, totals, quantized codes and timings. INVALID_ARGUMENT for targets
// that are not block linears or a target outside the levels; CANCELLED when
// `cancel` is set; solver and store errors as they come.
absl::Status RunEvoPress(engine::LlamaModel& model, engine::Backend& backend,
                         const v1::Recipe& recipe, const std::vector<ModelTarget>& targets,
                         const CalibrationSet& calibration, int threads,
                         const RunOptions& options, const std::string& out_dir,
                         EventSink& events, const CancelToken& cancel, CompressionResult* result,
                         nlohmann::json* summary);

}  // namespace compressd
