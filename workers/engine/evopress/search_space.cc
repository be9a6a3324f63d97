#include "workers/engine/evopress/search_space.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace compressd::engine::evopress {
namespace {

using engine::BlockWeights;
using engine::ExpertWeights;
using engine::Tensor;

struct Projection {
  const char* suffix;  // module name after "model.layers.<i>."
  Tensor BlockWeights::*member;
  int input;  // LinearInputs buffer
};
constexpr Projection kProjections[] = {
    {"self_attn.q_proj", &BlockWeights::q_proj, 0}, {"self_attn.k_proj", &BlockWeights::k_proj, 0},
    {"self_attn.v_proj", &BlockWeights::v_proj, 0}, {"self_attn.o_proj", &BlockWeights::o_proj, 1},
    {"mlp.gate_proj", &BlockWeights::gate_proj, 2}, {"mlp.up_proj", &BlockWeights::up_proj, 2},
    {"mlp.down_proj", &BlockWeights::down_proj, 3}, {"mlp.gate", &BlockWeights::router, 2},
    {"block_sparse_moe.gate", &BlockWeights::router, 2},
    {"mlp.shared_expert_gate", &BlockWeights::shared_expert_gate, 2}};

// An expert's projection: gate and up read the MLP input (2), down its own
// down_proj input (4; the shared expert's: 5).
struct ExpertPart {
  const char* name;
  Tensor ExpertWeights::*part;
  bool down;
};
constexpr ExpertPart kExpertParts[] = {
    {"gate_proj", &ExpertWeights::gate_proj, false}, {"up_proj", &ExpertWeights::up_proj, false},
    {"down_proj", &ExpertWeights::down_proj, true},  {"w1", &ExpertWeights::gate_proj, false},
    {"w3", &ExpertWeights::up_proj, false},          {"w2", &ExpertWeights::down_proj, true}};

// Fills `u` from "model.layers.<i>.<suffix>" for a model of `c`; its group's
// name (the suffix, an expert's index as "*") into *group. False when it is
// not a linear of a decoder block.
bool ParseModule(const engine::LlamaConfig& c, const std::string& module, Unit* u,
                 std::string* group) {
  constexpr absl::string_view kPrefix = "model.layers.";
  if (!absl::StartsWith(module, kPrefix)) return false;
  const size_t dot = module.find('.', kPrefix.size());
  if (dot == std::string::npos) return false;
  if (!absl::SimpleAtoi(module.substr(kPrefix.size(), dot - kPrefix.size()), &u->block)) return false;
  if (u->block < 0 || u->block >= c.n_layers) return false;
  const std::string suffix = module.substr(dot + 1);
  *group = suffix;
  for (const Projection& p : kProjections) {
    if (suffix == p.suffix) {
      u->member = p.member;
      u->input = p.input;
      return true;
    }
  }
  std::vector<std::string> parts = absl::StrSplit(suffix, '.');
  int expert = -2;
  if (parts.size() == 4 && parts[1] == "experts" &&
      parts[0] == (c.mixtral_names ? "block_sparse_moe" : "mlp") &&
      absl::SimpleAtoi(parts[2], &expert) && expert >= 0 && expert < c.n_experts) {
    *group = absl::StrCat(parts[0], ".experts.*.", parts[3]);
  } else if (!(parts.size() == 3 && parts[0] == "mlp" && parts[1] == "shared_expert" &&
               c.shared_expert_intermediate > 0)) {
    return false;
  }
  for (const ExpertPart& e : kExpertParts) {
    if (parts.back() != e.name) continue;
    u->expert = expert;
    u->part = e.part;
    u->input = e.down ? (expert == -2 ? 5 : 4) : 2;
    return true;
  }
  return false;
}

void AddGroups(SearchSpace* space, const std::vector<std::string>& names) {
  std::map<int, std::vector<int>> by_group;
  for (size_t u = 0; u < space->units.size(); ++u) by_group[space->units[u].group].push_back(u);
  // Renumber the groups that have units, in projection order.
  std::map<int, int> renumber;
  for (auto& [g, members] : by_group) {
    renumber[g] = static_cast<int>(space->groups.size());
    space->group_names.push_back(names[g]);
    space->groups.push_back(members);
  }
  for (Unit& u : space->units) u.group = renumber[u.group];
}

absl::StatusOr<SearchSpace> LayerSpace(const engine::LlamaModel& model,
                                       const std::vector<std::string>& modules) {
  SearchSpace space;
  // Groups in kProjections' order, then the experts' in the order first seen.
  std::vector<std::string> names;
  for (const Projection& p : kProjections) names.push_back(p.suffix);
  std::vector<std::pair<std::pair<int, int>, Unit>> found;  // ((group, block), unit)
  for (const std::string& m : modules) {
    Unit u;
    std::string group;
    if (!ParseModule(model.config, m, &u, &group)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "targets: \"", m, "\" is not a linear layer of a decoder block; evopress searches over "
          "block linears only (add it to targets.ignore)"));
    }
    auto it = std::find(names.begin(), names.end(), group);
    if (it == names.end()) it = names.insert(names.end(), group);
    u.name = m;
    u.group = static_cast<int>(it - names.begin());
    found.push_back({{u.group, u.block}, std::move(u)});
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [key, u] : found) {
    const Tensor& w = UnitWeight(model.blocks[u.block], u);
    u.numel = w.numel();
    u.rows = w.rows();
    u.cols = w.cols();
    space.units.push_back(std::move(u));
  }
  AddGroups(&space, names);
  return space;
}

SearchSpace DropSpace(const engine::LlamaModel& model, bool attention, bool mlp) {
  SearchSpace space;
  space.levels = {0.0, 1.0};
  for (int half = 0; half < 2; ++half) {
    if (!(half == 0 ? attention : mlp)) continue;
    for (int b = 0; b < model.config.n_layers; ++b) {
      const BlockWeights& w = model.blocks[b];
      Unit u;
      u.block = b;
      u.group = half;
      u.attention = half == 0;
      u.name = absl::StrCat("model.layers.", b, half == 0 ? ".self_attn" : ".mlp");
      u.numel = half == 0 ? w.q_proj.numel() + w.k_proj.numel() + w.v_proj.numel() +
                                w.o_proj.numel()
                          : w.gate_proj.numel() + w.up_proj.numel() + w.down_proj.numel();
      if (half == 1) {  // an MoE layer's MLP: the router and every expert
        u.numel += w.router.numel() + w.shared_expert_gate.numel();
        for (const ExpertWeights& e : w.experts) {
          u.numel += e.gate_proj.numel() + e.up_proj.numel() + e.down_proj.numel();
        }
        const ExpertWeights& s = w.shared_expert;
        u.numel += s.gate_proj.numel() + s.up_proj.numel() + s.down_proj.numel();
      }
      space.units.push_back(std::move(u));
    }
  }
  AddGroups(&space, {"self_attn", "mlp"});
  return space;
}

// Index of a uniformly drawn element of [0, n), n > 0.
size_t Draw(std::mt19937_64& rng, size_t n) { return static_cast<size_t>(rng() % n); }

// One level switch inside a randomly drawn group; false when the drawn group
// has no unit that can go up with a distinct one that can go down.
bool Switch(const SearchSpace& space, Config* c, std::mt19937_64& rng) {
  size_t total = 0;
  for (const auto& g : space.groups) total += g.size() >= 2 ? g.size() : 0;
  if (total == 0) return false;
  size_t x = Draw(rng, total);
  size_t gi = 0;
  for (; gi < space.groups.size(); ++gi) {
    const size_t w = space.groups[gi].size() >= 2 ? space.groups[gi].size() : 0;
    if (x < w) break;
    x -= w;
  }
  const std::vector<int>& group = space.groups[gi];
  std::vector<int> ups;
  for (int u : group) {
    if ((*c)[u] < space.hi[u]) ups.push_back(u);
  }
  if (ups.empty()) return false;
  const int up = ups[Draw(rng, ups.size())];
  std::vector<int> downs;
  for (int u : group) {
    if (u != up && (*c)[u] > space.lo[u]) downs.push_back(u);
  }
  if (downs.empty()) return false;
  const int down = downs[Draw(rng, downs.size())];
  ++(*c)[up];
  --(*c)[down];
  return true;
}

}  // namespace

engine::Tensor& UnitWeight(engine::BlockWeights& b, const Unit& u) {
  if (u.member != nullptr) return b.*(u.member);
  engine::ExpertWeights& e =
      u.expert == -2 ? b.shared_expert : b.experts[static_cast<size_t>(u.expert)];
  return e.*(u.part);
}

const engine::Tensor& UnitWeight(const engine::BlockWeights& b, const Unit& u) {
  return UnitWeight(const_cast<engine::BlockWeights&>(b), u);
}

absl::StatusOr<SearchSpace> MakeSearchSpace(const engine::LlamaModel& model,
                                            const std::vector<std::string>& modules,
                                            const v1::EvoPressStage& stage, Mode mode) {
  SearchSpace space;
  if (mode == Mode::kDrop) {
    const bool both = !stage.drop_attention() && !stage.drop_mlp();
    space = DropSpace(model, both || stage.drop_attention(), both || stage.drop_mlp());
    space.mode = Mode::kDrop;
  } else {
    absl::StatusOr<SearchSpace> s = LayerSpace(model, modules);
    if (!s.ok()) return s.status();
    space = *std::move(s);
    space.mode = mode;
    space.levels.assign(stage.levels().begin(), stage.levels().end());
  }
  if (space.units.empty()) return absl::InvalidArgumentError("evopress: no units to search over");
  if (space.levels.empty()) return absl::InvalidArgumentError("evopress.levels: must not be empty");
  space.lo.assign(space.units.size(), 0);
  space.hi.assign(space.units.size(), static_cast<int>(space.levels.size()) - 1);
  return space;
}

absl::StatusOr<Config> InitialConfig(const SearchSpace& space, double target,
                                     std::mt19937_64& rng) {
  const std::vector<double>& lv = space.levels;
  constexpr double kEps = 1e-9;
  if (target < lv.front() - kEps || target > lv.back() + kEps) {
    return absl::InvalidArgumentError(absl::StrCat("evopress.target: ", target,
                                                   " is outside the levels [", lv.front(), ", ",
                                                   lv.back(), "]"));
  }
  size_t a = 0;
  while (a + 1 < lv.size() && lv[a + 1] <= target + kEps) ++a;
  Config config(space.units.size(), static_cast<int>(a));
  if (std::abs(lv[a] - target) <= kEps) return config;
  const double frac = (target - lv[a]) / (lv[a + 1] - lv[a]);
  for (const std::vector<int>& group : space.groups) {
    std::vector<int> order = group;
    const size_t n_up = static_cast<size_t>(std::llround(frac * order.size()));
    for (size_t i = 0; i < n_up; ++i) {  // partial Fisher-Yates
      std::swap(order[i], order[i + Draw(rng, order.size() - i)]);
      config[order[i]] = static_cast<int>(a + 1);
    }
  }
  return config;
}

void SetLevelBounds(const Config& initial, int shift, SearchSpace* space) {
  const int top = static_cast<int>(space->levels.size()) - 1;
  for (size_t u = 0; u < space->units.size(); ++u) {
    space->lo[u] = shift > 0 ? std::max(0, initial[u] - shift) : 0;
    space->hi[u] = shift > 0 ? std::min(top, initial[u] + shift) : top;
  }
}

Config Mutate(const SearchSpace& space, const Config& parent, std::mt19937_64& rng) {
  Config child = parent;
  const uint64_t r = rng() % 7;  // P(1) = 4/7, P(2) = 2/7, P(3) = 1/7
  const int switches = r < 4 ? 1 : (r < 6 ? 2 : 3);
  for (int s = 0; s < switches; ++s) {
    for (int attempt = 0; attempt < 8 && !Switch(space, &child, rng); ++attempt) {
    }
  }
  return child;
}

std::vector<int64_t> GroupLevelSums(const SearchSpace& space, const Config& config) {
  std::vector<int64_t> sums(space.groups.size(), 0);
  for (size_t u = 0; u < space.units.size(); ++u) sums[space.units[u].group] += config[u];
  return sums;
}

double MeanLevel(const SearchSpace& space, const Config& config) {
  double sum = 0, numel = 0;
  for (size_t u = 0; u < space.units.size(); ++u) {
    sum += space.levels[config[u]] * static_cast<double>(space.units[u].numel);
    numel += static_cast<double>(space.units[u].numel);
  }
  return numel > 0 ? sum / numel : 0.0;
}

uint64_t ConfigHash(const Config& config) {
  uint64_t h = 14695981039346656037ull;
  for (int level : config) {
    for (int byte = 0; byte < 4; ++byte) {
      h ^= static_cast<uint64_t>((static_cast<uint32_t>(level) >> (8 * byte)) & 0xff);
      h *= 1099511628211ull;
    }
  }
  return h;
}

std::string ConfigString(const SearchSpace& space, const Config& config) {
  std::vector<std::string> lines;
  for (size_t g = 0; g < space.groups.size(); ++g) {
    std::vector<std::string> values;
    for (int u : space.groups[g]) values.push_back(absl::StrCat(space.levels[config[u]]));
    lines.push_back(absl::StrCat(space.group_names[g], ": ", absl::StrJoin(values, " ")));
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace compressd::engine::evopress
