#include "workers/engine/evopress/fitness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine::evopress {
namespace {

using engine::LlamaForward;
using engine::SequenceBatch;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Calls fn(r) for every row r that predicts a token of its window.
template <typename Fn>
void ForEachPredictingRow(const SequenceBatch& batch, Fn fn) {
  for (int64_t s = 0; s < batch.n_seqs(); ++s) {
    for (int64_t r = batch.seq_start[s]; r + 1 < batch.seq_start[s + 1]; ++r) fn(r);
  }
}

// Online softmax statistics of a model's logits on `normed`, with a callback
// per chunk (for gathers).
struct Lse {
  std::vector<float> max, sum;
  std::vector<int32_t> argmax;
  double operator()(int64_t r) const { return double{max[r]} + std::log(double{sum[r]}); }
};

absl::StatusOr<Lse> StreamLse(const LlamaForward& fwd, const float* normed, int64_t t,
                              const std::function<void(int64_t v0, int64_t n, const float*)>& fn) {
  Lse lse{std::vector<float>(t, kNegInf), std::vector<float>(t, 0.0f), std::vector<int32_t>(t, -1)};
  engine::Backend& be = fwd.backend();
  RETURN_IF_ERROR(fwd.LmHeadChunks(normed, t, [&](int64_t v0, int64_t n, const float* logits) {
    be.SoftmaxStatsUpdate(logits, t, n, v0, lse.max.data(), lse.sum.data(), lse.argmax.data());
    fn(v0, n, logits);
    return absl::OkStatus();
  }));
  return lse;
}

// Keeps the k largest (logit, id) of each row; ties keep the lower id.
class TopK {
 public:
  TopK(int64_t t, int k) : k_(k), heaps_(t) {}
  void Add(int64_t v0, int64_t n, const float* logits) {
    for (size_t r = 0; r < heaps_.size(); ++r) {
      auto& h = heaps_[r];
      const float* row = logits + r * n;
      for (int64_t i = 0; i < n; ++i) {
        const Entry e{row[i], static_cast<int32_t>(v0 + i)};
        if (static_cast<int>(h.size()) < k_) {
          h.push_back(e);
          std::push_heap(h.begin(), h.end(), Better);
        } else if (Better(e, h.front())) {
          std::pop_heap(h.begin(), h.end(), Better);
          h.back() = e;
          std::push_heap(h.begin(), h.end(), Better);
        }
      }
    }
  }
  // Row r's entries, best first.
  std::vector<std::pair<float, int32_t>> Sorted(int64_t r) const {
    std::vector<Entry> h = heaps_[r];
    std::sort(h.begin(), h.end(), Better);
    std::vector<std::pair<float, int32_t>> out;
    for (const Entry& e : h) out.push_back({e.logit, e.id});
    return out;
  }

 private:
  struct Entry {
    float logit;
    int32_t id;
  };
  // A min-heap on "better": the heap's front is the worst kept entry.
  static bool Better(const Entry& a, const Entry& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }
  int k_;
  std::vector<std::vector<Entry>> heaps_;
};

absl::Status MakeTopK(const LlamaForward& dense, int64_t t, const float* normed, int k,
                      DenseTargets* out) {
  TopK top(t, k);
  ASSIGN_OR_RETURN(Lse lse,
                   StreamLse(dense, normed, t, [&](int64_t v0, int64_t n, const float* logits) {
                     top.Add(v0, n, logits);
                   }));
  out->top_ids.assign(t * k, 0);
  out->top_logp.assign(t * k, kNegInf);
  out->rest_logp.assign(t, kNegInf);
  for (int64_t r = 0; r < t; ++r) {
    const auto entries = top.Sorted(r);
    double mass = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      const double lp = double{entries[i].first} - lse(r);
      out->top_ids[r * k + i] = entries[i].second;
      out->top_logp[r * k + i] = static_cast<float>(lp);
      mass += std::exp(lp);
    }
    if (mass < 1.0) out->rest_logp[r] = static_cast<float>(std::log1p(-mass));
  }
  return absl::OkStatus();
}

absl::Status ScoreFullKl(FitnessSums* sums, const LlamaForward& dense, const LlamaForward& cand,
                         const SequenceBatch& batch, const float* normed,
                         const DenseTargets& targets) {
  const int64_t t = batch.tokens(), vocab = dense.config().vocab;
  if (static_cast<int64_t>(targets.normed.size()) != t * dense.config().hidden) {
    return absl::InvalidArgumentError("evopress fitness: dense targets do not fit the batch");
  }
  const bool kept = !targets.logits.empty();
  if (kept && static_cast<int64_t>(targets.logits.size()) != t * vocab) {
    return absl::InvalidArgumentError("evopress fitness: dense logits do not fit the batch");
  }
  const int64_t chunk = std::min(dense.vocab_chunk(), vocab);
  std::vector<float> pmax(t, kNegInf), psum(t, 0.0f), cross(t, 0.0f);
  std::vector<float> qmax(t, kNegInf), qsum(t, 0.0f);
  std::vector<int32_t> parg(t, -1), qarg(t, -1);
  std::vector<float> lp(kept ? 0 : t * chunk), lq(t * chunk);
  engine::Backend& be = cand.backend();
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t n = std::min(chunk, vocab - v0);
    const float* p = lp.data();
    if (kept) {
      p = targets.logits.data() + t * v0;
    } else {
      RETURN_IF_ERROR(dense.LmHeadChunk(targets.normed.data(), t, v0, n, lp.data()));
    }
    RETURN_IF_ERROR(cand.LmHeadChunk(normed, t, v0, n, lq.data()));
    be.KlStatsUpdate(p, lq.data(), t, n, v0, pmax.data(), psum.data(), parg.data(), cross.data());
    be.SoftmaxStatsUpdate(lq.data(), t, n, v0, qmax.data(), qsum.data(), qarg.data());
  }
  ForEachPredictingRow(batch, [&](int64_t r) {
    const double lse_p = double{pmax[r]} + std::log(double{psum[r]});
    const double lse_q = double{qmax[r]} + std::log(double{qsum[r]});
    sums->sum += std::max(0.0, double{cross[r]} / psum[r] - lse_p + lse_q);
    ++sums->count;
  });
  return absl::OkStatus();
}

absl::Status ScoreTopKl(FitnessSums* sums, const LlamaForward& cand, const SequenceBatch& batch,
                        const float* normed, const DenseTargets& targets, int k) {
  const int64_t t = batch.tokens();
  if (static_cast<int64_t>(targets.top_ids.size()) != t * k) {
    return absl::InvalidArgumentError("evopress fitness: dense targets do not fit the batch");
  }
  std::vector<float> q_logit(t * k, 0.0f);
  ASSIGN_OR_RETURN(Lse lse,
                   StreamLse(cand, normed, t, [&](int64_t v0, int64_t n, const float* logits) {
                     for (int64_t i = 0; i < t * k; ++i) {
                       const int64_t id = targets.top_ids[i];
                       if (id >= v0 && id < v0 + n) q_logit[i] = logits[(i / k) * n + (id - v0)];
                     }
                   }));
  ForEachPredictingRow(batch, [&](int64_t r) {
    double kl = 0, q_mass = 0;
    for (int i = 0; i < k; ++i) {
      const double lp = targets.top_logp[r * k + i];
      if (std::isinf(lp)) continue;
      const double lq = double{q_logit[r * k + i]} - lse(r);
      kl += std::exp(lp) * (lp - lq);
      q_mass += std::exp(lq);
    }
    const double rest = targets.rest_logp[r];
    if (!std::isinf(rest)) {
      const double q_rest = std::max(1.0 - q_mass, 1e-30);
      kl += std::exp(rest) * (rest - std::log(q_rest));
    }
    sums->sum += std::max(0.0, kl);
    ++sums->count;
  });
  return absl::OkStatus();
}

absl::Status ScoreNll(FitnessSums* sums, const LlamaForward& cand, const SequenceBatch& batch,
                      const float* normed) {
  const int64_t t = batch.tokens();
  std::vector<float> target_logit(t, 0.0f);
  ASSIGN_OR_RETURN(Lse lse,
                   StreamLse(cand, normed, t, [&](int64_t v0, int64_t n, const float* logits) {
                     ForEachPredictingRow(batch, [&](int64_t r) {
                       const int64_t id = batch.ids[r + 1];
                       if (id >= v0 && id < v0 + n) target_logit[r] = logits[r * n + (id - v0)];
                     });
                   }));
  ForEachPredictingRow(batch, [&](int64_t r) {
    sums->sum += lse(r) - double{target_logit[r]};
    ++sums->count;
  });
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DenseTargets> MakeDenseTargets(const LlamaForward& dense, const SequenceBatch& batch,
                                              std::vector<float> normed, const FitnessSpec& spec,
                                              bool keep_logits) {
  DenseTargets out;
  if (spec.kind != FitnessKind::kKl) return out;
  if (spec.top_k <= 0) {
    if (keep_logits) {
      const int64_t t = batch.tokens();
      out.logits.resize(t * dense.config().vocab);
      RETURN_IF_ERROR(
          dense.LmHeadChunks(normed.data(), t, [&](int64_t v0, int64_t n, const float* logits) {
            std::memcpy(out.logits.data() + t * v0, logits, sizeof(float) * t * n);
            return absl::OkStatus();
          }));
    }
    out.normed = std::move(normed);
    return out;
  }
  RETURN_IF_ERROR(MakeTopK(dense, batch.tokens(), normed.data(), spec.top_k, &out));
  return out;
}

absl::Status ScoreBatch(const LlamaForward& dense, const LlamaForward& candidate,
                        const SequenceBatch& batch, const float* normed,
                        const DenseTargets& targets, const FitnessSpec& spec, FitnessSums* sums) {
  if (spec.kind == FitnessKind::kPpl) return ScoreNll(sums, candidate, batch, normed);
  if (spec.top_k > 0) return ScoreTopKl(sums, candidate, batch, normed, targets, spec.top_k);
  return ScoreFullKl(sums, dense, candidate, batch, normed, targets);
}

double FitnessValue(const FitnessSpec& spec, const FitnessSums& sums) {
  if (sums.count == 0) return std::numeric_limits<double>::infinity();
  const double mean = sums.sum / static_cast<double>(sums.count);
  return spec.kind == FitnessKind::kPpl ? std::exp(mean) : mean;
}

}  // namespace compressd::engine::evopress
