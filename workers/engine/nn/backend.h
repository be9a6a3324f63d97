// The compute interface the forward pass runs on (in the spirit of ggml's
// ggml-backend): a handful of ops on row-major float32 buffers. The CPU
// backend (cpu_backend.h) implements it now; a CUDA backend will implement the
// same interface. Every op has a plain reference in ops_ref.h that tests
// compare implementations against.
//
// Conventions: activations are [T, dim] row-major, T = total tokens of a batch
// of packed sequences; `seq_start` has n_seqs + 1 offsets into the T rows
// (sequence s is rows [seq_start[s], seq_start[s+1])). Linear weights are
// [out, in] (Hugging Face orientation). Pointers are in the backend's memory
// (host memory for the CPU backend). Implementations say whether they are
// thread-safe; callers run one op at a time.
#pragma once

#include <cstdint>
#include <string>

#include "workers/engine/nn/rope.h"

namespace compressd::engine {

// The run-time activation quantization of W8A8 (QuantizeActivations).
enum class ActQuantType { kInt8, kFp8E4m3 };

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;  // divides n_heads (grouped-query attention)
  int head_dim = 0;
  // Sliding-window attention (Mistral): a query at position p sees the keys
  // at p - window + 1 .. p. 0: every earlier key (plain causal).
  int64_t window = 0;
  float scale = 0;    // scores = q.k * scale; 0: 1/sqrt(head_dim)
  float softcap = 0;  // Gemma 2: scores = softcap * tanh(scores / softcap); 0: none
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // y[T, out] = x[T, in] * w[out, in]^T (+ bias[out] if bias != nullptr).
  virtual void Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
                      int64_t out, float* y) = 0;
  // y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, for each of the t rows of size dim.
  virtual void RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
                       float* y) = 0;
  // Rotates x[T, n_heads * head_dim] in place; row r is at positions[r]
  // (< table.n_positions); table.half == head_dim / 2.
  virtual void Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
                    const RopeTable& table) = 0;
  // Causal attention within each sequence: q [T, n_heads*hd], k and v
  // [T, n_kv_heads*hd], out [T, n_heads*hd]; query head h reads kv head
  // h / (n_heads / n_kv_heads); scores scaled by 1/sqrt(hd).
  virtual void Attention(const float* q, const float* k, const float* v, const int64_t* seq_start,
                         int64_t n_seqs, const AttentionShape& shape, float* out) = 0;
  // out[i] = silu(gate[i]) * up[i]; out may alias gate.
  virtual void SiluMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  // out[i] = gelu(gate[i]) * up[i] with PyTorch's tanh approximation
  // (gelu_pytorch_tanh, Gemma's GeGLU); out may alias gate.
  virtual void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) = 0;
  // x[i] = cap * tanh(x[i] / cap) (Gemma 2's logit soft-capping).
  virtual void Softcap(float* x, int64_t n, float cap) = 0;
  // x[i] += y[i].
  virtual void Add(float* x, const float* y, int64_t n) = 0;
  // W8A8's run-time activation quantization, per row r of x [t, dim] with
  // m = max_j |x_rj| (a zero row stays zero), in float32:
  // kInt8, as vLLM's dynamic per-token int8 kernel computes it: out_rj =
  // clamp(round_half_even(x_rj * (127 / m)), -128, 127) * (m / 127). The
  // row's largest value maps to +-127 exactly (compressed-tensors' fake
  // quantization divides by m / 127.5 instead: a 0.4% finer step whose -m
  // lands on -127.5, rounding either way with the last bit of m).
  // kFp8E4m3, as vLLM's dynamic per-token fp8 kernel: s = max(m / 448,
  // 1 / (448 * 512)), out_rj = e4m3(x_rj * (1 / s)) * s (model/fp8.h:
  // nearest E4M3 value, ties to even, saturating at +-448).
  virtual void QuantizeActivations(const float* x, int64_t t, int64_t dim, ActQuantType type,
                                   float* out) = 0;
  // out[r] = table[ids[r]] (rows of size dim); ids are already validated.
  virtual void Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t,
                     float* out) = 0;

  // Streaming softmax statistics over vocabulary chunks (online log-sum-exp),
  // so that [T, vocab] logits are never held. logits is one chunk [t, n] whose
  // columns are vocabulary ids [v0, v0 + n). Per row r: max[r] and argmax[r]
  // (first index of the maximum) and sum[r] = sum of exp(logit - max[r]) over
  // the chunks seen so far. Start from max = -inf, sum = 0, argmax = -1; then
  // log-sum-exp = max + log(sum).
  virtual void SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0,
                                  float* max, float* sum, int32_t* argmax) = 0;
  // SoftmaxStatsUpdate on p, plus cross[r] = sum of exp(p - max[r]) * (p - q)
  // (start 0), for KL(p || q) = cross / sum - lse(p) + lse(q).
  virtual void KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                             float* max, float* sum, int32_t* argmax, float* cross) = 0;
};

}  // namespace compressd::engine
