// CreatePartRunner (job.h): the runner of an evopress stage's parts.
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/nn/backend_factory.h"
#include "workers/engine/pipeline/evopress_session.h"
#include "workers/engine/pipeline/job.h"
#include "workers/engine/pipeline/job_plan.h"
#include "workers/engine/pipeline/model_inputs.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

// A CheckpointStore that forwards to another, set per part.
class ForwardingStore : public CheckpointStore {
 public:
  void set(CheckpointStore* target) { target_ = target; }
  absl::Status Put(const std::string& name, const std::string& bytes) override {
    if (target_ == nullptr)
      return absl::FailedPreconditionError("no checkpoint store for the part");
    return target_->Put(name, bytes);
  }
  absl::StatusOr<std::string> Get(const std::string& name) override {
    if (target_ == nullptr)
      return absl::FailedPreconditionError("no checkpoint store for the part");
    return target_->Get(name);
  }

 private:
  CheckpointStore* target_ = nullptr;
};

// The job worker's thread count named in a part's payload, or 0.
int PayloadThreads(const std::string& payload) {
  const json p = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (p.is_object() && p.contains("threads") && p["threads"].is_number_integer()) {
    const int threads = p["threads"].get<int>();
    if (threads >= 1 && threads <= 1024) return threads;
  }
  return 0;
}

class EvoPressPartRunner : public PartRunner {
 public:
  EvoPressPartRunner(const RecipeSpec& recipe, std::string device)
      : recipe_(recipe), device_(std::move(device)) {}

  absl::Status Init(const JobPlan& plan, const RunOptions& options, EventSink& events) {
    RETURN_IF_ERROR(LoadModelInputs(plan, recipe_, options,
                                    LoadWhat{/*eval_sets=*/false, true, true}, events, &in_));
    return SetThreads(CalibrationThreads(recipe_.recipe, options));
  }

  absl::StatusOr<std::string> Run(const WorkPart& part, CheckpointStore* store, EventSink& events,
                                  const CancelToken& cancel) override {
    // The job's worker names its thread count: compute with as many, so the
    // result is bit-identical to its own.
    const int threads = PayloadThreads(part.payload);
    if (threads > 0 && threads != threads_) RETURN_IF_ERROR(SetThreads(threads));
    store_.set(store);
    absl::StatusOr<std::string> result = session_->RunPart(part.payload, events, cancel);
    store_.set(nullptr);
    return result;
  }

 private:
  absl::Status SetThreads(int threads) {
    session_.reset();
    ASSIGN_OR_RETURN(const engine::Compute compute, engine::ParseCompute(recipe_.recipe.compute()));
    ASSIGN_OR_RETURN(backend_, engine::CreateBackend(device_, threads, compute));
    ASSIGN_OR_RETURN(session_, EvoPressSession::Create(in_.model, *backend_, recipe_, in_.targets,
                                                       *in_.calibration, threads, &store_,
                                                       /*for_parts=*/true));
    threads_ = threads;
    return absl::OkStatus();
  }

  const RecipeSpec recipe_;
  const std::string device_;
  ModelInputs in_;
  int threads_ = 0;
  std::unique_ptr<engine::Backend> backend_;
  ForwardingStore store_;
  std::unique_ptr<EvoPressSession> session_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PartRunner>> CreatePartRunner(const std::string& model_path,
                                                             const RecipeSpec& recipe,
                                                             const RunOptions& options,
                                                             EventSink& events,
                                                             const CancelToken& cancel) {
  if (!(recipe.recipe.stages_size() == 1 && recipe.evopress && recipe.calibrated)) {
    return absl::InvalidArgumentError(
        "recipe: only a calibrated evopress stage is computed in parts");
  }
  ASSIGN_OR_RETURN(ModelInput input, ResolveModelInput(model_path));
  EmitLog(events, "info", absl::StrCat("part runner: loading ", input.path));
  auto runner = std::make_unique<EvoPressPartRunner>(recipe, options.device);
  RETURN_IF_ERROR(GuardEngineCall(model_path, [&]() -> absl::Status {
    return runner->Init(PlanJob(recipe, input), options, events);
  }));
  if (cancel.cancelled()) return absl::CancelledError("job cancelled");
  return std::unique_ptr<PartRunner>(std::move(runner));
}

}  // namespace compressd::engine
