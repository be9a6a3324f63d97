// The EvoPress levels database: every searched linear layer compressed at
// every level, so that a candidate configuration is assembled by looking its
// layers up (Sidorov, Kurtic, Alistarh et al. 2024, Section 3).
//
// Two ways to build it (LevelsDbSpec::build):
//  - sequential (the default): level L of every unit is the weight the
//    sequential calibration pipeline (calib/calibrated_compress.h, one
//    SparseGPT stage at sparsity L, or one GPTQ stage at L bits on the grid)
//    produces when it compresses the whole model at uniform level L: each
//    layer solved on the inputs of a model whose earlier blocks are already
//    at level L. The search's uniform configuration is then exactly the
//    standard sequential SparseGPT / GPTQ model, the baseline it must beat.
//    One sequential pass per level (BuildSequentialLevelsDb, with the pass
//    injected as a UniformCompressor: pipeline/evopress_session.h SequentialCompressor).
//  - dense_inputs (the paper's database): for each decoder block, the dense
//    model's inputs of its linears over the calibration windows
//    (nn/block_runner.h with a hook that reads and never modifies weights),
//    one Hessian H = 2 X X^T / n per distinct input (q/k/v share one, gate/up
//    share one; hessian.h), then each layer solved from its DENSE weight with
//    that H at each level: SparseGPT at each sparsity (level 0: the dense
//    weight itself), GPTQ at each bit width on the grid's group size. Every
//    layer sees the dense model's inputs, whatever level its predecessors get
//    in a candidate (BuildLevelsDb).
//
// Storage: entries in a CheckpointStore (named blobs: a directory of files for
// compress-worker run, the server's blob store for leased tasks), one per
// (layer, level), in level_codec.h's exact format:
//   evopress/db/<fingerprint>/<module>/<level>   e.g. .../model.layers.3.mlp.up_proj/sparsity-0.6000
//   evopress/db/<fingerprint>/block-0003         dense_inputs: JSON list of the block's stored entries
//   evopress/db/<fingerprint>/level-sparsity-0.6000  sequential: JSON list of the level's entries
// (one manifest per unit of building work, so parts built on different
// workers at once never write the same manifest).
// The fingerprint hashes what an entry depends on: the model's tensors, the
// calibration windows, the mode, the build and solver parameters (damping,
// block size, grid group size and symmetry) and, for the sequential build,
// true_sequential and the searched units (a pass compresses exactly those),
// but not the level list: each level is its own entry, so a search with
// another target reuses the levels it shares and builds only the missing
// ones. A manifest is written after its entries, so an interrupted build
// resumes at the first block (dense_inputs) or level (sequential) it did not
// finish. Solver threads are not in the fingerprint (the solvers' results do
// not depend on them).
//
// Cost: dense_inputs: one pass of the dense model over the windows, 4
// Hessians per block (O(T * d^2)), and layers x levels solves (O(out * in^2)
// each). sequential: per missing level one full calibration pass (its
// forwards, Hessians and one solve per layer, as a plain SparseGPT / GPTQ job);
// sparsity level 0 is the dense weight (no pass). The solve count is the same;
// the forwards and Hessians are repeated per level. Disk: see level_codec.h
// (about 1.7 bytes per weight per sparsity level around 0.6).
//
// LevelsDb is not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/evopress/level_codec.h"
#include "workers/engine/evopress/search_space.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine::evopress {

// How the entries are computed (see the file comment).
enum class DbBuild { kSequential, kDenseInputs };

struct LevelsDbSpec {
  Mode mode = Mode::kSparsity;  // sparsity or bits
  DbBuild build = DbBuild::kSequential;
  bool true_sequential = false;  // sequential build: the calibration's true_sequential
  engine::QuantGrid grid;       // bits: group_size and symmetry (the bits come from the level)
  bool act_order = true;        // bits: GPTQ with act-order, static groups and massive_fallback
  int64_t block_size = 128;     // solver block
  double percdamp = 0.01;
  // dense_inputs: an expert routed fewer tokens gets its layer's pooled
  // Hessian (the calibration's min_expert_tokens).
  int min_expert_tokens = 32;
};

// "sparsity-0.6000" or "bits-4".
std::string LevelName(Mode mode, double level);

// "sequential" or "dense_inputs".
const char* DbBuildName(DbBuild build);

// See the file comment (`space` contributes its unit names to a sequential
// build's fingerprint). Reads every tensor of the model (a SHA-256 pass).
std::string LevelsDbFingerprint(const engine::LlamaModel& model,
                                const std::vector<std::vector<int32_t>>& windows,
                                const LevelsDbSpec& spec, const SearchSpace& space);

class LevelsDb {
 public:
  // `store` must outlive the database; `space` is copied.
  LevelsDb(CheckpointStore* store, std::string fingerprint, SearchSpace space, LevelsDbSpec spec,
           int64_t cache_bytes = int64_t{1} << 30);

  const std::string& fingerprint() const { return fingerprint_; }
  const SearchSpace& space() const { return space_; }
  const LevelsDbSpec& spec() const { return spec_; }

  // "<module>/<level name>" (manifest key) and the store's entry name.
  std::string EntryKey(int unit, int level) const;
  std::string EntryName(int unit, int level) const;

  // The entries stored for `block` (dense_inputs) or at `level` index
  // (sequential) by their manifests (empty when none).
  absl::StatusOr<std::set<std::string>> StoredEntries(int block);
  absl::Status PutEntry(int unit, int level, const std::string& bytes);
  absl::Status PutStoredEntries(int block, const std::set<std::string>& keys);
  absl::StatusOr<std::set<std::string>> StoredLevelEntries(int level);
  absl::Status PutStoredLevelEntries(int level, const std::set<std::string>& keys);

  // The unit's weight at `level`, decoded on first use and kept in an LRU
  // cache of at most cache_bytes of decoded weights. NOT_FOUND when the
  // entry was never built; DATA_LOSS for a corrupt one.
  absl::StatusOr<std::shared_ptr<const LevelWeight>> Load(int unit, int level);
  int64_t decodes() const { return decodes_; }

 private:
  std::string Prefix() const { return "evopress/db/" + fingerprint_ + "/"; }

  CheckpointStore* store_;
  std::string fingerprint_;
  SearchSpace space_;
  LevelsDbSpec spec_;
  int64_t cache_bytes_;
  int64_t cached_bytes_ = 0;
  int64_t decodes_ = 0;
  std::list<int64_t> lru_;  // most recent first
  struct Cached {
    std::list<int64_t>::iterator pos;
    std::shared_ptr<const LevelWeight> weight;
    int64_t bytes = 0;
  };
  std::map<int64_t, Cached> cache_;
};

struct DbBuildStats {
  int64_t solved = 0;  // entries computed by this call
  int64_t reused = 0;  // entries found already stored
  double forward_s = 0, hessian_s = 0, solve_s = 0, store_s = 0;
};

// dense_inputs build (INVALID_ARGUMENT for a sequential db.spec()).
// Builds the entries missing from `db` for the units of `blocks` (empty: every
// block) at every level of db.space(), from `dense` on the calibration
// `windows` (the same windows the fingerprint was computed on). The unit of
// work, for fanning the build out over workers, is a block; the dense pass
// stops after the last block with missing entries (none: no pass). Progress "levels"
// (block i of N) and a log line per built block. CANCELLED when `cancel` is
// set (checked between layers); solver errors name the tensor.
absl::StatusOr<DbBuildStats> BuildLevelsDb(const engine::LlamaModel& dense,
                                           engine::Backend& backend,
                                           const std::vector<std::vector<int32_t>>& windows,
                                           const std::set<int>& blocks, int threads, LevelsDb& db,
                                           EventSink& events, const CancelToken& cancel);

// The model compressed at one uniform level by the sequential pipeline.
struct UniformModel {
  engine::LlamaModel model;  // its first `blocks` blocks (those the pass ran)
  std::map<std::string, engine::QuantizedTensor> quantized;  // "<module>.weight" -> codes (bits)
  double forward_s = 0, hessian_s = 0, solve_s = 0;
};

// Compresses every unit of the search space in the first `blocks` blocks of
// the dense model at `level` (sparsity or bits), block after block on the
// calibration windows.
using UniformCompressor = std::function<absl::StatusOr<UniformModel>(double level, int blocks)>;

// sequential build (INVALID_ARGUMENT for a dense_inputs db.spec()). Builds the
// entries missing from `db` for the units of `blocks` (empty: every block) at
// the level indices `levels` (empty: every level; the unit of work for
// fanning the build out over workers is a level):
// per level with a missing entry, one call of `compress` over the blocks up
// to the last one missing it (sparsity 0: the dense weights, no call); the
// pass's weights (and codes) of the missing units are stored, then the lists
// of the blocks they belong to. Progress "levels" (level i of N) and a log
// line per built level; CANCELLED when `cancel` is set (checked between
// levels; `compress` checks inside its pass).
absl::StatusOr<DbBuildStats> BuildSequentialLevelsDb(const engine::LlamaModel& dense,
                                                     const std::set<int>& blocks,
                                                     const UniformCompressor& compress,
                                                     LevelsDb& db, EventSink& events,
                                                     const CancelToken& cancel,
                                                     const std::set<int>& levels = {});

}  // namespace compressd::engine::evopress
