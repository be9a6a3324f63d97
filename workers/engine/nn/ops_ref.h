// Plain reference implementations of the Backend ops (backend.h): loops in
// the most direct form, double accumulation, full softmax for attention. They
// define the results that the fast kernels are tested against, and are far
// too slow for real use. Stateless and thread-safe.
#pragma once

#include <cstdint>

#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/rope.h"

namespace compressd::engine {

void LinearRef(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
               int64_t out, float* y);
void RmsNormRef(const float* x, const float* weight, int64_t t, int64_t dim, float eps, float* y);
void RopeRef(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
             const RopeTable& table);
void AttentionRef(const float* q, const float* k, const float* v, const int64_t* seq_start,
                  int64_t n_seqs, const AttentionShape& shape, float* out);
void SiluMulRef(const float* gate, const float* up, int64_t n, float* out);
void AddRef(float* x, const float* y, int64_t n);
void QuantizeActivationsRef(const float* x, int64_t t, int64_t dim, ActQuantType type, float* out);
void EmbedRef(const float* table, int64_t dim, const int32_t* ids, int64_t t, float* out);
void SoftmaxStatsUpdateRef(const float* logits, int64_t t, int64_t n, int64_t v0, float* max,
                           float* sum, int32_t* argmax);
void KlStatsUpdateRef(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                      float* max, float* sum, int32_t* argmax, float* cross);

}  // namespace compressd::engine
