#include "workers/engine/pipeline/evopress_stage.h"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/calib/layer_stages.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/search.h"
#include "workers/engine/pipeline/evopress_session.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace ep = evopress;

// A directory removed when the object goes away.
class TempDir {
 public:
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  absl::Status Create() {
    std::string tmpl = (fs::temp_directory_path() / "compressd-evopress-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError(absl::StrCat(tmpl, ": cannot create a temporary directory"));
    }
    path_ = tmpl;
    return absl::OkStatus();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The summary entry of one unit at its chosen level, added to the totals.
void RecordUnit(const ep::SearchSpace& space, const ep::Unit& unit, int level,
                const engine::LlamaModel& model,
                const std::map<std::string, engine::QuantizedTensor>& quantized,
                CompressionResult* result) {
  const uint64_t numel = static_cast<uint64_t>(unit.numel);
  json entry = {{"name", unit.name}, {"numel", numel}, {"level", space.levels[level]}};
  uint64_t zeros = 0;
  double bits = 16.0;
  if (space.mode == ep::Mode::kDrop) {
    entry["dropped"] = level == 1;
    zeros = level == 1 ? numel : 0;
  } else {
    const engine::Tensor& t = ep::UnitWeight(model.blocks[unit.block], unit);
    zeros = CountZeros(t.data, static_cast<size_t>(t.numel()));
    auto q = quantized.find(unit.name + ".weight");
    if (q != quantized.end()) bits = BitsPerParameter(q->second);
    entry["tensor"] = unit.name + ".weight";
    entry["shape"] = t.shape;
  }
  entry["zeros"] = zeros;
  entry["sparsity"] = numel ? static_cast<double>(zeros) / numel : 0.0;
  entry["bits"] = bits;
  result->targeted_parameters += numel;
  result->zeros += zeros;
  result->bits_sum += bits * static_cast<double>(numel);
  result->layers.push_back(std::move(entry));
}

json ConfigJson(const ep::SearchSpace& space, const ep::Config& config,
                const v1::EvoPressStage& stage) {
  json units = json::array();
  for (size_t u = 0; u < space.units.size(); ++u) {
    units.push_back({{"name", space.units[u].name},
                     {"group", space.group_names[space.units[u].group]},
                     {"level", space.levels[config[u]]}});
  }
  return {{"mode", stage.mode()},
          {"target", stage.target()},
          {"levels", space.levels},
          {"mean_level", ep::MeanLevel(space, config)},
          {"units", std::move(units)}};
}

// The levels database's store: RunOptions::levels_db, else its
// checkpoints, else (not drop mode) a temporary directory owned by `temp`.
absl::StatusOr<CheckpointStore*> DatabaseStore(const RunOptions& options, EvoMode mode,
                                               TempDir* temp,
                                               std::unique_ptr<DirCheckpointStore>* temp_store) {
  CheckpointStore* store = options.levels_db != nullptr ? options.levels_db : options.checkpoints;
  if (store == nullptr && mode != EvoMode::kDrop) {
    RETURN_IF_ERROR(temp->Create());
    *temp_store = std::make_unique<DirCheckpointStore>(temp->path());
    store = temp_store->get();
  }
  return store;
}

struct DatabaseResult {
  ep::DbBuildStats stats;
  int level_parts = 0;  // levels built as parts (fan-out)
  double seconds = 0;
};

void AddBuildStats(const ep::DbBuildStats& from, ep::DbBuildStats* to) {
  to->forward_s += from.forward_s;
  to->hessian_s += from.hessian_s;
  to->solve_s += from.solve_s;
  to->store_s += from.store_s;
}

// The levels the database still misses, one part each, on every worker.
absl::Status BuildLevelsAsParts(EvoPressSession& session, Fanout& fanout, int threads,
                                EventSink& events, const CancelToken& cancel, DatabaseResult* out) {
  const ep::SearchSpace& space = session.space();
  ASSIGN_OR_RETURN(std::vector<int> missing, session.MissingLevels());
  std::vector<WorkPart> parts;
  for (int l : missing) {
    parts.push_back({absl::StrCat("evopress/level/", session.db_fingerprint().substr(0, 16), "/",
                                  ep::LevelName(space.mode, space.levels[l])),
                     json{{"kind", "level"}, {"level", l}, {"threads", threads}}.dump()});
  }
  out->level_parts = static_cast<int>(parts.size());
  if (parts.empty()) return absl::OkStatus();
  EmitLog(events, "info",
          absl::StrFormat("levels database: %d passes as parts for %d workers", parts.size(),
                          fanout.workers()));
  ASSIGN_OR_RETURN(
      std::vector<std::string> results,
      fanout.Run(
          parts, [&](const WorkPart& p) { return session.RunPart(p.payload, events, cancel); },
          cancel));
  for (const std::string& r : results) {
    const json j = json::parse(r, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return absl::DataLossError("a levels part returned no statistics");
    out->stats.solved += j.value("solved", int64_t{0});
    AddBuildStats({0, 0, j.value("forward_s", 0.0), j.value("hessian_s", 0.0),
                   j.value("solve_s", 0.0), j.value("store_s", 0.0)},
                  &out->stats);
  }
  return absl::OkStatus();
}

// Step 2: the levels database, as parts where a fan-out exists, the rest here.
absl::StatusOr<DatabaseResult> BuildDatabase(EvoPressSession& session, const RunOptions& options,
                                             int threads, EventSink& events,
                                             const CancelToken& cancel) {
  const Clock::time_point t = Clock::now();
  DatabaseResult out;
  if (options.fanout != nullptr) {
    RETURN_IF_ERROR(BuildLevelsAsParts(session, *options.fanout, threads, events, cancel, &out));
  }
  ASSIGN_OR_RETURN(ep::DbBuildStats rest, session.BuildDb({}, events, cancel));
  const int64_t by_parts = out.stats.solved;  // found stored now, built by this job
  out.stats.solved += rest.solved;
  out.stats.reused = rest.reused - by_parts;
  AddBuildStats(rest, &out.stats);
  out.seconds = SecondsSince(t);
  return out;
}

// Step 3: the search, its fitness computed here or split over the fan-out.
absl::StatusOr<ep::SearchResult> Search(EvoPressSession& session, const RunOptions& options,
                                        EventSink& events, const CancelToken& cancel) {
  const ep::SearchOptions& search_options = session.search_options();
  const ep::StepFitness step_fitness =
      options.fanout != nullptr
          ? session.FannedStepFitness(*options.fanout, cancel)
          : ep::LocalStepFitness(session.evaluator(), session.stream(), search_options, cancel);
  return ep::RunSearch(session.space(), session.initial(), step_fitness, session.stream(),
                       search_options, session.SearchFingerprint(), options.checkpoints, events,
                       cancel);
}

// Step 4: the model stitched from `best`, each unit recorded in `result`.
absl::Status Stitch(EvoPressSession& session, const ep::Config& best, engine::LlamaModel* model,
                    CompressionResult* result) {
  const ep::SearchSpace& space = session.space();
  ASSIGN_OR_RETURN(engine::LlamaModel stitched,
                   ep::StitchModel(*model, space, session.db(), best, &result->quantized));
  *model = std::move(stitched);
  for (size_t u = 0; u < space.units.size(); ++u) {
    RecordUnit(space, space.units[u], best[u], *model, result->quantized, result);
  }
  return absl::OkStatus();
}

json SummaryJson(EvoPressSession& session, const v1::EvoPressStage& stage, EvoStart start,
                 const json& config, const ep::SearchResult& search, const DatabaseResult& db,
                 const RunOptions& options, double search_s) {
  const ep::EvaluatorStats es =
      options.fanout != nullptr ? session.fanned_stats() : session.evaluator().stats();
  json summary = {{"config", config},
                  {"fitness", stage.fitness()},
                  {"initial_fitness", search.state.initial_fitness},
                  {"final_fitness", search.state.fitness},
                  {"fitness_curve", search.state.history},
                  {"generations", search.state.generation},
                  {"resumed_generations", search.resumed_generations},
                  {"tokens", search.state.tokens},
                  {"evaluations", es.candidates},
                  {"block_tokens", es.block_tokens},
                  {"block_tokens_saved_by_prefix_reuse", es.block_tokens_saved},
                  {"levels_db",
                   {{"fingerprint", session.db_fingerprint()},
                    {"build", ep::DbBuildName(session.db_spec().build)},
                    {"entries_built", db.stats.solved},
                    {"entries_reused", db.stats.reused},
                    {"parts", db.level_parts}}},
                  {"fanout_workers", options.fanout != nullptr ? options.fanout->workers() : 1},
                  {"start", start == EvoStart::kScore ? "score" : "random"},
                  {"timing_seconds", {{"levels_db", db.seconds}, {"search", search_s}}}};
  if (!session.drop_scores().empty()) {
    json scores = json::object();
    const ep::SearchSpace& space = session.space();
    for (size_t u = 0; u < space.units.size(); ++u) {
      scores[space.units[u].name] = session.drop_scores()[u];
    }
    summary["block_influence"] = std::move(scores);
  }
  return summary;
}

}  // namespace

absl::StatusOr<json> RunEvoPress(const EvoPressJob& job, const RunOptions& options,
                                 const std::string& out_dir, EventSink& events,
                                 const CancelToken& cancel, CompressionResult* result) {
  if (!job.recipe->evopress) return absl::InvalidArgumentError("recipe: no evopress stage");
  const v1::EvoPressStage& stage = job.recipe->recipe.stages(0).evopress();
  TempDir temp;
  std::unique_ptr<DirCheckpointStore> temp_store;
  ASSIGN_OR_RETURN(CheckpointStore * store,
                   DatabaseStore(options, job.recipe->evopress->mode, &temp, &temp_store));
  ASSIGN_OR_RETURN(std::unique_ptr<EvoPressSession> session,
                   EvoPressSession::Create(*job.model, *job.backend, *job.recipe, *job.targets,
                                           *job.calibration, job.threads, store));
  ASSIGN_OR_RETURN(DatabaseResult db,
                   BuildDatabase(*session, options, job.threads, events, cancel));
  const Clock::time_point t = Clock::now();
  ASSIGN_OR_RETURN(ep::SearchResult search, Search(*session, options, events, cancel));
  const double search_s = SecondsSince(t);
  const ep::Config& best = search.state.parent;
  RETURN_IF_ERROR(Stitch(*session, best, job.model, result));
  result->forward_s += db.stats.forward_s;
  result->hessian_s += db.stats.hessian_s;
  result->solve_s += db.stats.solve_s;
  result->checkpoint_s += db.stats.store_s;

  const json config = ConfigJson(session->space(), best, stage);
  RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "evopress_config.json").string(),
                                      config.dump(2) + "\n"));
  EmitLog(events, "info",
          absl::StrFormat("evopress: fitness %.6g -> %.6g after %d generations (%.1f s database, "
                          "%.1f s search)",
                          search.state.initial_fitness, search.state.fitness,
                          search.state.generation, db.seconds, search_s));
  return SummaryJson(*session, stage, job.recipe->evopress->start, config, search, db, options,
                     search_s);
}

}  // namespace compressd::engine
