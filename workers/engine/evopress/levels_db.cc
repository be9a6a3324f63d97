#include "workers/engine/evopress/levels_db.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/nn/block_runner.h"

namespace compressd::engine::evopress {
namespace {

using Clock = std::chrono::steady_clock;
using engine::BlockWeights;

// The unit's dense weight solved at `level`, encoded.
absl::StatusOr<std::string> SolveLevel(const LevelsDbSpec& spec, const Unit& unit,
                                       const engine::Tensor& dense, double level, const float* h,
                                       int threads) {
  std::vector<float> w(dense.data, dense.data + dense.numel());
  const std::string tensor = unit.name + ".weight";
  if (spec.mode == Mode::kBits) {
    engine::GptqOptions o;
    o.grid = engine::QuantGrid{static_cast<int>(level), spec.grid.group_size, spec.grid.symmetric,
                               spec.grid.scale_bits};
    o.act_order = spec.act_order;
    o.static_groups = spec.act_order;
    o.massive_fallback = spec.act_order;
    o.block_size = spec.block_size;
    o.percdamp = spec.percdamp;
    o.report_error = false;
    o.threads = threads;
    ASSIGN_OR_RETURN(engine::LayerSolveResult r,
                     engine::Gptq(w.data(), dense.rows(), dense.cols(), h, o, tensor));
    return EncodeLevelWeight(w.data(), dense.rows(), dense.cols(), &*r.quantized);
  }
  if (level > 0.0) {
    engine::SparseGptOptions o;
    o.sparsity = level;
    o.block_size = spec.block_size;
    o.percdamp = spec.percdamp;
    o.report_error = false;
    o.threads = threads;
    RETURN_IF_ERROR(engine::SparseGpt(w.data(), dense.rows(), dense.cols(), h, o, tensor).status());
  }
  return EncodeLevelWeight(w.data(), dense.rows(), dense.cols(), nullptr);
}

// The (unit, level) pairs of `block` missing from the store.
absl::StatusOr<std::vector<std::pair<int, int>>> MissingEntries(LevelsDb& db, int block,
                                                                std::set<std::string>* stored) {
  ASSIGN_OR_RETURN(*stored, db.StoredEntries(block));
  std::vector<std::pair<int, int>> missing;
  const SearchSpace& space = db.space();
  for (size_t u = 0; u < space.units.size(); ++u) {
    if (space.units[u].block != block) continue;
    for (size_t l = 0; l < space.levels.size(); ++l) {
      if (!stored->count(db.EntryKey(u, l))) missing.push_back({u, static_cast<int>(l)});
    }
  }
  return missing;
}

// The hook of one block: per distinct input (and expert), H, then every
// missing level of every unit fed by it. An expert's H is from the tokens
// routed to it, or the layer's pooled one below spec.min_expert_tokens (as
// the calibrated pipeline: calib/block_linears.h).
absl::Status BuildBlock(LevelsDb& db, const std::vector<std::pair<int, int>>& missing,
                        const engine::LinearInputs& in, const BlockWeights& w, int threads,
                        const CancelToken& cancel, std::set<std::string>* stored,
                        DbBuildStats* stats) {
  const SearchSpace& space = db.space();
  std::map<std::pair<int, int>, std::vector<std::pair<int, int>>> todo;  // (input, expert)
  for (const auto& e : missing) {
    const Unit& u = space.units[e.first];
    todo[{u.input, u.expert >= 0 ? u.expert : -1}].push_back(e);
  }
  std::vector<int64_t> tokens;
  if (in.routes != nullptr)
    tokens = engine::ExpertTokenCounts(in, static_cast<int>(w.experts.size()));
  engine::SolverBackend& solver = engine::DefaultCpuSolver();
  for (const auto& [key, entries] : todo) {
    const auto [input, expert] = key;
    Clock::time_point t = Clock::now();
    const engine::Tensor& first = UnitWeight(w, space.units[entries.front().first]);
    std::vector<float> h;
    if (expert >= 0 &&
        tokens[static_cast<size_t>(expert)] >= std::max(db.spec().min_expert_tokens, 1)) {
      const std::vector<int64_t> rows = engine::ExpertRows(in, input, expert);
      ASSIGN_OR_RETURN(h, engine::InputHessian(in, input, first.cols(), &rows, solver, threads));
    } else {
      ASSIGN_OR_RETURN(h, engine::InputHessian(in, input, first.cols(), nullptr, solver, threads));
    }
    stats->hessian_s += SecondsSince(t);
    for (const auto& [u, l] : entries) {
      if (cancel.cancelled()) return absl::CancelledError("job cancelled");
      t = Clock::now();
      ASSIGN_OR_RETURN(std::string bytes,
                       SolveLevel(db.spec(), space.units[u], UnitWeight(w, space.units[u]),
                                  space.levels[l], h.data(), threads));
      stats->solve_s += SecondsSince(t);
      t = Clock::now();
      RETURN_IF_ERROR(db.PutEntry(u, l, bytes));
      stats->store_s += SecondsSince(t);
      stored->insert(db.EntryKey(u, l));
      ++stats->solved;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string LevelName(Mode mode, double level) {
  if (mode == Mode::kBits) return absl::StrCat("bits-", static_cast<int>(level));
  return absl::StrFormat("sparsity-%.4f", level);
}

const char* DbBuildName(DbBuild build) {
  return build == DbBuild::kSequential ? "sequential" : "dense_inputs";
}

std::string LevelsDbFingerprint(const engine::LlamaModel& model,
                                const std::vector<std::vector<int32_t>>& windows,
                                const LevelsDbSpec& spec, const SearchSpace& space) {
  Sha256 sha;
  sha.Update(absl::StrCat("evopress-db-v2|",
                          spec.mode == Mode::kBits   ? "bits"
                          : spec.mode == Mode::kDrop ? "drop"
                                                     : "sparsity",
                          "|", spec.grid.group_size, "|", spec.grid.symmetric, "|", spec.block_size,
                          "|", absl::StrFormat("%.17g", spec.percdamp), "|",
                          DbBuildName(spec.build), "|"));
  if (spec.mode == Mode::kBits && spec.act_order) {
    sha.Update("act_order static_groups massive_fallback|");
  }
  if (spec.mode == Mode::kBits && spec.grid.scale_bits > 0) {
    sha.Update(absl::StrCat("scale_bits ", spec.grid.scale_bits, "|"));
  }
  if (model.config.n_experts > 0) {  // which experts get their own Hessian
    sha.Update(absl::StrCat("min_expert_tokens ", spec.min_expert_tokens, "|"));
  }
  if (spec.build == DbBuild::kSequential) {
    // A sequential pass compresses exactly the searched units: its entries
    // depend on which ones they are.
    sha.Update(absl::StrCat("true_sequential ", spec.true_sequential, "|"));
    for (const Unit& u : space.units) sha.Update(absl::StrCat("unit ", u.name, "|"));
  }
  engine::LlamaModel copy = model;  // NamedTensors wants a mutable model; tensors are shared
  for (const engine::NamedTensor& t : engine::NamedTensors(&copy)) {
    sha.Update(absl::StrCat(t.name, "|", t.tensor->numel(), "|"));
    sha.Update(std::string_view(reinterpret_cast<const char*>(t.tensor->data),
                                t.tensor->numel() * sizeof(float)));
  }
  for (const std::vector<int32_t>& w : windows) {
    sha.Update(absl::StrCat("|window ", w.size(), "|"));
    sha.Update(std::string_view(reinterpret_cast<const char*>(w.data()), w.size() * 4));
  }
  return sha.HexDigest().substr(0, 32);
}

LevelsDb::LevelsDb(CheckpointStore* store, std::string fingerprint, SearchSpace space,
                   LevelsDbSpec spec, int64_t cache_bytes)
    : store_(store),
      fingerprint_(std::move(fingerprint)),
      space_(std::move(space)),
      spec_(spec),
      cache_bytes_(cache_bytes) {}

std::string LevelsDb::EntryKey(int unit, int level) const {
  return absl::StrCat(space_.units[unit].name, "/", LevelName(spec_.mode, space_.levels[level]));
}

std::string LevelsDb::EntryName(int unit, int level) const {
  return Prefix() + EntryKey(unit, level);
}

namespace {

absl::StatusOr<std::set<std::string>> ReadManifest(CheckpointStore& store,
                                                   const std::string& name) {
  absl::StatusOr<std::string> bytes = store.Get(name);
  if (absl::IsNotFound(bytes.status())) return std::set<std::string>{};
  RETURN_IF_ERROR(bytes.status());
  const nlohmann::json j = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return absl::DataLossError(absl::StrCat(name, ": not a JSON list"));
  std::set<std::string> keys;
  for (const nlohmann::json& k : j) {
    if (!k.is_string()) return absl::DataLossError(absl::StrCat(name, ": not a list of names"));
    keys.insert(k.get<std::string>());
  }
  return keys;
}

}  // namespace

absl::StatusOr<std::set<std::string>> LevelsDb::StoredEntries(int block) {
  return ReadManifest(*store_, Prefix() + absl::StrFormat("block-%04d", block));
}

absl::Status LevelsDb::PutEntry(int unit, int level, const std::string& bytes) {
  return store_->Put(EntryName(unit, level), bytes);
}

absl::Status LevelsDb::PutStoredEntries(int block, const std::set<std::string>& keys) {
  return store_->Put(Prefix() + absl::StrFormat("block-%04d", block), nlohmann::json(keys).dump());
}

absl::StatusOr<std::set<std::string>> LevelsDb::StoredLevelEntries(int level) {
  return ReadManifest(*store_, Prefix() + "level-" + LevelName(space_.mode, space_.levels[level]));
}

absl::Status LevelsDb::PutStoredLevelEntries(int level, const std::set<std::string>& keys) {
  return store_->Put(Prefix() + "level-" + LevelName(space_.mode, space_.levels[level]),
                     nlohmann::json(keys).dump());
}

absl::StatusOr<std::shared_ptr<const LevelWeight>> LevelsDb::Load(int unit, int level) {
  const int64_t key = int64_t{unit} * 4096 + level;
  if (auto it = cache_.find(key); it != cache_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.pos);
    return it->second.weight;
  }
  const Unit& u = space_.units[unit];
  ASSIGN_OR_RETURN(std::string bytes, store_->Get(EntryName(unit, level)));
  ASSIGN_OR_RETURN(LevelWeight w, DecodeLevelWeight(bytes, EntryName(unit, level), u.rows, u.cols));
  ++decodes_;
  auto shared = std::make_shared<const LevelWeight>(std::move(w));
  const int64_t size = u.numel * static_cast<int64_t>(sizeof(float));
  while (!lru_.empty() && cached_bytes_ + size > cache_bytes_) {
    auto victim = cache_.find(lru_.back());
    cached_bytes_ -= victim->second.bytes;
    cache_.erase(victim);
    lru_.pop_back();
  }
  lru_.push_front(key);
  cache_[key] = Cached{lru_.begin(), shared, size};
  cached_bytes_ += size;
  return shared;
}

absl::StatusOr<DbBuildStats> BuildLevelsDb(const engine::LlamaModel& dense,
                                           engine::Backend& backend,
                                           const std::vector<std::vector<int32_t>>& windows,
                                           const std::set<int>& blocks, int threads, LevelsDb& db,
                                           EventSink& events, const CancelToken& cancel) {
  if (db.spec().build != DbBuild::kDenseInputs) {
    return absl::InvalidArgumentError(
        "BuildLevelsDb builds a dense_inputs levels database; use BuildSequentialLevelsDb");
  }
  DbBuildStats stats;
  const int n = dense.config.n_layers;
  // What is missing, block by block; the dense pass stops after the last such block.
  std::vector<std::vector<std::pair<int, int>>> missing(n);
  std::vector<std::set<std::string>> stored(n);
  int last = -1;
  for (int b = 0; b < n; ++b) {
    if (!blocks.empty() && !blocks.count(b)) continue;
    ASSIGN_OR_RETURN(missing[b], MissingEntries(db, b, &stored[b]));
    for (const Unit& u : db.space().units) {
      if (u.block == b) stats.reused += static_cast<int64_t>(db.space().levels.size());
    }
    stats.reused -= static_cast<int64_t>(missing[b].size());
    if (!missing[b].empty()) last = b;
  }
  if (last < 0) return stats;
  engine::LlamaModel model = dense;  // the runner's hook never replaces a weight
  Clock::time_point t = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<engine::BlockRunner> runner,
                   engine::BlockRunner::Create(&model, &backend, windows));
  stats.forward_s += SecondsSince(t);
  for (int b = 0; b <= last; ++b) {
    EmitProgress(events, "levels", b, last + 1, absl::StrCat("block ", b));
    if (missing[b].empty()) {
      t = Clock::now();
      RETURN_IF_ERROR(runner->RunNextBlock(nullptr));
      stats.forward_s += SecondsSince(t);
      continue;
    }
    const DbBuildStats before = stats;
    t = Clock::now();
    RETURN_IF_ERROR(runner->RunNextBlock(
        [&](int, const engine::LinearInputs& in, BlockWeights* w) -> absl::Status {
          return BuildBlock(db, missing[b], in, *w, threads, cancel, &stored[b], &stats);
        }));
    stats.forward_s += SecondsSince(t) - (stats.hessian_s - before.hessian_s) -
                       (stats.solve_s - before.solve_s) - (stats.store_s - before.store_s);
    RETURN_IF_ERROR(db.PutStoredEntries(b, stored[b]));
    EmitLog(events, "info",
            absl::StrFormat("levels database: block %d of %d, %d entries built", b + 1, n,
                            stats.solved - before.solved));
  }
  EmitProgress(events, "levels", last + 1, last + 1, "done");
  return stats;
}

absl::StatusOr<DbBuildStats> BuildSequentialLevelsDb(
    const engine::LlamaModel& dense, const std::set<int>& blocks, const UniformCompressor& compress,
    LevelsDb& db, EventSink& events, const CancelToken& cancel, const std::set<int>& levels) {
  if (db.spec().build != DbBuild::kSequential) {
    return absl::InvalidArgumentError(
        "BuildSequentialLevelsDb builds a sequential levels database; use BuildLevelsDb");
  }
  DbBuildStats stats;
  const SearchSpace& space = db.space();
  // Per level, its manifest and the units missing it (in the requested blocks).
  std::vector<std::set<std::string>> stored(space.levels.size());
  std::vector<std::vector<int>> missing(space.levels.size());
  for (size_t l = 0; l < space.levels.size(); ++l) {
    if (!levels.empty() && !levels.count(static_cast<int>(l))) continue;
    ASSIGN_OR_RETURN(stored[l], db.StoredLevelEntries(static_cast<int>(l)));
    for (size_t u = 0; u < space.units.size(); ++u) {
      if (!blocks.empty() && !blocks.count(space.units[u].block)) continue;
      if (stored[l].count(db.EntryKey(u, l))) {
        ++stats.reused;
      } else {
        missing[l].push_back(static_cast<int>(u));
      }
    }
  }
  int to_build = 0;
  for (const std::vector<int>& m : missing) to_build += m.empty() ? 0 : 1;
  int built = 0;
  for (size_t l = 0; l < space.levels.size(); ++l) {
    if (missing[l].empty()) continue;
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    const double level = space.levels[l];
    const std::string name = LevelName(space.mode, level);
    EmitProgress(events, "levels", built, to_build, name);
    std::optional<UniformModel> pass;
    if (!(space.mode == Mode::kSparsity && level == 0.0)) {
      int last = 0;
      for (int u : missing[l]) last = std::max(last, space.units[u].block);
      ASSIGN_OR_RETURN(pass, compress(level, last + 1));
      stats.forward_s += pass->forward_s;
      stats.hessian_s += pass->hessian_s;
      stats.solve_s += pass->solve_s;
    }
    const Clock::time_point t = Clock::now();
    for (int u : missing[l]) {
      const Unit& unit = space.units[u];
      const engine::Tensor& w =
          UnitWeight(pass ? pass->model.blocks[unit.block] : dense.blocks[unit.block], unit);
      const engine::QuantizedTensor* codes = nullptr;
      if (space.mode == Mode::kBits) {
        auto q = pass->quantized.find(unit.name + ".weight");
        if (q == pass->quantized.end()) {
          return absl::InternalError(absl::StrCat(unit.name, ".weight: the ", name,
                                                  " pass returned no quantization codes"));
        }
        codes = &q->second;
      }
      RETURN_IF_ERROR(db.PutEntry(u, static_cast<int>(l),
                                  EncodeLevelWeight(w.data, w.rows(), w.cols(), codes)));
      stored[l].insert(db.EntryKey(u, static_cast<int>(l)));
      ++stats.solved;
    }
    RETURN_IF_ERROR(db.PutStoredLevelEntries(static_cast<int>(l), stored[l]));
    stats.store_s += SecondsSince(t);
    ++built;
    EmitLog(events, "info",
            absl::StrFormat("levels database: %s, %d entries built (sequential pass %d of %d)",
                            name, missing[l].size(), built, to_build));
  }
  if (to_build > 0) EmitProgress(events, "levels", to_build, to_build, "done");
  return stats;
}

}  // namespace compressd::engine::evopress
