// The mixture-of-experts MLP of LlamaForward (forward.h): routing, the
// experts over the tokens routed to them, Qwen2-MoE's shared expert.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "workers/engine/nn/forward.h"

namespace compressd::engine {

void RouteTokens(const float* logits, int64_t t, int n_experts, int k, bool renormalize,
                 int32_t* ids, float* weights) {
  std::vector<float> p(static_cast<size_t>(n_experts));
  std::vector<int32_t> order(static_cast<size_t>(n_experts));
  for (int64_t r = 0; r < t; ++r) {
    const float* l = logits + r * n_experts;
    const float mx = *std::max_element(l, l + n_experts);
    float sum = 0;
    for (int e = 0; e < n_experts; ++e) sum += p[e] = std::exp(l[e] - mx);
    for (int e = 0; e < n_experts; ++e) {
      p[e] /= sum;
      order[e] = e;
    }
    // Highest probability first; the lower index first among equals.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return p[a] > p[b] || (p[a] == p[b] && a < b);
    });
    float top = 0;
    for (int j = 0; j < k; ++j) top += p[order[j]];
    for (int j = 0; j < k; ++j) {
      ids[r * k + j] = order[j];
      weights[r * k + j] = renormalize ? p[order[j]] / top : p[order[j]];
    }
  }
}

void LlamaForward::ExpertMlp(const ExpertWeights& e, int64_t n, int64_t width, const float* x,
                             float* act, float* y, BlockWorkspace* ws, const BlockWeights& w,
                             uint32_t which) const {
  const LlamaConfig& c = config();
  Backend& be = *backend_;
  ws->expert_gate.resize(static_cast<size_t>(n * width));
  ws->expert_up.resize(static_cast<size_t>(n * width));
  const float* in = LinearIn(w, which, x, n, c.hidden, ws);
  be.Linear(in, n, c.hidden, e.gate_proj.data, nullptr, width, ws->expert_gate.data());
  be.Linear(in, n, c.hidden, e.up_proj.data, nullptr, width, ws->expert_up.data());
  if (c.gelu_gate) {
    be.GeluTanhMul(ws->expert_gate.data(), ws->expert_up.data(), n * width, act);
  } else {
    be.SiluMul(ws->expert_gate.data(), ws->expert_up.data(), n * width, act);
  }
  be.Linear(LinearIn(w, which, act, n, width, ws), n, width, e.down_proj.data, nullptr, c.hidden,
            y);
}

void LlamaForward::MoeMlp(const BlockWeights& w, int64_t t, const float* norm, float* out,
                          const BlockTaps* taps, BlockWorkspace* ws) const {
  const LlamaConfig& c = config();
  const int n_experts = c.n_experts, k = c.experts_per_token;
  const int64_t h = c.hidden, width = c.expert_intermediate;
  ws->router.resize(static_cast<size_t>(t * n_experts));
  backend_->Linear(LinearIn(w, kActRouter, norm, t, h, ws), t, h, w.router.data, nullptr, n_experts,
                   ws->router.data());
  ws->route_ids.resize(static_cast<size_t>(t * k));
  ws->route_weights.resize(static_cast<size_t>(t * k));
  RouteTokens(ws->router.data(), t, n_experts, k, c.norm_topk_prob, ws->route_ids.data(),
              ws->route_weights.data());
  if (taps != nullptr) std::copy(ws->route_ids.begin(), ws->route_ids.end(), taps->routes);
  // Each expert's (token, slot) pairs, tokens ascending.
  std::vector<std::vector<int64_t>> routed(static_cast<size_t>(n_experts));
  for (int64_t s = 0; s < t * k; ++s) routed[static_cast<size_t>(ws->route_ids[s])].push_back(s);
  std::fill(out, out + t * h, 0.0f);
  for (int e = 0; e < n_experts; ++e) {
    const std::vector<int64_t>& slots = routed[static_cast<size_t>(e)];
    const auto n = static_cast<int64_t>(slots.size());
    if (n == 0) continue;
    ws->expert_x.resize(static_cast<size_t>(n * h));
    ws->expert_act.resize(static_cast<size_t>(n * width));
    ws->expert_y.resize(static_cast<size_t>(n * h));
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&ws->expert_x[i * h], norm + (slots[i] / k) * h, sizeof(float) * h);
    }
    ExpertMlp(w.experts[static_cast<size_t>(e)], n, width, ws->expert_x.data(),
              ws->expert_act.data(), ws->expert_y.data(), ws, w, kActExperts);
    for (int64_t i = 0; i < n; ++i) {
      if (taps != nullptr) {
        std::memcpy(taps->expert_down_in + slots[i] * width, &ws->expert_act[i * width],
                    sizeof(float) * width);
      }
      const float g = ws->route_weights[slots[i]];
      float* o = out + (slots[i] / k) * h;
      const float* y = &ws->expert_y[i * h];
      for (int64_t d = 0; d < h; ++d) o[d] += g * y[d];
    }
  }
  if (c.shared_expert_intermediate <= 0) return;
  const int64_t sw = c.shared_expert_intermediate;
  ws->expert_act.resize(static_cast<size_t>(t * sw));
  ws->expert_y.resize(static_cast<size_t>(t * h));
  ExpertMlp(w.shared_expert, t, sw, norm, ws->expert_act.data(), ws->expert_y.data(), ws, w,
            kActSharedExpert);
  if (taps != nullptr) std::copy(ws->expert_act.begin(), ws->expert_act.end(), taps->shared_down_in);
  ws->router.resize(static_cast<size_t>(t));  // the shared expert's gate, one logit per token
  backend_->Linear(LinearIn(w, kActSharedExpertGate, norm, t, h, ws), t, h,
                   w.shared_expert_gate.data, nullptr, 1, ws->router.data());
  for (int64_t r = 0; r < t; ++r) {
    const float g = 1.0f / (1.0f + std::exp(-ws->router[r]));
    for (int64_t d = 0; d < h; ++d) out[r * h + d] += g * ws->expert_y[r * h + d];
  }
}

}  // namespace compressd::engine
