#include "workers/worker/local_run.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "common/status_macros.h"
#include "workers/engine/pipeline/job.h"
#include "workers/engine/runtime/checkpoint.h"

namespace compressd {

void LineEventSink::Emit(const v1::JobEvent& event) {
  std::string line;
  if (event.has_progress()) {
    const v1::Progress& p = event.progress();
    line = absl::StrCat("[", p.stage(), " ", p.current(), "/", p.total(), "] ", p.message());
  } else if (event.has_metric()) {
    const v1::MetricPoint& m = event.metric();
    line = absl::StrFormat("metric %s=%.6g", m.name(), m.value());
    // Labels in name order (protobuf maps have none): "layer=...", "dataset=... model=...".
    const std::map<std::string, std::string> labels(m.labels().begin(), m.labels().end());
    for (const auto& [key, value] : labels) absl::StrAppend(&line, " ", key, "=", value);
  } else if (event.has_log()) {
    line = absl::StrCat(event.log().level(), ": ", event.log().message());
  } else {
    return;
  }
  std::fprintf(out_, "%s\n", line.c_str());
}

absl::Status RunLocal(const std::string& model_dir, const std::string& recipe_path,
                      const std::string& out_dir, const std::string& checkpoint_dir,
                      bool whole_model, uint64_t memory_budget_bytes,
                      engine::SolverBackend* solver) {
  ASSIGN_OR_RETURN(v1::Recipe parsed, ParseRecipeFile(recipe_path));
  ASSIGN_OR_RETURN(const RecipeSpec recipe, PrepareRecipe(std::move(parsed)));
  LineEventSink sink(stderr);
  engine::CancelToken cancel;
  engine::DirCheckpointStore checkpoints(checkpoint_dir);
  engine::RunOptions options;
  if (!checkpoint_dir.empty()) options.checkpoints = options.levels_db = &checkpoints;
  options.whole_model = whole_model;
  options.solver = solver;
  options.memory_budget_bytes =
      memory_budget_bytes > 0 ? memory_budget_bytes : engine::DefaultMemoryBudgetBytes();
  ASSIGN_OR_RETURN(std::string summary,
                   engine::RunJob(model_dir, recipe, out_dir, sink, cancel, options));
  std::printf("%s\n", summary.c_str());
  return absl::OkStatus();
}

}  // namespace compressd
