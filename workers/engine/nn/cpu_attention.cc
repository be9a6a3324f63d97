// Causal grouped-query attention, blockwise with an online softmax
// (FlashAttention, Dao et al. 2022; the CPU form of its forward pass).
//
// Work item = (sequence, kv head g, query tile). The `group` query heads that
// share kv head g are stacked into one [group*nq, hd] matrix Q (pre-scaled by
// 1/sqrt(hd)), so each key tile costs two sgemms of group*nq rows:
//   S = Q K_tile^T            [group*nq, nk]
//   m' = max(m, rowmax S); P = exp(S - m'); l = l e^(m-m') + rowsum P
//   O = O e^(m-m') + P V_tile [group*nq, hd]
// and at the end out = O / l. K and V tiles are read in place (leading
// dimension n_kv*hd). Memory per item: O(group * tile * (tile + hd)); cost
// 2 * T^2 * hd flops per head (half of it masked away by causality). With a
// sliding window W the key tiles entirely before a query tile's window are
// skipped and each row's scores before its own window are masked too.
// Gemma: another score scale, and soft-capped scores (cap * tanh(s / cap),
// before the mask and softmax).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/cpu_kernels.h"

namespace compressd::engine {
namespace {

struct Item {
  int64_t seq;
  int kv_head;
  int64_t q0, q1;  // query rows (absolute)
};

struct Problem {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  const int64_t* seq_start;
  AttentionShape shape;
  int group;
  int64_t tile;
};

void RunItem(const Problem& p, const Item& item) {
  const int hd = p.shape.head_dim;
  const int64_t q_stride = int64_t{p.shape.n_heads} * hd;
  const int64_t kv_stride = int64_t{p.shape.n_kv_heads} * hd;
  const int64_t nq = item.q1 - item.q0;
  const int64_t rows = p.group * nq;
  const float scale =
      p.shape.scale > 0 ? p.shape.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const float softcap = p.shape.softcap;
  const int64_t seq_begin = p.seq_start[item.seq];

  std::vector<float> qs(rows * hd), o(rows * hd, 0.0f), s(rows * p.tile);
  std::vector<float> m(rows, -1e30f), l(rows, 0.0f);
  for (int hh = 0; hh < p.group; ++hh) {
    const int64_t head = int64_t{item.kv_head} * p.group + hh;
    for (int64_t r = 0; r < nq; ++r) {
      const float* src = p.q + (item.q0 + r) * q_stride + head * hd;
      float* dst = &qs[(hh * nq + r) * hd];
      for (int d = 0; d < hd; ++d) dst[d] = src[d] * scale;
    }
  }
  const float* k_base = p.k + int64_t{item.kv_head} * hd;
  const float* v_base = p.v + int64_t{item.kv_head} * hd;
  const int64_t window = p.shape.window;
  int64_t first_key = seq_begin;  // the first key any row of this tile sees
  if (window > 0) first_key = std::max(seq_begin, item.q0 - window + 1);
  for (int64_t k0 = first_key; k0 < item.q1; k0 += p.tile) {
    const int64_t nk = std::min(p.tile, item.q1 - k0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, hd, 1.0f, qs.data(), hd,
                k_base + k0 * kv_stride, kv_stride, 0.0f, s.data(), nk);
    for (int64_t row = 0; row < rows; ++row) {
      float* srow = &s[row * nk];
      const int64_t pos = item.q0 + row % nq;
      const int64_t valid = std::min(nk, pos - k0 + 1);  // causal mask
      // Sliding window: keys before pos - window + 1 are masked too.
      const int64_t begin = window > 0 ? std::max<int64_t>(0, pos - window + 1 - k0) : 0;
      if (valid <= begin) {
        std::fill(srow, srow + nk, 0.0f);
        continue;
      }
      if (softcap > 0) cpu::Softcap(srow + begin, valid - begin, softcap);
      const float m_new = std::max(m[row], cpu::RowMax(srow + begin, valid - begin));
      const float alpha = cpu::FastExp(m[row] - m_new);
      const float sum = cpu::ExpShiftSum(srow + begin, valid - begin, m_new);
      std::fill(srow, srow + begin, 0.0f);
      std::fill(srow + valid, srow + nk, 0.0f);
      l[row] = l[row] * alpha + sum;
      m[row] = m_new;
      if (alpha != 1.0f) cpu::ScaleInPlace(&o[row * hd], hd, alpha);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, nk, 1.0f, s.data(), nk,
                v_base + k0 * kv_stride, kv_stride, 1.0f, o.data(), hd);
  }
  for (int hh = 0; hh < p.group; ++hh) {
    const int64_t head = int64_t{item.kv_head} * p.group + hh;
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t row = hh * nq + r;
      float* dst = p.out + (item.q0 + r) * q_stride + head * hd;
      const float inv = 1.0f / l[row];
      for (int d = 0; d < hd; ++d) dst[d] = o[row * hd + d] * inv;
    }
  }
}

}  // namespace

void CpuBackend::Attention(const float* q, const float* k, const float* v,
                           const int64_t* seq_start, int64_t n_seqs, const AttentionShape& shape,
                           float* out) {
  const Problem problem{q, k, v, out, seq_start, shape, shape.n_heads / shape.n_kv_heads,
                        options_.attention_tile};
  // Later query tiles see more keys: list them first so the dynamic schedule
  // finishes evenly.
  std::vector<Item> items;
  for (int64_t s = 0; s < n_seqs; ++s) {
    for (int64_t q0 = seq_start[s]; q0 < seq_start[s + 1]; q0 += problem.tile) {
      for (int g = 0; g < shape.n_kv_heads; ++g) {
        items.push_back({s, g, q0, std::min(seq_start[s + 1], q0 + problem.tile)});
      }
    }
  }
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    return a.q1 - seq_start[a.seq] > b.q1 - seq_start[b.seq];
  });
  pool_.ParallelFor(static_cast<int64_t>(items.size()),
                    [&](int64_t i) { RunItem(problem, items[i]); });
}

}  // namespace compressd::engine
