#include "workers/engine/pipeline/evopress_session.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/evopress/drop_score.h"
#include "workers/engine/evopress/search_space.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
namespace ep = evopress;

ep::LevelsDbSpec DbSpec(const ep::SearchSpace& space, const RecipeSpec& recipe_spec) {
  const v1::Recipe& recipe = recipe_spec.recipe;
  const v1::EvoPressStage& stage = recipe.stages(0).evopress();
  ep::LevelsDbSpec spec;
  spec.mode = space.mode;
  spec.build = recipe_spec.evopress->database == EvoDatabase::kDenseInputs
                   ? ep::DbBuild::kDenseInputs
                   : ep::DbBuild::kSequential;
  spec.true_sequential = recipe.calibration().true_sequential();
  if (recipe.calibration().min_expert_tokens() > 0) {
    spec.min_expert_tokens = recipe.calibration().min_expert_tokens();
  }
  if (space.mode == ep::Mode::kBits) {
    spec.grid = engine::QuantGrid{4, stage.grid().group_size(), !stage.grid().asymmetric(),
                                  stage.grid().scale_bits()};
    spec.act_order = !stage.has_act_order() || stage.act_order();
  }
  return spec;
}

ep::EvaluatorOptions EvalOptions(const v1::EvoPressStage& stage, EvoFitness fitness,
                                 int64_t window) {
  ep::EvaluatorOptions o;
  o.fitness.kind = fitness == EvoFitness::kPpl ? ep::FitnessKind::kPpl : ep::FitnessKind::kKl;
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

}  // namespace

ep::Mode SearchMode(EvoMode mode) {
  switch (mode) {
    case EvoMode::kBits:
      return ep::Mode::kBits;
    case EvoMode::kDrop:
      return ep::Mode::kDrop;
    case EvoMode::kSparsity:
      break;
  }
  return ep::Mode::kSparsity;
}

namespace {

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
    g->mutable_grid()->set_scale_bits(spec.grid.scale_bits);
    g->set_act_order(spec.act_order);
    g->set_static_groups(spec.act_order);
    g->set_massive_fallback(spec.act_order);
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
    const engine::LlamaModel& model, engine::Backend& backend, const RecipeSpec& recipe,
    const std::vector<ModelTarget>& targets, const CalibrationSet& calibration, int threads,
    CheckpointStore* db_store, bool for_parts) {
  if (!recipe.evopress) return absl::InvalidArgumentError("recipe: no evopress stage");
  const EvoPressSpec& evo = *recipe.evopress;
  std::unique_ptr<EvoPressSession> s(new EvoPressSession(model, backend, threads));
  s->stage_ = recipe.recipe.stages(0).evopress();
  const int64_t window = recipe.recipe.calibration().seq_len();
  ASSIGN_OR_RETURN(s->space_,
                   ep::MakeSearchSpace(model, Modules(targets), s->stage_, SearchMode(evo.mode)));
  s->windows_ = calibration.sequences;
  if (s->space_.mode == ep::Mode::kDrop && evo.start == EvoStart::kScore && !for_parts) {
    ASSIGN_OR_RETURN(s->drop_scores_, ep::BlockInfluence(model, &backend, s->space_, s->windows_));
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
  if (recipe.recipe.compute() == "bf16") {  // its entries come from BF16 forwards
    s->db_fingerprint_ = Sha256Hex(s->db_fingerprint_ + "|compute bf16");
  }
  if (s->space_.mode != ep::Mode::kDrop) {
    if (db_store == nullptr) {
      return absl::InternalError("evopress: no store for the levels database");
    }
    s->db_.emplace(db_store, s->db_fingerprint_, s->space_, s->db_spec_);
  }
  s->search_options_ = SearchOpts(s->stage_, window);
  ASSIGN_OR_RETURN(s->evaluator_,
                   ep::CandidateEvaluator::Create(model, &backend, s->space_, s->db(),
                                                  EvalOptions(s->stage_, evo.fitness, window)));
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
    return ep::BuildSequentialLevelsDb(model_, {},
                                       SequentialCompressor(model_, backend_, space_, db_spec_,
                                                            windows_, threads_, events, cancel),
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

absl::StatusOr<std::string> EvoPressSession::RunPart(const std::string& payload, EventSink& events,
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
        RETURN_IF_ERROR(evaluator_->SetWindows(ep::DrawWindows(stream_, search_options_.window,
                                                               search_options_.step_tokens[step],
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
    const size_t chunks = std::min(pool.size(), static_cast<size_t>(std::max(1, fanout.workers())));
    std::vector<WorkPart> parts;
    for (size_t c = 0; c < chunks; ++c) {
      const size_t lo = pool.size() * c / chunks, hi = pool.size() * (c + 1) / chunks;
      json configs = json::array();
      for (size_t i = lo; i < hi; ++i) configs.push_back(pool[i]);
      WorkPart& part = parts.emplace_back();
      part.payload = json{{"kind", "eval"},     {"generation", g}, {"step", s},
                          {"configs", configs}, {"base", base},    {"threads", threads_}}
                         .dump();
      part.name = absl::StrFormat("evopress/eval/g%04d/s%d/c%03d-%s", g, s, c,
                                  Sha256Hex(part.payload).substr(0, 12));
    }
    DropSink quiet;
    ASSIGN_OR_RETURN(
        std::vector<std::string> results,
        fanout.Run(
            parts, [&](const WorkPart& p) { return RunPart(p.payload, quiet, cancel); }, cancel));
    std::vector<double> fitness;
    for (size_t c = 0; c < results.size(); ++c) {
      const json r = json::parse(results[c], nullptr, /*allow_exceptions=*/false);
      if (!r.is_object() || !r.contains("fitness") || !r["fitness"].is_array()) {
        return absl::DataLossError(absl::StrCat(parts[c].name, ": not an evaluation result"));
      }
      for (const json& f : r["fitness"]) {
        fitness.push_back(f.is_number() ? f.get<double>()
                                        : std::numeric_limits<double>::infinity());
      }
      *tokens = r.value("tokens", int64_t{0});
      AddStats(r, &fanned_stats_);
    }
    return fitness;
  };
}

}  // namespace compressd::engine
