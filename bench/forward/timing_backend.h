// A Backend decorator for benchmarks: forwards every op to another backend
// and accumulates the wall time of each op kind, and the flops of Linear calls
// (the GEMMs), so a benchmark can report the linear layers' GFLOP/s and where
// the rest of the time goes. Not thread-safe (like the backends it wraps).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "workers/engine/nn/backend.h"

namespace compressd::engine {

class TimingBackend : public Backend {
 public:
  explicit TimingBackend(Backend* inner) : inner_(inner) {}

  double linear_seconds() const { return seconds_.count("Linear") ? seconds_.at("Linear") : 0; }
  double linear_flops() const { return linear_flops_; }
  const std::map<std::string, double>& op_seconds() const { return seconds_; }
  void Reset() {
    seconds_.clear();
    linear_flops_ = 0;
  }

  std::string name() const override { return "timing(" + inner_->name() + ")"; }
  void Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
              int64_t out, float* y) override {
    Timed("Linear", [&] { inner_->Linear(x, t, in, w, bias, out, y); });
    linear_flops_ += 2.0 * static_cast<double>(t) * static_cast<double>(in) * static_cast<double>(out);
  }
  void RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
               float* y) override {
    Timed("RmsNorm", [&] { inner_->RmsNorm(x, weight, t, dim, eps, y); });
  }
  void Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
            const RopeTable& table) override {
    Timed("Rope", [&] { inner_->Rope(x, t, n_heads, head_dim, positions, table); });
  }
  void Attention(const float* q, const float* k, const float* v, const int64_t* seq_start,
                 int64_t n_seqs, const AttentionShape& shape, float* out) override {
    Timed("Attention", [&] { inner_->Attention(q, k, v, seq_start, n_seqs, shape, out); });
  }
  void QuantizeActivations(const float* x, int64_t t, int64_t dim, ActQuantType type,
                           float* out) override {
    Timed("QuantizeActivations", [&] { inner_->QuantizeActivations(x, t, dim, type, out); });
  }
  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override {
    Timed("SiluMul", [&] { inner_->SiluMul(gate, up, n, out); });
  }
  void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) override {
    Timed("GeluTanhMul", [&] { inner_->GeluTanhMul(gate, up, n, out); });
  }
  void Softcap(float* x, int64_t n, float cap) override {
    Timed("Softcap", [&] { inner_->Softcap(x, n, cap); });
  }
  void Add(float* x, const float* y, int64_t n) override {
    Timed("Add", [&] { inner_->Add(x, y, n); });
  }
  void Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t,
             float* out) override {
    Timed("Embed", [&] { inner_->Embed(table, dim, ids, t, out); });
  }
  void SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0, float* max,
                          float* sum, int32_t* argmax) override {
    Timed("SoftmaxStatsUpdate", [&] { inner_->SoftmaxStatsUpdate(logits, t, n, v0, max, sum, argmax); });
  }
  void KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                     float* max, float* sum, int32_t* argmax, float* cross) override {
    Timed("KlStatsUpdate", [&] { inner_->KlStatsUpdate(p, q, t, n, v0, max, sum, argmax, cross); });
  }

 private:
  template <typename Fn>
  void Timed(const char* op, Fn&& fn) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    seconds_[op] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  Backend* inner_;
  std::map<std::string, double> seconds_;
  double linear_flops_ = 0;
};

}  // namespace compressd::engine
