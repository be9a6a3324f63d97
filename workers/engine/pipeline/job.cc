// RunJob (job.h): plan once, then the plan's path.
#include "workers/engine/pipeline/job.h"

#include <filesystem>
#include <new>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/pipeline/job_plan.h"
#include "workers/engine/pipeline/model_job.h"
#include "workers/engine/pipeline/tensor_job.h"

namespace compressd::engine {

absl::Status GuardEngineCall(const std::string& what, const std::function<absl::Status()>& fn) {
  // The engine's own code reports errors as Status; this boundary also turns
  // anything thrown by the standard library into a Status instead of aborting.
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

absl::StatusOr<std::string> RunJob(const std::string& model_path, const RecipeSpec& recipe,
                                   const std::string& out_dir, EventSink& events,
                                   CancelToken& cancel, const RunOptions& options) {
  ASSIGN_OR_RETURN(ModelInput input, ResolveModelInput(model_path));
  std::error_code ec;
  if (std::filesystem::exists(out_dir, ec) &&
      std::filesystem::equivalent(model_path, out_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_dir, ": the output directory must differ from the model directory"));
  }
  JobPlan plan = PlanJob(recipe, input);
  if (options.whole_model && plan.path == JobPath::kBlockStream) plan.path = JobPath::kModel;
  std::string summary;
  RETURN_IF_ERROR(GuardEngineCall(model_path, [&]() -> absl::Status {
    absl::StatusOr<std::string> r =
        plan.path == JobPath::kTensorByTensor
            ? RunTensorJob(input.path, recipe, out_dir, events, cancel)
            : RunModelJob(plan, recipe, out_dir, options, events, cancel);
    if (!r.ok()) return r.status();
    summary = *std::move(r);
    return absl::OkStatus();
  }));
  return summary;
}

}  // namespace compressd::engine
