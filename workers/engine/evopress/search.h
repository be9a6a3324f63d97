// The EvoPress evolutionary search (Sidorov, Kurtic, Alistarh et al. 2024,
// Algorithm 1): a (1 + lambda) evolution with multi-step selection.
//
// Each generation g:
//   1. lambda offspring of the parent by mutation (search_space.h: level
//      switches that keep the budget exactly); an offspring equal to the
//      parent or to any configuration generated before (by hash, over the
//      whole run) is rejected and redrawn (at most 100 * lambda draws);
//   2. selection steps s = 0..S-1: fresh windows of the calibration token
//      stream (DrawWindows, seeded by (seed, g, s)), step_tokens[s] tokens in
//      all; every candidate's fitness on them (evaluator.h); the best
//      survivors[s] go on to step s + 1. The parent re-enters at the last
//      step only, listed first, and the sort is stable: an offspring must beat
//      it strictly to replace it;
//   3. the best of the last step becomes the parent.
// The parent's fitness never rises on a fixed set of tokens, so on a stream
// that yields the same windows every step the final fitness is at most the
// initial one.
//
// Reproducible: the only state carried between generations is the parent,
// the mutation RNG (std::mt19937_64) and the set of configurations seen;
// after every generation it is stored in the CheckpointStore as
// "evopress/generation" (JSON, with a fingerprint of the search's inputs), and
// a run that finds a checkpoint with its fingerprint continues from it and
// ends exactly where an uninterrupted run would.
//
// Events per generation: Progress "search" (generation g of G), MetricPoint
// "fitness" (the parent's), "survivor_fitness" (labels step, rank) and
// "tokens" (tokens evaluated so far), and a log line with the configuration.
// Cost per generation: sum over steps of (candidates x step tokens) candidate
// evaluations, plus one dense pass per step.
#pragma once

#include <cstdint>
#include <random>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/search_space.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine::evopress {

struct SearchOptions {
  int generations = 50;
  int offspring = 16;
  std::vector<int> survivors = {4, 1};
  std::vector<int64_t> step_tokens = {2048, 8192};
  uint64_t seed = 0;
  int64_t window = 512;  // tokens per fitness window
};

struct SearchState {
  int generation = 0;  // generations completed
  Config parent;
  double fitness = 0;          // the parent's, on the last step of the last generation
  double initial_fitness = 0;  // the initial configuration's, in generation 0
  std::vector<double> history;  // the parent's fitness after each generation
  int64_t tokens = 0;           // tokens evaluated (candidates x step tokens)
  std::string rng;              // std::mt19937_64 state (operator<<)
  std::vector<uint64_t> seen;   // ConfigHash of every configuration generated
};

struct SearchResult {
  SearchState state;
  int resumed_generations = 0;  // taken from a checkpoint
};

// The windows of one selection step: ceil(tokens / window) windows at
// offsets rng() % (n - window + 1) of a std::mt19937_64 seeded from (seed,
// generation, step); the last is cut to make `tokens` in all. A stream
// shorter than `window` gives windows of the whole stream.
std::vector<std::vector<int32_t>> DrawWindows(const std::vector<int32_t>& stream, int64_t window,
                                              int64_t tokens, uint64_t seed, int generation,
                                              int step);

// The checkpoint codec (JSON). DATA_LOSS naming the checkpoint for bad bytes.
std::string EncodeSearchState(const SearchState& state, const std::string& fingerprint);
absl::StatusOr<SearchState> DecodeSearchState(const std::string& bytes,
                                              std::string* fingerprint);

// The fitness of one selection step's candidates (lower is better): every
// configuration of `pool` on the windows DrawWindows(stream, window,
// step_tokens[step], seed, generation, step), with `base` (the parent) as
// the prefix-reuse base; *tokens receives the step's token count. Local
// (LocalStepFitness) or fanned out over workers (pipeline/evopress_session.h).
using StepFitness = std::function<absl::StatusOr<std::vector<double>>(
    int generation, int step, const std::vector<Config>& pool, const Config& base,
    int64_t* tokens)>;

// The StepFitness of `evaluator` in this process. Every argument is held by
// reference.
StepFitness LocalStepFitness(CandidateEvaluator& evaluator, const std::vector<int32_t>& stream,
                             const SearchOptions& options, const CancelToken& cancel);

// Runs the search from `initial` (or from the checkpoint in `checkpoints`
// whose fingerprint is `fingerprint`; null: no checkpoints). INVALID_ARGUMENT
// for empty survivors / step_tokens, an empty stream or a configuration of
// the wrong size; CANCELLED when `cancel` is set.
absl::StatusOr<SearchResult> RunSearch(const SearchSpace& space, const Config& initial,
                                       CandidateEvaluator& evaluator,
                                       const std::vector<int32_t>& stream,
                                       const SearchOptions& options,
                                       const std::string& fingerprint,
                                       CheckpointStore* checkpoints, EventSink& events,
                                       const CancelToken& cancel);
// The same with the candidates' fitness from `fitness`.
absl::StatusOr<SearchResult> RunSearch(const SearchSpace& space, const Config& initial,
                                       const StepFitness& fitness,
                                       const std::vector<int32_t>& stream,
                                       const SearchOptions& options,
                                       const std::string& fingerprint,
                                       CheckpointStore* checkpoints, EventSink& events,
                                       const CancelToken& cancel);

}  // namespace compressd::engine::evopress
