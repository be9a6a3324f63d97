// Picking the k lowest scores with ties broken by lower index, the order every
// pruning solver here uses (the same as a stable ascending sort). Scores are
// non-negative; NaN sorts above +inf, so it is kept. O(n) expected
// (std::nth_element on packed 64-bit keys). Stateless and thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace compressd::engine {

// (score, index) packed so that integer order is the pruning order: for
// non-negative IEEE floats the bit pattern orders like the value (sign
// cleared, so -0 ties +0), and NaN patterns lie above +inf.
inline uint64_t OrderKey(float score, uint32_t index) {
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof(bits));
  return (uint64_t{bits & 0x7fffffffu} << 32) | index;
}

inline int64_t PruneCount(int64_t count, double sparsity) {
  return std::min<int64_t>(count, std::llround(sparsity * static_cast<double>(count)));
}

// Calls mark(index) for the k lowest of keys[0, n) (reordered in place).
template <typename Mark>
void MarkLowest(uint64_t* keys, int64_t n, int64_t k, Mark mark) {
  if (k <= 0) return;
  if (k < n) std::nth_element(keys, keys + (k - 1), keys + n);
  for (int64_t i = 0; i < k; ++i) mark(static_cast<uint32_t>(keys[i] & 0xffffffffu));
}

}  // namespace compressd::engine
