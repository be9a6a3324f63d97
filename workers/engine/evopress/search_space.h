// The search space of EvoPress (Sidorov, Kurtic, Alistarh et al., "EvoPress:
// Towards Optimal Dynamic Model Compression via Evolutionary Search", 2024):
// a configuration assigns each unit one of L compression levels, and every
// configuration the search visits has exactly the budget of the initial one.
//
// Units: sparsity / bits mode: one targeted linear layer of a decoder block
// ("model.layers.3.mlp.up_proj"), each expert's projections units of their
// own ("model.layers.3.mlp.experts.5.up_proj"); drop mode: one sub-block (the
// attention or the MLP half of a block; level 0 kept, 1 dropped). Units are
// grouped by projection type (q, k, v, o, gate, up, down; an expert's by its
// projection, "mlp.experts.*.up_proj", over every expert of every layer;
// drop: attention, mlp), so the units of a group have the same size.
//
// Budget: levels are equally spaced, so the cost of a unit (its parameter
// count times its sparsity or bits) is affine in its level index; a switch
// that moves one unit of a group up one level and another unit of the same
// group down one level keeps the sum of level indices of every group, hence
// the total budget, exactly (integer arithmetic, no tolerance).
//
// Mutation (the paper's level-switch mutation): k switches with
// P(k) proportional to 1 / 2^k, k in {1, 2, 3}; a switch picks a group
// (weighted by its size) and, inside it, a unit that can go up and a distinct
// unit that can go down (within [lo, hi]: the levels, bounded by
// max_level_shift around the unit's initial level). The result may equal the
// parent (the caller rejects it). All random draws are `rng() % n` on a
// std::mt19937_64, whose output the C++ standard fixes: a seed gives the same
// search on every platform.
//
// Cost: O(units) per mutation. Stateless functions; a SearchSpace is
// immutable after MakeSearchSpace / SetLevelBounds.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine::evopress {

enum class Mode { kSparsity, kBits, kDrop };

struct Unit {
  std::string name;  // module name; drop: "model.layers.<i>.self_attn" / ".mlp"
  int block = 0;
  int group = 0;
  int64_t numel = 0;
  int64_t rows = 0, cols = 0;  // the weight's shape (sparsity / bits)
  // The weight this unit's level replaces (sparsity / bits; UnitWeight): a
  // member of the block, or the `part` of expert `expert` (-2: the shared
  // expert); both null for drop.
  engine::Tensor engine::BlockWeights::*member = nullptr;
  int expert = -1;
  engine::Tensor engine::ExpertWeights::*part = nullptr;
  int input = 0;  // the engine::LinearInputs buffer that feeds it
  bool attention = false;  // drop: the attention half (else the MLP half)
};

// The unit's weight in `b` (sparsity / bits units).
engine::Tensor& UnitWeight(engine::BlockWeights& b, const Unit& u);
const engine::Tensor& UnitWeight(const engine::BlockWeights& b, const Unit& u);

// A level index per unit.
using Config = std::vector<int>;

struct SearchSpace {
  Mode mode = Mode::kSparsity;
  std::vector<double> levels;  // ascending; drop: {0, 1}
  std::vector<Unit> units;
  std::vector<std::string> group_names;
  std::vector<std::vector<int>> groups;  // unit indices per group
  std::vector<int> lo, hi;               // allowed level indices per unit (inclusive)
};

// The units of `model` for `stage` (recipe.proto EvoPressStage) in `mode`
// (the stage's mode, typed): sparsity / bits: `modules` (targeted module
// names; each must be a linear of a decoder block, INVALID_ARGUMENT naming it
// otherwise); drop: every block's allowed halves (drop_attention / drop_mlp;
// neither set: both). Bounds: every level.
absl::StatusOr<SearchSpace> MakeSearchSpace(const engine::LlamaModel& model,
                                            const std::vector<std::string>& modules,
                                            const v1::EvoPressStage& stage, Mode mode);

// The starting point: in each group, every unit at the level equal to
// `target`, or, for a target between two adjacent levels a < b, round((target
// - a) / (b - a) * n) units chosen at random at b and the rest at a (drop:
// a = 0 kept, b = 1 dropped). INVALID_ARGUMENT when the target is outside the
// levels.
absl::StatusOr<Config> InitialConfig(const SearchSpace& space, double target,
                                     std::mt19937_64& rng);

// Bounds each unit's level to within `shift` of its level in `initial`
// (shift 0: no bound beyond the levels themselves).
void SetLevelBounds(const Config& initial, int shift, SearchSpace* space);

// A mutated copy of `parent` (see the file comment).
Config Mutate(const SearchSpace& space, const Config& parent, std::mt19937_64& rng);

// Sum of level indices per group: equal for every configuration the search visits.
std::vector<int64_t> GroupLevelSums(const SearchSpace& space, const Config& config);
// Parameter-weighted mean level value (mean sparsity, mean bits, fraction of
// parameters in dropped sub-blocks).
double MeanLevel(const SearchSpace& space, const Config& config);

// FNV-1a over the level indices (duplicate detection).
uint64_t ConfigHash(const Config& config);

// One line per group, e.g. "mlp.up_proj: 0.55 0.6 0.65 ..." (drop: "mlp: 0 1 0 ...").
std::string ConfigString(const SearchSpace& space, const Config& config);

}  // namespace compressd::engine::evopress
