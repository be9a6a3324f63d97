#include "workers/engine/nn/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "workers/engine/model/dtype.h"
#include "workers/engine/nn/bf16_gemm.h"
#include "workers/engine/nn/blas_setup.h"
#include "workers/engine/nn/cpu_kernels.h"

namespace compressd::engine {
namespace {

// Rows per thread below which Linear splits output features instead.
constexpr int64_t kMinRowsPerThread = 64;
// Elements per work item of the element-wise ops.
constexpr int64_t kElementChunk = 1 << 16;

void Sgemm(const float* x, int64_t t, int64_t in, const float* w, int64_t out, float* y,
           int64_t ldy) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x, static_cast<int>(in), w, static_cast<int>(in), 0.0f, y,
              static_cast<int>(ldy));
}

}  // namespace

CpuBackend::CpuBackend(CpuBackendOptions options)
    : options_(options),
      pool_(options.num_threads),
      bf16_weights_(options.bf16_weight_cache_bytes) {
  options_.attention_tile = std::max(1, options_.attention_tile);
  SetBlasThreads(1);  // the pool splits the work; see the class comment
}

void CpuBackend::LinearBf16(const float* x, int64_t t, int64_t in, const float* w, int64_t out,
                            float* y) {
  x_bf16_.resize(static_cast<size_t>(t * in));
  w_bf16_.resize(static_cast<size_t>(out * in));
  pool_.ParallelRanges(t * in, kElementChunk, [&](int64_t i0, int64_t i1) {
    FloatToBFloat16(x + i0, x_bf16_.data() + i0, static_cast<size_t>(i1 - i0));
  });
  pool_.ParallelRanges(out * in, kElementChunk, [&](int64_t i0, int64_t i1) {
    FloatToBFloat16(w + i0, w_bf16_.data() + i0, static_cast<size_t>(i1 - i0));
  });
  const uint16_t* xb = x_bf16_.data();
  const uint16_t* wb = w_bf16_.data();
  if (t >= kMinRowsPerThread * pool_.num_threads() || t >= out) {
    // ParallelRanges' slices: packed for GEMMs of that many rows.
    const int64_t parts =
        std::max<int64_t>(1, std::min<int64_t>(pool_.num_threads(), t / kMinRowsPerThread));
    const Bf16PackedWeights* packed = bf16_weights_.Get(w, wb, (t + parts - 1) / parts, in, out);
    pool_.ParallelRanges(t, kMinRowsPerThread, [&](int64_t r0, int64_t r1) {
      if (packed == nullptr || !packed->Gemm(xb + r0 * in, r1 - r0, y + r0 * out, out)) {
        Bf16Gemm(xb + r0 * in, r1 - r0, in, wb, out, y + r0 * out, out);
      }
    });
  } else {
    pool_.ParallelRanges(out, 64, [&](int64_t o0, int64_t o1) {
      Bf16Gemm(xb, t, in, wb + o0 * in, o1 - o0, y + o0, out);
    });
  }
}

void CpuBackend::Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
                        int64_t out, float* y) {
  const int threads = pool_.num_threads();
  if (options_.bf16_gemm) {
    LinearBf16(x, t, in, w, out, y);
  } else if (t >= kMinRowsPerThread * threads || t >= out) {
    pool_.ParallelRanges(t, kMinRowsPerThread, [&](int64_t r0, int64_t r1) {
      Sgemm(x + r0 * in, r1 - r0, in, w, out, y + r0 * out, out);
    });
  } else {
    pool_.ParallelRanges(out, 64, [&](int64_t o0, int64_t o1) {
      Sgemm(x, t, in, w + o0 * in, o1 - o0, y + o0, out);
    });
  }
  if (bias != nullptr) {
    pool_.ParallelRanges(t, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) cpu::AddInPlace(y + r * out, bias, out);
    });
  }
}

void CpuBackend::RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
                         float* y) {
  pool_.ParallelRanges(t, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) cpu::RmsNormRow(x + r * dim, weight, dim, eps, y + r * dim);
  });
}

void CpuBackend::Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
                      const RopeTable& table) {
  const int64_t stride = int64_t{n_heads} * head_dim;
  pool_.ParallelRanges(t, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t off = int64_t{positions[r]} * table.half;
      cpu::RopeRow(x + r * stride, n_heads, head_dim, table.half, &table.cos[off], &table.sin[off]);
    }
  });
}

void CpuBackend::QuantizeActivations(const float* x, int64_t t, int64_t dim, ActQuantType type,
                                     float* out) {
  pool_.ParallelRanges(t, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      cpu::QuantizeActivationsRow(x + r * dim, dim, type, out + r * dim);
    }
  });
}

void CpuBackend::SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  pool_.ParallelRanges(n, kElementChunk, [&](int64_t i0, int64_t i1) {
    cpu::SiluMul(gate + i0, up + i0, i1 - i0, out + i0);
  });
}

void CpuBackend::GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) {
  pool_.ParallelRanges(n, kElementChunk, [&](int64_t i0, int64_t i1) {
    cpu::GeluTanhMul(gate + i0, up + i0, i1 - i0, out + i0);
  });
}

void CpuBackend::Softcap(float* x, int64_t n, float cap) {
  pool_.ParallelRanges(n, kElementChunk,
                       [&](int64_t i0, int64_t i1) { cpu::Softcap(x + i0, i1 - i0, cap); });
}

void CpuBackend::Add(float* x, const float* y, int64_t n) {
  pool_.ParallelRanges(n, kElementChunk,
                       [&](int64_t i0, int64_t i1) { cpu::AddInPlace(x + i0, y + i0, i1 - i0); });
}

void CpuBackend::Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t, float* out) {
  for (int64_t r = 0; r < t; ++r) {
    std::memcpy(out + r * dim, table + int64_t{ids[r]} * dim, sizeof(float) * dim);
  }
}

namespace {

// Online update of one row's max / argmax; returns the factor that rescales
// sums taken relative to the old max.
float UpdateMax(const float* row, int64_t n, int64_t v0, float* max, int32_t* argmax) {
  const float m = cpu::RowMax(row, n);
  if (!(m > *max)) return 1.0f;
  const float rescale = cpu::FastExp(*max - m);
  *argmax = static_cast<int32_t>(v0 + (std::find(row, row + n, m) - row));
  *max = m;
  return rescale;
}

}  // namespace

void CpuBackend::SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0,
                                    float* max, float* sum, int32_t* argmax) {
  pool_.ParallelRanges(t, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = logits + r * n;
      const float rescale = UpdateMax(row, n, v0, &max[r], &argmax[r]);
      sum[r] = sum[r] * rescale + cpu::ExpShiftSumConst(row, n, max[r]);
    }
  });
}

void CpuBackend::KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                               float* max, float* sum, int32_t* argmax, float* cross) {
  pool_.ParallelRanges(t, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float rescale = UpdateMax(p + r * n, n, v0, &max[r], &argmax[r]);
      float c = 0;
      const float s = cpu::ExpShiftSumCross(p + r * n, q + r * n, n, max[r], &c);
      sum[r] = sum[r] * rescale + s;
      cross[r] = cross[r] * rescale + c;
    }
  });
}

}  // namespace compressd::engine
