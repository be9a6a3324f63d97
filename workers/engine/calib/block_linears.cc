#include "workers/engine/calib/block_linears.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

struct DenseLinear {
  const char* module;  // relative to "model.layers.<i>."
  Tensor BlockWeights::*member;
  int input;
};
constexpr DenseLinear kAttention[] = {{"self_attn.q_proj", &BlockWeights::q_proj, 0},
                                      {"self_attn.k_proj", &BlockWeights::k_proj, 0},
                                      {"self_attn.v_proj", &BlockWeights::v_proj, 0},
                                      {"self_attn.o_proj", &BlockWeights::o_proj, 1}};
constexpr DenseLinear kDenseMlp[] = {{"mlp.gate_proj", &BlockWeights::gate_proj, 2},
                                     {"mlp.up_proj", &BlockWeights::up_proj, 2},
                                     {"mlp.down_proj", &BlockWeights::down_proj, 3}};

// The expert index in "...experts.<e>.<proj>.weight", or -1.
int ExpertIndex(const std::string& suffix) {
  const size_t at = suffix.find("experts.");
  if (at == std::string::npos) return -1;
  return std::atoi(suffix.c_str() + at + sizeof("experts.") - 1);
}

}  // namespace

std::vector<BlockLinear> BlockLinearsOf(const LlamaConfig& c, int layer, BlockWeights* block) {
  std::vector<BlockLinear> out;
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  auto add = [&](const DenseLinear& d) {
    out.push_back({p + d.module, block != nullptr ? &(block->*d.member) : nullptr, d.input,
                   d.input == 0 ? 0 : d.input == 1 ? 1 : d.input == 2 ? 2 : 3});
  };
  for (const DenseLinear& d : kAttention) add(d);
  if (!LayerIsMoe(c, layer)) {
    for (const DenseLinear& d : kDenseMlp) add(d);
    return out;
  }
  for (const BlockPart& m : MoeTensors(c, layer, block)) {
    const std::string module(absl::StripSuffix(m.suffix, ".weight"));
    const bool down = absl::EndsWith(module, "down_proj") || absl::EndsWith(module, ".w2");
    const bool shared = absl::StartsWith(module, "mlp.shared_expert.");
    BlockLinear l{p + module, m.tensor, 2, 2, -1};
    if (down) {
      l.input = shared ? 5 : 4;
      l.step = 3;
    }
    if (!shared && !IsRouterSuffix(module)) l.expert = ExpertIndex(module);
    out.push_back(std::move(l));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const BlockLinear& a, const BlockLinear& b) { return a.step < b.step; });
  return out;
}

std::vector<int64_t> ExpertTokenCounts(const LinearInputs& in, int n_experts) {
  std::vector<int64_t> counts(static_cast<size_t>(n_experts));
  for (int64_t s = 0; s < in.tokens * in.experts_per_token; ++s) {
    const int32_t e = in.routes[s];
    if (e >= 0 && e < n_experts) ++counts[static_cast<size_t>(e)];
  }
  return counts;
}

std::vector<int64_t> ExpertRows(const LinearInputs& in, int input, int expert) {
  std::vector<int64_t> rows;
  const int k = in.experts_per_token;
  for (int64_t s = 0; s < in.tokens * k; ++s) {
    if (in.routes[s] == expert) rows.push_back(input == 4 ? s : s / k);
  }
  return rows;
}

absl::StatusOr<std::vector<float>> InputHessian(const LinearInputs& in, int input, int64_t dim,
                                                const std::vector<int64_t>* rows,
                                                SolverBackend& solver, int threads) {
  std::unique_ptr<HessianSum> sum = solver.NewHessian(dim, threads);
  constexpr int64_t kChunk = HessianAccumulator::kChunkTokens;
  const float* x = in.input(input);
  if (rows == nullptr) {  // contiguous: the accumulator's own chunks, each released after use
    const int64_t n = input == 4 ? in.tokens * in.experts_per_token : in.tokens;
    for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
      const int64_t k = std::min(kChunk, n - t0);
      RETURN_IF_ERROR(sum->Add(x + t0 * dim, k));
      if (in.release && input != 4) in.release(input, t0, t0 + k);
    }
    return sum->Hessian();
  }
  std::vector<float> gathered;
  for (size_t r0 = 0; r0 < rows->size(); r0 += kChunk) {
    const size_t k = std::min<size_t>(kChunk, rows->size() - r0);
    gathered.resize(k * static_cast<size_t>(dim));
    for (size_t i = 0; i < k; ++i) {
      std::memcpy(&gathered[i * dim], x + (*rows)[r0 + i] * dim, sizeof(float) * dim);
    }
    RETURN_IF_ERROR(sum->Add(gathered.data(), static_cast<int64_t>(k)));
  }
  return sum->Hessian();
}

}  // namespace compressd::engine
