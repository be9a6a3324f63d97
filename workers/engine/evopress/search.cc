#include "workers/engine/evopress/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace compressd::engine::evopress {
namespace {

using nlohmann::json;

constexpr char kCheckpointName[] = "evopress/generation";
constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double FromNumber(const json& j) { return j.is_number() ? j.get<double>() : kInf; }

absl::Status CheckOptions(const SearchSpace& space, const Config& initial,
                          const std::vector<int32_t>& stream, const SearchOptions& o) {
  if (o.survivors.empty() || o.survivors.size() != o.step_tokens.size()) {
    return absl::InvalidArgumentError(
        "evopress: survivors and step_tokens need one entry per selection step");
  }
  for (size_t s = 0; s < o.survivors.size(); ++s) {
    if (o.survivors[s] < 1 || o.step_tokens[s] < 1) {
      return absl::InvalidArgumentError("evopress: survivors and step_tokens must be >= 1");
    }
  }
  if (stream.empty() || o.window < 1) {
    return absl::InvalidArgumentError("evopress: no calibration tokens to draw windows from");
  }
  if (initial.size() != space.units.size()) {
    return absl::InvalidArgumentError("evopress: the initial configuration has the wrong size");
  }
  return absl::OkStatus();
}

// The state to start from: a checkpoint with our fingerprint, else `initial`.
absl::StatusOr<SearchState> StartState(const SearchSpace& space, const Config& initial,
                                       const SearchOptions& options,
                                       const std::string& fingerprint,
                                       CheckpointStore* checkpoints, EventSink& events) {
  if (checkpoints != nullptr) {
    absl::StatusOr<std::string> bytes = checkpoints->Get(kCheckpointName);
    if (!absl::IsNotFound(bytes.status())) {
      RETURN_IF_ERROR(bytes.status());
      std::string stored_fingerprint;
      ASSIGN_OR_RETURN(SearchState st, DecodeSearchState(*bytes, &stored_fingerprint));
      if (stored_fingerprint == fingerprint && st.parent.size() == space.units.size()) {
        EmitLog(events, "info", absl::StrCat("evopress: resuming after generation ",
                                             st.generation));
        return st;
      }
      EmitLog(events, "warning",
              "evopress: the generation checkpoint is from another search; starting over");
    }
  }
  SearchState st;
  st.parent = initial;
  st.seen = {ConfigHash(initial)};
  std::mt19937_64 rng(options.seed);
  std::ostringstream out;
  out << rng;
  st.rng = out.str();
  return st;
}

std::vector<Config> MakeOffspring(const SearchSpace& space, const Config& parent, int lambda,
                                  std::mt19937_64& rng, std::unordered_set<uint64_t>* seen,
                                  SearchState* st) {
  std::vector<Config> out;
  for (int attempt = 0; attempt < 100 * lambda && static_cast<int>(out.size()) < lambda;
       ++attempt) {
    Config child = Mutate(space, parent, rng);
    const uint64_t h = ConfigHash(child);
    if (child == parent || seen->count(h)) continue;
    seen->insert(h);
    st->seen.push_back(h);
    out.push_back(std::move(child));
  }
  return out;
}

// Multi-step selection of generation g; returns the new parent's fitness and
// leaves the new parent in st->parent.
absl::StatusOr<double> Select(std::vector<Config> pool, int g, const StepFitness& fitness,
                              const SearchOptions& o, SearchState* st, EventSink& events) {
  const int steps = static_cast<int>(o.survivors.size());
  double best = kInf;
  for (int s = 0; s < steps; ++s) {
    const bool last = s == steps - 1;
    if (last) pool.insert(pool.begin(), st->parent);  // first: wins ties
    if (pool.empty()) continue;
    int64_t tokens = 0;
    ASSIGN_OR_RETURN(std::vector<double> fit, fitness(g, s, pool, st->parent, &tokens));
    if (fit.size() != pool.size()) {
      return absl::InternalError(absl::StrCat("evopress step ", s, " of generation ", g, ": ",
                                              fit.size(), " fitness values for ", pool.size(),
                                              " candidates"));
    }
    st->tokens += static_cast<int64_t>(pool.size()) * tokens;
    for (double& f : fit) f = std::isnan(f) ? kInf : f;
    std::vector<size_t> order(pool.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return fit[a] < fit[b]; });
    if (last && g == 0) st->initial_fitness = fit[0];
    const size_t keep = std::min(order.size(), static_cast<size_t>(o.survivors[s]));
    std::vector<Config> next;
    for (size_t r = 0; r < keep; ++r) {
      next.push_back(pool[order[r]]);
      EmitLabeledMetric(events, "survivor_fitness", fit[order[r]],
                        {{"generation", absl::StrCat(g)},
                         {"step", absl::StrCat(s)},
                         {"rank", absl::StrCat(r)}});
    }
    pool = std::move(next);
    best = fit[order[0]];
  }
  st->parent = pool.front();
  return best;
}

}  // namespace

std::vector<std::vector<int32_t>> DrawWindows(const std::vector<int32_t>& stream, int64_t window,
                                              int64_t tokens, uint64_t seed, int generation,
                                              int step) {
  const int64_t n = static_cast<int64_t>(stream.size());
  const int64_t w = std::min(window, n);
  std::vector<std::vector<int32_t>> out;
  if (w < 1 || tokens < 1) return out;
  std::mt19937_64 rng(SplitMix64(SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(generation)) ^
                                 static_cast<uint64_t>(step)));
  const int64_t count = (tokens + w - 1) / w;
  const uint64_t range = static_cast<uint64_t>(n - w + 1);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t off = static_cast<int64_t>(rng() % range);
    const int64_t len = i + 1 < count ? w : tokens - w * (count - 1);
    out.emplace_back(stream.begin() + off, stream.begin() + off + len);
  }
  return out;
}

std::string EncodeSearchState(const SearchState& st, const std::string& fingerprint) {
  json history = json::array();
  for (double f : st.history) history.push_back(Number(f));
  return json{{"version", 1},
              {"fingerprint", fingerprint},
              {"generation", st.generation},
              {"parent", st.parent},
              {"fitness", Number(st.fitness)},
              {"initial_fitness", Number(st.initial_fitness)},
              {"history", history},
              {"tokens", st.tokens},
              {"rng", st.rng},
              {"seen", st.seen}}
      .dump();
}

absl::StatusOr<SearchState> DecodeSearchState(const std::string& bytes,
                                              std::string* fingerprint) {
  const json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  const auto bad = [] {
    return absl::DataLossError(absl::StrCat(kCheckpointName, ": not a search checkpoint"));
  };
  if (!j.is_object()) return bad();
  SearchState st;
  try {
    if (j.at("version").get<int>() != 1) return bad();
    *fingerprint = j.at("fingerprint").get<std::string>();
    st.generation = j.at("generation").get<int>();
    st.parent = j.at("parent").get<Config>();
    st.fitness = FromNumber(j.at("fitness"));
    st.initial_fitness = FromNumber(j.at("initial_fitness"));
    for (const json& f : j.at("history")) st.history.push_back(FromNumber(f));
    st.tokens = j.at("tokens").get<int64_t>();
    st.rng = j.at("rng").get<std::string>();
    st.seen = j.at("seen").get<std::vector<uint64_t>>();
  } catch (const json::exception&) {
    return bad();
  }
  return st;
}

StepFitness LocalStepFitness(CandidateEvaluator& evaluator, const std::vector<int32_t>& stream,
                             const SearchOptions& options, const CancelToken& cancel) {
  return [&](int g, int s, const std::vector<Config>& pool, const Config& base,
             int64_t* tokens) -> absl::StatusOr<std::vector<double>> {
    RETURN_IF_ERROR(evaluator.SetWindows(
        DrawWindows(stream, options.window, options.step_tokens[s], options.seed, g, s)));
    *tokens = evaluator.tokens();
    return evaluator.Evaluate(pool, &base, cancel);
  };
}

absl::StatusOr<SearchResult> RunSearch(const SearchSpace& space, const Config& initial,
                                       CandidateEvaluator& evaluator,
                                       const std::vector<int32_t>& stream,
                                       const SearchOptions& options,
                                       const std::string& fingerprint,
                                       CheckpointStore* checkpoints, EventSink& events,
                                       const CancelToken& cancel) {
  return RunSearch(space, initial, LocalStepFitness(evaluator, stream, options, cancel), stream,
                   options, fingerprint, checkpoints, events, cancel);
}

absl::StatusOr<SearchResult> RunSearch(const SearchSpace& space, const Config& initial,
                                       const StepFitness& fitness,
                                       const std::vector<int32_t>& stream,
                                       const SearchOptions& options,
                                       const std::string& fingerprint,
                                       CheckpointStore* checkpoints, EventSink& events,
                                       const CancelToken& cancel) {
  RETURN_IF_ERROR(CheckOptions(space, initial, stream, options));
  SearchResult result;
  ASSIGN_OR_RETURN(result.state,
                   StartState(space, initial, options, fingerprint, checkpoints, events));
  SearchState& st = result.state;
  result.resumed_generations = st.generation;
  std::mt19937_64 rng;
  std::istringstream(st.rng) >> rng;
  std::unordered_set<uint64_t> seen(st.seen.begin(), st.seen.end());
  // The units once, then the best configuration's levels per generation:
  // the dashboard's allocation heat map (docs/api.md, "Job events").
  for (size_t u = 0; u < space.units.size(); ++u) {
    EmitLabeledMetric(events, "search_unit", static_cast<double>(u),
                      {{"unit", space.units[u].name}, {"block", absl::StrCat(space.units[u].block)}});
  }
  for (int g = st.generation; g < options.generations; ++g) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    EmitProgress(events, "search", g, options.generations, absl::StrCat("generation ", g + 1));
    std::vector<Config> offspring = MakeOffspring(space, st.parent, options.offspring, rng,
                                                  &seen, &st);
    ASSIGN_OR_RETURN(st.fitness, Select(std::move(offspring), g, fitness, options, &st, events));
    st.history.push_back(st.fitness);
    st.generation = g + 1;
    std::ostringstream out;
    out << rng;
    st.rng = out.str();
    EmitLabeledMetric(events, "fitness", st.fitness, {{"generation", absl::StrCat(g)}});
    EmitLabeledMetric(events, "tokens", static_cast<double>(st.tokens),
                      {{"generation", absl::StrCat(g)}});
    std::vector<std::string> levels;
    for (int level : st.parent) levels.push_back(absl::StrCat(space.levels[level]));
    EmitLabeledMetric(events, "best_levels", MeanLevel(space, st.parent),
                      {{"generation", absl::StrCat(g)}, {"levels", absl::StrJoin(levels, ",")}});
    EmitLog(events, "info",
            absl::StrFormat("evopress generation %d of %d: fitness %.6g (initial %.6g), mean "
                            "level %.4f\n%s",
                            g + 1, options.generations, st.fitness, st.initial_fitness,
                            MeanLevel(space, st.parent), ConfigString(space, st.parent)));
    if (checkpoints != nullptr) {
      RETURN_IF_ERROR(checkpoints->Put(kCheckpointName, EncodeSearchState(st, fingerprint)));
    }
  }
  EmitProgress(events, "search", options.generations, options.generations, "done");
  return result;
}

}  // namespace compressd::engine::evopress
