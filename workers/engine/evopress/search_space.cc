#include "workers/engine/evopress/search_space.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace compressd::engine::evopress {
namespace {

using engine::BlockWeights;
using engine::Tensor;

struct Projection {
  const char* suffix;  // module name after "model.layers.<i>."
  Tensor BlockWeights::*member;
};
constexpr Projection kProjections[] = {
    {"self_attn.q_proj", &BlockWeights::q_proj}, {"self_attn.k_proj", &BlockWeights::k_proj},
    {"self_attn.v_proj", &BlockWeights::v_proj}, {"self_attn.o_proj", &BlockWeights::o_proj},
    {"mlp.gate_proj", &BlockWeights::gate_proj}, {"mlp.up_proj", &BlockWeights::up_proj},
    {"mlp.down_proj", &BlockWeights::down_proj}};
constexpr int kProjectionCount = 7;

// "model.layers.<i>.<suffix>" -> block i and the projection index.
bool ParseModule(const std::string& module, int n_layers, int* block, int* projection) {
  constexpr absl::string_view kPrefix = "model.layers.";
  if (!absl::StartsWith(module, kPrefix)) return false;
  const size_t dot = module.find('.', kPrefix.size());
  if (dot == std::string::npos) return false;
  if (!absl::SimpleAtoi(module.substr(kPrefix.size(), dot - kPrefix.size()), block)) return false;
  if (*block < 0 || *block >= n_layers) return false;
  const std::string suffix = module.substr(dot + 1);
  for (int p = 0; p < kProjectionCount; ++p) {
    if (suffix == kProjections[p].suffix) {
      *projection = p;
      return true;
    }
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
  std::vector<std::pair<std::pair<int, int>, std::string>> found;  // (projection, block)
  for (const std::string& m : modules) {
    int block = 0, projection = 0;
    if (!ParseModule(m, model.config.n_layers, &block, &projection)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "targets: \"", m, "\" is not a linear layer of a decoder block; evopress searches over "
          "block linears only (add it to targets.ignore)"));
    }
    found.push_back({{projection, block}, m});
  }
  std::sort(found.begin(), found.end());
  for (const auto& [key, name] : found) {
    const Projection& p = kProjections[key.first];
    Unit u;
    u.name = name;
    u.block = key.second;
    u.group = key.first;
    u.member = p.member;
    const Tensor& w = model.blocks[u.block].*(p.member);
    u.numel = w.numel();
    u.rows = w.rows();
    u.cols = w.cols();
    space.units.push_back(std::move(u));
  }
  std::vector<std::string> names;
  for (const Projection& p : kProjections) names.push_back(p.suffix);
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
