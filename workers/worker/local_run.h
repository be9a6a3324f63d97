// `compress-worker run`: runs a recipe on a local model (directory or .gguf) without a
// server, through the same RunJob path a leased task takes. Events go to
// stderr as lines, the JSON summary to stdout.
#pragma once

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd {

// Writes each event as one line, e.g. "[prune 3/14] model.layers.0.mlp.up_proj".
// Thread-safe (one fprintf per event).
class LineEventSink : public engine::EventSink {
 public:
  explicit LineEventSink(std::FILE* out) : out_(out) {}
  void Emit(const v1::JobEvent& event) override;

 private:
  std::FILE* out_;
};

// Parses the recipe file (YAML or JSON), applies defaults, validates and
// compiles it (PrepareRecipe), runs.
// A non-empty `checkpoint_dir` keeps the job's checkpoints there
// (DirCheckpointStore), so running the same command again resumes; an
// evopress stage also keeps its levels database there (RunOptions::levels_db).
// `whole_model` loads the model whole where the plan would stream its blocks
// (RunOptions::whole_model). `memory_budget_bytes` 0: the machine's default
// (DefaultMemoryBudgetBytes). `solver`: where the layer solves run (--device;
// null: the CPU).
absl::Status RunLocal(const std::string& model_dir, const std::string& recipe_path,
                      const std::string& out_dir, const std::string& checkpoint_dir = "",
                      bool whole_model = false, uint64_t memory_budget_bytes = 0,
                      engine::SolverBackend* solver = nullptr);

}  // namespace compressd
