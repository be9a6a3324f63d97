// Element-wise and row kernels of the CPU backend, written as plain loops
// that the compiler vectorizes; each is compiled for AVX-512, AVX2 and
// baseline x86-64 and picked at load time (GCC target_clones). Reductions
// keep 16 partial sums so they vectorize without -ffast-math. exp() is a
// Cephes-style polynomial (relative error < 2e-7 over the float range).
// Stateless and thread-safe.
#pragma once

#include <cstdint>

#include "workers/engine/nn/backend.h"

namespace compressd::engine::cpu {

// exp(x) for one value, the same polynomial the vector kernels use.
float FastExp(float x);
// y = x / sqrt(mean(x^2) + eps) * w over one row of `dim`.
void RmsNormRow(const float* x, const float* w, int64_t dim, float eps, float* y);
// out[i] = gate[i] / (1 + exp(-gate[i])) * up[i]; out may alias gate.
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
// One row of Backend::QuantizeActivations.
void QuantizeActivationsRow(const float* x, int64_t dim, ActQuantType type, float* out);
// out[i] = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up[i], g = gate[i].
void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out);
// x[i] = cap * tanh(x[i] / cap).
void Softcap(float* x, int64_t n, float cap);
// x[i] += y[i].
void AddInPlace(float* x, const float* y, int64_t n);
// x[i] *= a.
void ScaleInPlace(float* x, int64_t n, float a);
// Max of x[0..n), n >= 1.
float RowMax(const float* x, int64_t n);
// x[i] = exp(x[i] - shift); returns the sum of the new values.
float ExpShiftSum(float* x, int64_t n, float shift);
// Sum of exp(x[i] - shift) (x unchanged).
float ExpShiftSumConst(const float* x, int64_t n, float shift);
// Sum of exp(p[i] - shift); *cross = sum of exp(p[i] - shift) * (p[i] - q[i]).
float ExpShiftSumCross(const float* p, const float* q, int64_t n, float shift, float* cross);
// HF rotate_half RoPE on one token row of n_heads heads: the first 2 * half
// dims of each head turn (half = head_dim / 2 unless the rotary is partial);
// cos/sin have `half` entries.
void RopeRow(float* x, int n_heads, int head_dim, int half, const float* cos, const float* sin);

}  // namespace compressd::engine::cpu
