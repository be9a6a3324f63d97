// The CPU implementation of Backend: GEMMs through CBLAS sgemm (OpenBLAS,
// chosen by measurement: docs/benchmarks.md), everything else through the
// vectorized kernels of cpu_kernels.h, spread over one ThreadPool.
//
// Threading: the pool owns all parallelism. Linear splits the token rows (or,
// for few rows, the output features) into one slice per thread and each
// thread runs a single-threaded sgemm on its slice, so OpenBLAS is set to one
// thread of its own (a process-wide setting). With bf16_gemm, each slice is a
// oneDNN BF16 matmul instead, also single-threaded, on weights packed once
// into oneDNN's blocked layout where the rows are split (bf16_weight_cache.h). Attention is
// blockwise over key tiles with an online softmax (FlashAttention, Dao et al. 2022): per work item
// (sequence, kv head, query tile) it holds only [group*tile, tile] scores.
//
// Not thread-safe: one op at a time (the pool serializes concurrent loops).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/bf16_weight_cache.h"
#include "workers/engine/nn/thread_pool.h"

namespace compressd::engine {

struct CpuBackendOptions {
  int num_threads = 0;       // <= 0: hardware concurrency
  int attention_tile = 128;  // query and key tile size in tokens
  // Linear in BF16 with float32 accumulation (bf16_gemm.h): x and w rounded
  // to bfloat16 on each call, the same split over the pool. Requires
  // Bf16GemmAvailable() (CreateBackend checks).
  bool bf16_gemm = false;
  // With bf16_gemm: the most bytes of packed weights kept between calls
  // (bf16_weight_cache.h); 0 packs none.
  size_t bf16_weight_cache_bytes = kBf16WeightCacheBytes;
};

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(CpuBackendOptions options = {});

  std::string name() const override { return "cpu"; }
  int num_threads() const { return pool_.num_threads(); }

  void Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias, int64_t out,
              float* y) override;
  void RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
               float* y) override;
  void Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
            const RopeTable& table) override;
  void Attention(const float* q, const float* k, const float* v, const int64_t* seq_start,
                 int64_t n_seqs, const AttentionShape& shape, float* out) override;
  void SiluMul(const float* gate, const float* up, int64_t n, float* out) override;
  void QuantizeActivations(const float* x, int64_t t, int64_t dim, ActQuantType type,
                           float* out) override;
  void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) override;
  void Softcap(float* x, int64_t n, float cap) override;
  void Add(float* x, const float* y, int64_t n) override;
  void Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t, float* out) override;
  void SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0, float* max,
                          float* sum, int32_t* argmax) override;
  void KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0, float* max,
                     float* sum, int32_t* argmax, float* cross) override;

 private:
  // The bf16_gemm path of Linear.
  void LinearBf16(const float* x, int64_t t, int64_t in, const float* w, int64_t out, float* y);

  CpuBackendOptions options_;
  ThreadPool pool_;
  std::vector<uint16_t> x_bf16_, w_bf16_;  // Linear's rounded operands (bf16_gemm)
  Bf16WeightCache bf16_weights_;
};

}  // namespace compressd::engine
