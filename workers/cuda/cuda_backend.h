// The CUDA implementation of engine::Backend (workers/engine/nn/backend.h):
// the forward-pass ops on one GPU, each parity-tested against its plain
// reference in ops_ref.h (tests/cuda/cuda_backend_test.cc).
//
// Memory: every array argument of every op is a DEVICE pointer on this
// backend's device (activations, weights, biases, seq_start [n_seqs + 1]
// int64, positions and ids int32, the softmax statistics). The one host
// object is the RopeTable, uploaded on first use and cached until a table of
// another address, data, n_positions or half arrives. The backend owns a
// scratch buffer for the BF16 copies of a GEMM's inputs (kBf16), grown on
// demand to the largest GEMM seen, and the cached RoPE table.
//
// Execution: all work goes in order on one CUDA stream owned by the backend
// (non-blocking, so it does not synchronize with the legacy default stream);
// ops return before the device has finished. Synchronize() waits. Callers
// that copy results with plain cudaMemcpy must call Synchronize() first.
//
// Errors: the Backend ops return void, so the first failure of any op (a bad
// argument, a CUDA or cuBLAS error) is recorded, every later op does nothing,
// and status() / Synchronize() report it. Errors of a running kernel surface
// at the next Synchronize(). Positions and ids are trusted (backend.h says
// they are validated); still, a position outside the RoPE table leaves its
// row unrotated rather than reading outside the table.
//
// Not thread-safe: one op at a time, from any thread (each op makes the
// backend's device current on the calling thread).
//
// This header has no CUDA types, so C++ code can hold a CudaBackend without
// the CUDA headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/rope.h"

namespace compressd::cuda {

// How Linear multiplies: kFp32 plain FP32 (no TF32 anywhere); kTf32 FP32 data
// on TF32 tensor cores (inputs rounded to 10 mantissa bits); kBf16 inputs
// rounded to BF16 (round to nearest even), products accumulated in FP32.
enum class GemmMode { kFp32, kTf32, kBf16 };

struct CudaBackendOptions {
  int device = 0;  // CUDA device index
  GemmMode gemm = GemmMode::kFp32;
  int64_t lm_head_chunk = 8192;  // vocabulary rows per LM-head chunk (for the caller)
};

class CudaBackend final : public engine::Backend {
 public:
  // FAILED_PRECONDITION when no CUDA device is usable (no driver, no GPU);
  // INVALID_ARGUMENT for a device index that does not exist or a
  // non-positive lm_head_chunk; the CUDA error otherwise.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);

  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;  // "cuda:<device>"
  const CudaBackendOptions& options() const;
  // The first error any op hit (OK if none); does not wait for the device.
  absl::Status status() const;
  // Waits for all queued work; then status().
  absl::Status Synchronize();

  void Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias, int64_t out,
              float* y) override;
  void RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
               float* y) override;
  void Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
            const engine::RopeTable& table) override;
  void Attention(const float* q, const float* k, const float* v, const int64_t* seq_start,
                 int64_t n_seqs, const engine::AttentionShape& shape, float* out) override;
  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override;
  void QuantizeActivations(const float* x, int64_t t, int64_t dim, engine::ActQuantType type,
                           float* out) override;
  // Gemma's ops are CPU-only for now: UNIMPLEMENTED.
  void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) override;
  void Softcap(float* x, int64_t n, float cap) override;
  void Add(float* x, const float* y, int64_t n) override;
  void Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t, float* out) override;
  void SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0, float* max,
                          float* sum, int32_t* argmax) override;
  void KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0, float* max,
                     float* sum, int32_t* argmax, float* cross) override;

 private:
  struct Impl;
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace compressd::cuda
