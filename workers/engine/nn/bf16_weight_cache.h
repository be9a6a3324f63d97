// The CPU backend's packed BF16 weights (bf16_gemm.h Bf16PackedWeights) of
// recent Linear calls, so that a weight multiplied again (the next batch of a
// calibration or evaluation pass, the next EvoPress candidate) is not
// repacked. An entry is found by the float32 weight's address and used only
// when its bfloat16 rounding is the one the caller has now, compared in full:
// a weight rewritten in place (by a solver, or the next streamed block in the
// same buffer) misses and is packed again. Exact: a hit multiplies the same
// bfloat16 operands as a miss.
//
// Bounded: entries stay while used; an entry unused for kStaleCalls calls
// makes room for a new one, and a weight that does not fit is not kept
// (so a cyclic pass over more weights than fit keeps a stable prefix
// instead of evicting each entry just before its next use).
//
// Not thread-safe: one caller (the backend's), the packed weights it returns
// shared read-only by the pool's threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "workers/engine/nn/bf16_gemm.h"

namespace compressd::engine {

// The CPU backend's default bound (CpuBackendOptions::bf16_weight_cache_bytes),
// also in a job's memory estimate (pipeline/memory_estimate.h).
inline constexpr size_t kBf16WeightCacheBytes = size_t{1} << 30;

class Bf16WeightCache {
 public:
  static constexpr uint64_t kStaleCalls = 1024;

  explicit Bf16WeightCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  // The packed form of `rounded` (w [out, in] rounded to bfloat16), for GEMMs
  // of `t` rows; null where it cannot be kept (too large, or no oneDNN).
  const Bf16PackedWeights* Get(const float* w, const uint16_t* rounded, int64_t t, int64_t in,
                               int64_t out);

  size_t bytes() const { return bytes_; }
  int64_t hits() const { return hits_; }
  int64_t packs() const { return packs_; }

 private:
  struct Entry {
    std::vector<uint16_t> rounded;
    std::unique_ptr<Bf16PackedWeights> packed;
    uint64_t last_use = 0;
    size_t bytes() const { return rounded.size() * sizeof(uint16_t) + packed->bytes(); }
  };
  void Erase(std::unordered_map<const float*, Entry>::iterator it);
  // Frees stale entries, oldest first, until `need` more bytes fit.
  bool MakeRoom(size_t need);

  const size_t max_bytes_;
  std::unordered_map<const float*, Entry> entries_;
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
  int64_t hits_ = 0, packs_ = 0;
};

}  // namespace compressd::engine
