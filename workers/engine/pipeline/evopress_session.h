// The state an evopress stage derives from a job's model, recipe and
// calibration set (EvoPressSession: search space, initial configuration,
// levels database, candidate evaluator), built the same way by the job's own
// worker (evopress_stage.h) and by every worker that computes a part of the
// stage (part_runner.cc), so a part's result does not depend on where it ran.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/evopress/search.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/fanout.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

// The search space's mode for the recipe's.
evopress::Mode SearchMode(EvoMode mode);

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

// What an evopress stage derives from the job's model, recipe and
// calibration set (search space, initial configuration, levels database,
// evaluator), rebuilt the same way by every worker that computes a part of
// the stage (fanout.h). Parts, by name and JSON payload:
// Every payload also has "threads", the job worker's compute threads: a
// worker computing the part uses as many, so results are bit-identical.
//   evopress/level/<level name>       {"kind": "level", "level": index}
//       one sequential pass of the levels database (BuildSequentialLevelsDb
//       at that level) into the database's store (RunOptions::levels_db);
//       result: {"solved", "forward_s", "hessian_s", "solve_s", "store_s"};
//   evopress/eval/gGGGG/sS/cCCC-<hash>  {"kind": "eval", "generation", "step",
//       "configs": [[level, ...], ...], "base": [...]}
//       the fitness of each configuration on the step's windows with `base`
//       as the prefix-reuse base; result: {"fitness": [...] (null for a
//       non-finite value), "tokens", "candidates", "block_tokens",
//       "block_tokens_saved"}.
// The result of a part does not depend on where it ran (same windows, same
// micro-batches, same kernels at the same thread count). Not thread-safe.
class EvoPressSession {
 public:
  // `recipe` has an evopress stage (INVALID_ARGUMENT otherwise).
  // `model` and `backend` must outlive the session; the levels database
  // lives in `db_store` (null for drop mode; else required). `for_parts`:
  // the session only computes parts for another worker's search, so the
  // search's start (drop mode's block-influence pass) is not computed.
  static absl::StatusOr<std::unique_ptr<EvoPressSession>> Create(
      const engine::LlamaModel& model, engine::Backend& backend, const RecipeSpec& recipe,
      const std::vector<ModelTarget>& targets, const CalibrationSet& calibration, int threads,
      CheckpointStore* db_store, bool for_parts = false);

  const evopress::SearchSpace& space() const { return space_; }
  const evopress::Config& initial() const { return initial_; }
  // Drop mode with start "score": each unit's block influence (empty otherwise).
  const std::vector<double>& drop_scores() const { return drop_scores_; }
  evopress::LevelsDb* db() { return db_ ? &*db_ : nullptr; }
  evopress::CandidateEvaluator& evaluator() { return *evaluator_; }
  const std::vector<int32_t>& stream() const { return stream_; }
  const evopress::SearchOptions& search_options() const { return search_options_; }
  const std::string& db_fingerprint() const { return db_fingerprint_; }
  const evopress::LevelsDbSpec& db_spec() const { return db_spec_; }
  // The search checkpoint's fingerprint (database, stage, stream, units).
  std::string SearchFingerprint() const;

  // Builds the levels database (sequential build: the level indices in
  // `levels`, empty: every level; dense_inputs: everything) here; drop
  // mode: nothing.
  absl::StatusOr<evopress::DbBuildStats> BuildDb(const std::set<int>& levels, EventSink& events,
                                                 const CancelToken& cancel);
  // Sequential build: the level indices with entries missing (read from the
  // level manifests); empty otherwise.
  absl::StatusOr<std::vector<int>> MissingLevels();
  // The part of `payload` (see the class comment). INVALID_ARGUMENT for a
  // payload this session cannot compute.
  absl::StatusOr<std::string> RunPart(const std::string& payload, EventSink& events,
                                      const CancelToken& cancel);
  // A StepFitness that splits each step's pool over the workers of `fanout`
  // (one part per connected worker, at most one per candidate). Accumulates the
  // evaluation counters of every part in stats().
  evopress::StepFitness FannedStepFitness(Fanout& fanout, const CancelToken& cancel);
  // Evaluations made through FannedStepFitness (here and elsewhere).
  const evopress::EvaluatorStats& fanned_stats() const { return fanned_stats_; }

 private:
  EvoPressSession(const engine::LlamaModel& model, engine::Backend& backend, int threads)
      : model_(model), backend_(backend), threads_(threads) {}

  const engine::LlamaModel& model_;
  engine::Backend& backend_;
  const int threads_;
  v1::EvoPressStage stage_;
  std::vector<std::vector<int32_t>> windows_;  // calibration windows (database)
  std::vector<int32_t> stream_;                // calibration stream (fitness windows)
  evopress::SearchSpace space_;
  evopress::Config initial_;
  std::vector<double> drop_scores_;
  evopress::LevelsDbSpec db_spec_;
  std::string db_fingerprint_;
  std::optional<evopress::LevelsDb> db_;
  evopress::SearchOptions search_options_;
  std::unique_ptr<evopress::CandidateEvaluator> evaluator_;
  std::pair<int, int> windows_step_{-1, -1};  // (generation, step) of the evaluator's windows
  evopress::EvaluatorStats fanned_stats_;
};

}  // namespace compressd::engine
