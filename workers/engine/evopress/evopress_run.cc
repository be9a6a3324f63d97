#include "workers/engine/evopress/evopress_run.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <limits>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/calib/layer_stages.h"
#include "workers/engine/evopress/drop_score.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/evopress/search.h"
#include "workers/engine/evopress/search_space.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace ep = evopress;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

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

ep::LevelsDbSpec DbSpec(const ep::SearchSpace& space, const v1::Recipe& recipe) {
  const v1::EvoPressStage& stage = recipe.stages(0).evopress();
  ep::LevelsDbSpec spec;
  spec.mode = space.mode;
  spec.build =
      stage.database() == "dense_inputs" ? ep::DbBuild::kDenseInputs : ep::DbBuild::kSequential;
  spec.true_sequential = recipe.calibration().true_sequential();
  if (space.mode == ep::Mode::kBits) {
    spec.grid = engine::QuantGrid{4, stage.grid().group_size(), !stage.grid().asymmetric()};
  }
  return spec;
}

ep::EvaluatorOptions EvalOptions(const v1::EvoPressStage& stage, int64_t window) {
  ep::EvaluatorOptions o;
  o.fitness.kind = stage.fitness() == "ppl" ? ep::FitnessKind::kPpl : ep::FitnessKind::kKl;
  o.fitness.top_k = stage.kl_top_k();
  o.micro_batch_tokens = std::max<int64_t>(window, 2048);
  return o;
}

ep::SearchOptions SearchOpts(const v1::EvoPressStage& stage, int64_t window) {
  ep::SearchOptions o;
  o.generations = stage.generations();
  o.offspring = stage.offspring();
  o.survivors.assign(stage.survivors().begin(), stage.survivors().end());
  o.step_tokens.assign(stage.step_tokens().begin(), stage.step_tokens().end());
  o.seed = stage.seed();
  o.window = window;
  return o;
}

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
    const engine::Tensor& t = model.blocks[unit.block].*(unit.member);
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
  return {{"mode", stage.mode()},          {"target", stage.target()},
          {"levels", space.levels},        {"mean_level", ep::MeanLevel(space, config)},
          {"units", std::move(units)}};
}

absl::Status WriteConfigFile(const std::string& out_dir, const json& config) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": mkdir: ", ec.message()));
  const fs::path path = fs::path(out_dir) / "evopress_config.json";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << config.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

std::vector<std::string> Modules(const std::vector<ModelTarget>& targets) {
  std::vector<std::string> modules;
  for (const ModelTarget& t : targets) modules.push_back(t.module);
  return modules;
}

// The calibration token stream (the windows themselves when it was not kept).
std::vector<int32_t> Stream(const CalibrationSet& calibration) {
  if (!calibration.stream.empty()) return calibration.stream;
  std::vector<int32_t> stream;
  for (const auto& s : calibration.sequences) stream.insert(stream.end(), s.begin(), s.end());
  return stream;
}

// Forwards a sequential pass's progress as "levels" progress; drops its
// per-layer metrics and log lines (a pass per level would flood the job).
class PassSink : public EventSink {
 public:
  PassSink(EventSink& out, std::string label) : out_(out), label_(std::move(label)) {}
  void Emit(const v1::JobEvent& e) override {
    if (!e.has_progress()) return;
    EmitProgress(out_, "levels", e.progress().current(), e.progress().total(),
                 absl::StrCat(label_, ": ", e.progress().message()));
  }

 private:
  EventSink& out_;
  const std::string label_;
};

}  // namespace

v1::Recipe UniformLevelRecipe(const ep::LevelsDbSpec& spec, double level) {
  v1::Recipe recipe;
  v1::Stage* stage = recipe.add_stages();
  if (spec.mode == ep::Mode::kBits) {
    v1::GptqStage* g = stage->mutable_gptq();
    g->mutable_grid()->set_bits(static_cast<int>(level));
    g->mutable_grid()->set_group_size(spec.grid.group_size);
    g->mutable_grid()->set_asymmetric(!spec.grid.symmetric);
    g->set_block_size(spec.block_size);
    g->set_percdamp(spec.percdamp);
  } else {
    v1::SparseGptStage* s = stage->mutable_sparsegpt();
    s->set_sparsity(level);
    s->set_block_size(spec.block_size);
    s->set_percdamp(spec.percdamp);
  }
  recipe.mutable_calibration()->set_true_sequential(spec.true_sequential);
  return recipe;
}

ep::UniformCompressor SequentialCompressor(const engine::LlamaModel& dense,
                                           engine::Backend& backend, const ep::SearchSpace& space,
                                           const ep::LevelsDbSpec& spec,
                                           const std::vector<std::vector<int32_t>>& windows,
                                           int threads, EventSink& events,
                                           const CancelToken& cancel) {
  return [&, threads](double level, int blocks) -> absl::StatusOr<ep::UniformModel> {
    ep::UniformModel out;
    out.model = dense;  // tensors shared until the pass replaces them
    if (blocks < out.model.config.n_layers) {
      out.model.blocks.resize(blocks);
      out.model.config.n_layers = blocks;
    }
    std::vector<ModelTarget> targets;
    for (const ep::Unit& u : space.units) {
      if (u.block < blocks) targets.push_back({u.name + ".weight", u.name});
    }
    CalibrationSet calibration;
    calibration.sequences = windows;
    PassSink sink(events, ep::LevelName(spec.mode, level));
    CompressionResult result;
    RETURN_IF_ERROR(CompressCalibrated(out.model, backend, UniformLevelRecipe(spec, level), targets,
                                       calibration, threads, nullptr, sink, cancel, &result));
    out.quantized = std::move(result.quantized);
    out.forward_s = result.forward_s;
    out.hessian_s = result.hessian_s;
    out.solve_s = result.solve_s + result.error_s;
    return out;
  };
}

namespace {

class DropSink : public EventSink {
 public:
  void Emit(const v1::JobEvent&) override {}
};

json FitnessJson(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

absl::Status BadPayload(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("evopress part payload: ", what));
}

void AddStats(const json& r, ep::EvaluatorStats* stats) {
  stats->candidates += r.value("candidates", int64_t{0});
  stats->tokens += r.value("candidates", int64_t{0}) * r.value("tokens", int64_t{0});
  stats->block_tokens += r.value("block_tokens", int64_t{0});
  stats->block_tokens_saved += r.value("block_tokens_saved", int64_t{0});
}

}  // namespace

absl::StatusOr<std::unique_ptr<EvoPressSession>> EvoPressSession::Create(
    const engine::LlamaModel& model, engine::Backend& backend, const v1::Recipe& recipe,
    const std::vector<ModelTarget>& targets, const CalibrationSet& calibration, int threads,
    CheckpointStore* db_store, bool for_parts) {
  std::unique_ptr<EvoPressSession> s(new EvoPressSession(model, backend, threads));
  s->stage_ = recipe.stages(0).evopress();
  const int64_t window = recipe.calibration().seq_len();
  ASSIGN_OR_RETURN(s->space_, ep::MakeSearchSpace(model, Modules(targets), s->stage_));
  s->windows_ = calibration.sequences;
  if (s->space_.mode == ep::Mode::kDrop && s->stage_.start() == "score" && !for_parts) {
    ASSIGN_OR_RETURN(s->drop_scores_,
                     ep::BlockInfluence(model, &backend, s->space_, s->windows_));
    ASSIGN_OR_RETURN(s->initial_,
                     ep::ScoreDropConfig(s->space_, s->stage_.target(), s->drop_scores_));
  } else {
    std::mt19937_64 init_rng(s->stage_.seed() ^ 0x5EEDC0FFEEull);
    ASSIGN_OR_RETURN(s->initial_, ep::InitialConfig(s->space_, s->stage_.target(), init_rng));
  }
  ep::SetLevelBounds(s->initial_, s->stage_.max_level_shift(), &s->space_);
  s->stream_ = Stream(calibration);
  s->db_spec_ = DbSpec(s->space_, recipe);
  s->db_fingerprint_ = ep::LevelsDbFingerprint(model, s->windows_, s->db_spec_, s->space_);
  if (s->space_.mode != ep::Mode::kDrop) {
    if (db_store == nullptr) {
      return absl::InternalError("evopress: no store for the levels database");
    }
    s->db_.emplace(db_store, s->db_fingerprint_, s->space_, s->db_spec_);
  }
  s->search_options_ = SearchOpts(s->stage_, window);
  ASSIGN_OR_RETURN(s->evaluator_,
                   ep::CandidateEvaluator::Create(model, &backend, s->space_, s->db(),
                                                  EvalOptions(s->stage_, window)));
  return s;
}

std::string EvoPressSession::SearchFingerprint() const {
  std::string key = db_fingerprint_ + stage_.SerializeAsString() +
                    Sha256Hex(std::string_view(reinterpret_cast<const char*>(stream_.data()),
                                               stream_.size() * sizeof(int32_t)));
  for (const ep::Unit& u : space_.units) key += "|" + u.name;
  return Sha256Hex(key);
}

absl::StatusOr<ep::DbBuildStats> EvoPressSession::BuildDb(const std::set<int>& levels,
                                                          EventSink& events,
                                                          const CancelToken& cancel) {
  if (!db_) return ep::DbBuildStats{};
  if (db_spec_.build == ep::DbBuild::kSequential) {
    return ep::BuildSequentialLevelsDb(
        model_, {},
        SequentialCompressor(model_, backend_, space_, db_spec_, windows_, threads_, events,
                             cancel),
        *db_, events, cancel, levels);
  }
  return ep::BuildLevelsDb(model_, backend_, windows_, {}, threads_, *db_, events, cancel);
}

absl::StatusOr<std::vector<int>> EvoPressSession::MissingLevels() {
  std::vector<int> out;
  if (!db_ || db_spec_.build != ep::DbBuild::kSequential) return out;
  for (size_t l = 0; l < space_.levels.size(); ++l) {
    ASSIGN_OR_RETURN(std::set<std::string> stored, db_->StoredLevelEntries(static_cast<int>(l)));
    for (size_t u = 0; u < space_.units.size(); ++u) {
      if (!stored.count(db_->EntryKey(static_cast<int>(u), static_cast<int>(l)))) {
        out.push_back(static_cast<int>(l));
        break;
      }
    }
  }
  return out;
}

absl::StatusOr<std::string> EvoPressSession::RunPart(const std::string& payload,
                                                     EventSink& events,
                                                     const CancelToken& cancel) {
  const json p = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!p.is_object() || !p.contains("kind")) return BadPayload("not a JSON object with a kind");
  try {
    const std::string kind = p.at("kind").get<std::string>();
    if (kind == "level") {
      const int level = p.at("level").get<int>();
      if (!db_ || db_spec_.build != ep::DbBuild::kSequential || level < 0 ||
          level >= static_cast<int>(space_.levels.size())) {
        return BadPayload(absl::StrCat("level ", level, " is not a sequential database level"));
      }
      ASSIGN_OR_RETURN(ep::DbBuildStats st, BuildDb({level}, events, cancel));
      return json{{"solved", st.solved},
                  {"forward_s", st.forward_s},
                  {"hessian_s", st.hessian_s},
                  {"solve_s", st.solve_s},
                  {"store_s", st.store_s}}
          .dump();
    }
    if (kind == "eval") {
      const int g = p.at("generation").get<int>();
      const int step = p.at("step").get<int>();
      if (step < 0 || step >= static_cast<int>(search_options_.step_tokens.size())) {
        return BadPayload(absl::StrCat("step ", step, " is not a selection step"));
      }
      const std::vector<ep::Config> configs = p.at("configs").get<std::vector<ep::Config>>();
      const ep::Config base = p.at("base").get<ep::Config>();
      for (const ep::Config& c : configs) {
        if (c.size() != space_.units.size()) return BadPayload("a configuration of the wrong size");
      }
      if (base.size() != space_.units.size()) return BadPayload("a base of the wrong size");
      if (windows_step_ != std::make_pair(g, step)) {
        RETURN_IF_ERROR(evaluator_->SetWindows(
            ep::DrawWindows(stream_, search_options_.window, search_options_.step_tokens[step],
                            search_options_.seed, g, step)));
        windows_step_ = {g, step};
      }
      const ep::EvaluatorStats before = evaluator_->stats();
      ASSIGN_OR_RETURN(std::vector<double> fitness, evaluator_->Evaluate(configs, &base, cancel));
      const ep::EvaluatorStats& after = evaluator_->stats();
      json values = json::array();
      for (double f : fitness) values.push_back(FitnessJson(f));
      return json{{"fitness", values},
                  {"tokens", evaluator_->tokens()},
                  {"candidates", after.candidates - before.candidates},
                  {"block_tokens", after.block_tokens - before.block_tokens},
                  {"block_tokens_saved", after.block_tokens_saved - before.block_tokens_saved}}
          .dump();
    }
    return BadPayload(absl::StrCat("unknown kind \"", kind, "\""));
  } catch (const json::exception& e) {
    return BadPayload(e.what());
  }
}

ep::StepFitness EvoPressSession::FannedStepFitness(Fanout& fanout, const CancelToken& cancel) {
  return [this, &fanout, &cancel](int g, int s, const std::vector<ep::Config>& pool,
                                  const ep::Config& base,
                                  int64_t* tokens) -> absl::StatusOr<std::vector<double>> {
    const size_t chunks =
        std::min(pool.size(), static_cast<size_t>(std::max(1, fanout.workers())));
    std::vector<WorkPart> parts;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t lo = pool.size() * c / chunks, hi = pool.size() * (c + 1) / chunks;
      json configs = json::array();
      for (size_t i = lo; i < hi; ++i) configs.push_back(pool[i]);
      WorkPart& part = parts.emplace_back();
      part.payload = json{{"kind", "eval"}, {"generation", g}, {"step", s},
                          {"configs", configs}, {"base", base}, {"threads", threads_}}
                         .dump();
      part.name = absl::StrFormat("evopress/eval/g%04d/s%d/c%03d-%s", g, s, c,
                                  Sha256Hex(part.payload).substr(0, 12));
    }
    DropSink quiet;
    ASSIGN_OR_RETURN(std::vector<std::string> results,
                     fanout.Run(parts,
                                [&](const WorkPart& p) { return RunPart(p.payload, quiet, cancel); },
                                cancel));
    std::vector<double> fitness;
    for (size_t c = 0; c < results.size(); ++c) {
      const json r = json::parse(results[c], nullptr, /*allow_exceptions=*/false);
      if (!r.is_object() || !r.contains("fitness") || !r["fitness"].is_array()) {
        return absl::DataLossError(absl::StrCat(parts[c].name, ": not an evaluation result"));
      }
      for (const json& f : r["fitness"]) {
        fitness.push_back(f.is_number() ? f.get<double>() : std::numeric_limits<double>::infinity());
      }
      *tokens = r.value("tokens", int64_t{0});
      AddStats(r, &fanned_stats_);
    }
    return fitness;
  };
}

absl::Status RunEvoPress(engine::LlamaModel& model, engine::Backend& backend,
                         const v1::Recipe& recipe, const std::vector<ModelTarget>& targets,
                         const CalibrationSet& calibration, int threads,
                         const RunOptions& options, const std::string& out_dir,
                         EventSink& events, const CancelToken& cancel, CompressionResult* result,
                         json* summary) {
  const v1::EvoPressStage& stage = recipe.stages(0).evopress();
  CheckpointStore* store = options.levels_db != nullptr ? options.levels_db : options.checkpoints;
  TempDir temp;
  std::unique_ptr<DirCheckpointStore> temp_store;
  if (store == nullptr && !(stage.mode() == "drop")) {
    RETURN_IF_ERROR(temp.Create());
    temp_store = std::make_unique<DirCheckpointStore>(temp.path());
    store = temp_store.get();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<EvoPressSession> session,
                   EvoPressSession::Create(model, backend, recipe, targets, calibration, threads,
                                           store));
  const ep::SearchSpace& space = session->space();
  Clock::time_point t = Clock::now();
  ep::DbBuildStats db_stats;
  int level_parts = 0;
  if (options.fanout != nullptr) {  // one part per missing level, on every worker
    ASSIGN_OR_RETURN(std::vector<int> missing, session->MissingLevels());
    std::vector<WorkPart> parts;
    for (int l : missing) {
      parts.push_back({absl::StrCat("evopress/level/", session->db_fingerprint().substr(0, 16),
                                    "/", ep::LevelName(space.mode, space.levels[l])),
                       json{{"kind", "level"}, {"level", l}, {"threads", threads}}.dump()});
    }
    level_parts = static_cast<int>(parts.size());
    if (!parts.empty()) {
      EmitLog(events, "info", absl::StrFormat("levels database: %d passes as parts for %d workers",
                                              parts.size(), options.fanout->workers()));
      ASSIGN_OR_RETURN(std::vector<std::string> results,
                       options.fanout->Run(parts,
                                           [&](const WorkPart& p) {
                                             return session->RunPart(p.payload, events, cancel);
                                           },
                                           cancel));
      for (const std::string& r : results) {
        const json j = json::parse(r, nullptr, /*allow_exceptions=*/false);
        if (!j.is_object()) return absl::DataLossError("a levels part returned no statistics");
        db_stats.solved += j.value("solved", int64_t{0});
        db_stats.forward_s += j.value("forward_s", 0.0);
        db_stats.hessian_s += j.value("hessian_s", 0.0);
        db_stats.solve_s += j.value("solve_s", 0.0);
        db_stats.store_s += j.value("store_s", 0.0);
      }
    }
  }
  {  // whatever is still missing (everything without fan-out), here
    ASSIGN_OR_RETURN(ep::DbBuildStats rest, session->BuildDb({}, events, cancel));
    const int64_t by_parts = db_stats.solved;  // found stored now, built by this job
    db_stats.solved += rest.solved;
    db_stats.reused = rest.reused - by_parts;
    db_stats.forward_s += rest.forward_s;
    db_stats.hessian_s += rest.hessian_s;
    db_stats.solve_s += rest.solve_s;
    db_stats.store_s += rest.store_s;
  }
  const double db_s = SecondsSince(t);

  t = Clock::now();
  const ep::SearchOptions& search_options = session->search_options();
  const ep::StepFitness step_fitness =
      options.fanout != nullptr
          ? session->FannedStepFitness(*options.fanout, cancel)
          : ep::LocalStepFitness(session->evaluator(), session->stream(), search_options, cancel);
  ASSIGN_OR_RETURN(ep::SearchResult search,
                   ep::RunSearch(space, session->initial(), step_fitness, session->stream(),
                                 search_options, session->SearchFingerprint(),
                                 options.checkpoints, events, cancel));
  const double search_s = SecondsSince(t);
  ep::LevelsDb* db = session->db();
  const std::string db_fingerprint = session->db_fingerprint();
  const ep::LevelsDbSpec spec = session->db_spec();
  ep::EvaluatorStats es = options.fanout != nullptr ? session->fanned_stats()
                                                    : session->evaluator().stats();
  const ep::Config& best = search.state.parent;
  ASSIGN_OR_RETURN(engine::LlamaModel stitched,
                   ep::StitchModel(model, space, db, best, &result->quantized));
  model = std::move(stitched);
  for (size_t u = 0; u < space.units.size(); ++u) {
    RecordUnit(space, space.units[u], best[u], model, result->quantized, result);
  }
  result->forward_s += db_stats.forward_s;
  result->hessian_s += db_stats.hessian_s;
  result->solve_s += db_stats.solve_s;
  result->checkpoint_s += db_stats.store_s;

  const json config = ConfigJson(space, best, stage);
  RETURN_IF_ERROR(WriteConfigFile(out_dir, config));
  *summary = {{"config", config},
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
              {"levels_db", {{"fingerprint", db_fingerprint},
                             {"build", ep::DbBuildName(spec.build)},
                             {"entries_built", db_stats.solved},
                             {"entries_reused", db_stats.reused},
                             {"parts", level_parts}}},
              {"fanout_workers", options.fanout != nullptr ? options.fanout->workers() : 1},
              {"start", stage.start().empty() ? "random" : stage.start()},
              {"timing_seconds", {{"levels_db", db_s}, {"search", search_s}}}};
  if (!session->drop_scores().empty()) {
    json scores = json::object();
    for (size_t u = 0; u < space.units.size(); ++u) {
      scores[space.units[u].name] = session->drop_scores()[u];
    }
    (*summary)["block_influence"] = std::move(scores);
  }
  EmitLog(events, "info",
          absl::StrFormat("evopress: fitness %.6g -> %.6g after %d generations (%.1f s database, "
                          "%.1f s search)",
                          search.state.initial_fitness, search.state.fitness,
                          search.state.generation, db_s, search_s));
  return absl::OkStatus();
}

}  // namespace compressd
