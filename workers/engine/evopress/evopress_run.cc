#include "workers/engine/evopress/evopress_run.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/calib/layer_stages.h"
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

absl::Status RunEvoPress(engine::LlamaModel& model, engine::Backend& backend,
                         const v1::Recipe& recipe, const std::vector<ModelTarget>& targets,
                         const CalibrationSet& calibration, int threads,
                         const RunOptions& options, const std::string& out_dir,
                         EventSink& events, const CancelToken& cancel, CompressionResult* result,
                         json* summary) {
  const v1::EvoPressStage& stage = recipe.stages(0).evopress();
  const int64_t window = recipe.calibration().seq_len();
  ASSIGN_OR_RETURN(ep::SearchSpace space, ep::MakeSearchSpace(model, Modules(targets), stage));
  std::mt19937_64 init_rng(stage.seed() ^ 0x5EEDC0FFEEull);
  ASSIGN_OR_RETURN(ep::Config initial, ep::InitialConfig(space, stage.target(), init_rng));
  ep::SetLevelBounds(initial, stage.max_level_shift(), &space);

  CheckpointStore* store = options.levels_db;
  TempDir temp;
  std::unique_ptr<DirCheckpointStore> temp_store;
  if (store == nullptr && space.mode != ep::Mode::kDrop) {
    RETURN_IF_ERROR(temp.Create());
    temp_store = std::make_unique<DirCheckpointStore>(temp.path());
    store = temp_store.get();
  }
  const ep::LevelsDbSpec spec = DbSpec(space, recipe);
  Clock::time_point t = Clock::now();
  const std::string db_fingerprint =
      ep::LevelsDbFingerprint(model, calibration.sequences, spec, space);
  std::optional<ep::LevelsDb> db;
  ep::DbBuildStats db_stats;
  if (space.mode != ep::Mode::kDrop) {
    db.emplace(store, db_fingerprint, space, spec);
    if (spec.build == ep::DbBuild::kSequential) {
      ASSIGN_OR_RETURN(db_stats, ep::BuildSequentialLevelsDb(
                                     model, {},
                                     SequentialCompressor(model, backend, space, spec,
                                                          calibration.sequences, threads,
                                                          events, cancel),
                                     *db, events, cancel));
    } else {
      ASSIGN_OR_RETURN(db_stats, ep::BuildLevelsDb(model, backend, calibration.sequences, {},
                                                   threads, *db, events, cancel));
    }
  }
  const double db_s = SecondsSince(t);

  t = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<ep::CandidateEvaluator> evaluator,
                   ep::CandidateEvaluator::Create(model, &backend, space, db ? &*db : nullptr,
                                                  EvalOptions(stage, window)));
  const std::vector<int32_t> stream = Stream(calibration);
  std::string key = db_fingerprint + stage.SerializeAsString() +
                    Sha256Hex(std::string_view(reinterpret_cast<const char*>(stream.data()),
                                               stream.size() * sizeof(int32_t)));
  for (const ep::Unit& u : space.units) key += "|" + u.name;
  ASSIGN_OR_RETURN(ep::SearchResult search,
                   ep::RunSearch(space, initial, *evaluator, stream,
                                 SearchOpts(stage, window), Sha256Hex(key), options.checkpoints,
                                 events, cancel));
  const double search_s = SecondsSince(t);

  const ep::Config& best = search.state.parent;
  ASSIGN_OR_RETURN(engine::LlamaModel stitched,
                   ep::StitchModel(model, space, db ? &*db : nullptr, best, &result->quantized));
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
  const ep::EvaluatorStats& es = evaluator->stats();
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
                             {"entries_reused", db_stats.reused}}},
              {"timing_seconds", {{"levels_db", db_s}, {"search", search_s}}}};
  EmitLog(events, "info",
          absl::StrFormat("evopress: fitness %.6g -> %.6g after %d generations (%.1f s database, "
                          "%.1f s search)",
                          search.state.initial_fitness, search.state.fitness,
                          search.state.generation, db_s, search_s));
  return absl::OkStatus();
}

}  // namespace compressd
