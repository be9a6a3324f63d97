// BF16 GEMMs with float32 accumulation, the compute mode of a recipe's
// `compute: bf16` (the precision GPU references run calibration in): both
// operands are rounded to bfloat16 (round to nearest even; 8 significant
// bits), the products are summed in float32 and the result is float32. On a
// CPU with AVX512-BF16 this is about twice the float32 GEMM rate
// (docs/benchmarks.md).
//
// Implementation: oneDNN's matmul primitive (Debian libdnnl), called from the
// caller's thread with one OpenMP thread, so the CPU backend's pool splits the
// work as it does for sgemm. A build without oneDNN has none:
// Bf16GemmAvailable() says why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"

namespace compressd::engine {

// OK when this build has BF16 GEMMs; otherwise FAILED_PRECONDITION saying so.
absl::Status Bf16GemmAvailable();

// oneDNN's implementation name for BF16 matmuls on this CPU (e.g.
// "brg:avx512_core_bf16"; an "avx512_core" or "ref" name means no native
// BF16 instructions), or "none".
const char* Bf16GemmImplementation();

// y[r, o] (row stride ldy) = sum_i x[r, i] * w[o, i], x [t, in] and w
// [out, in] already bfloat16 (model/dtype.h FloatToBFloat16: nearest even),
// accumulated in float32. Requires
// Bf16GemmAvailable(); thread-safe (one call per thread, each single-threaded).
void Bf16Gemm(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
              int64_t ldy);

// One weight matrix in oneDNN's blocked layout (AMX/VNNI tiles), packed once:
// Bf16Gemm on plain weights repacks them inside every call, which costs
// 7-30% of a GEMM of 2048 rows at SmolLM2's shapes (docs/benchmarks.md).
class Bf16PackedWeights {
 public:
  ~Bf16PackedWeights();
  // w [out, in] bfloat16, packed for GEMMs of `t` rows. Null without oneDNN.
  static std::unique_ptr<Bf16PackedWeights> Pack(const uint16_t* w, int64_t t, int64_t in,
                                                 int64_t out);
  int64_t in() const;
  int64_t out() const;
  size_t bytes() const;
  // Bf16Gemm(x, t, in(), <these weights>, out(), y, ldy). False, with nothing
  // written, where oneDNN wants another layout for a GEMM of `t` rows.
  // Thread-safe.
  bool Gemm(const uint16_t* x, int64_t t, float* y, int64_t ldy) const;

 private:
  struct Impl;
  explicit Bf16PackedWeights(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reference for Bf16Gemm: the same bfloat16 operands, products summed in
// float64.
void Bf16GemmRef(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
                 int64_t ldy);

}  // namespace compressd::engine
