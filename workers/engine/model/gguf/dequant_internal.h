// Per-type block decoders behind dequant.h: fast (dequant.cc) and reference
// (dequant_ref.cc). Each converts `nb` whole blocks at `src` into
// nb * block_size floats at `y`. Internal; stateless and thread-safe.
#pragma once

#include <cstdint>
#include <cstring>

namespace compressd::engine::dequant_internal {

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

using BlockFn = void (*)(const uint8_t* src, int64_t nb, float* y);

#define COMPRESSD_DEQUANT_DECLARE(T)                \
  void T(const uint8_t* src, int64_t nb, float* y); \
  void T##_ref(const uint8_t* src, int64_t nb, float* y);
COMPRESSD_DEQUANT_DECLARE(F32)
COMPRESSD_DEQUANT_DECLARE(F16)
COMPRESSD_DEQUANT_DECLARE(BF16)
COMPRESSD_DEQUANT_DECLARE(Q4_0)
COMPRESSD_DEQUANT_DECLARE(Q4_1)
COMPRESSD_DEQUANT_DECLARE(Q5_0)
COMPRESSD_DEQUANT_DECLARE(Q5_1)
COMPRESSD_DEQUANT_DECLARE(Q8_0)
COMPRESSD_DEQUANT_DECLARE(Q2_K)
COMPRESSD_DEQUANT_DECLARE(Q3_K)
COMPRESSD_DEQUANT_DECLARE(Q4_K)
COMPRESSD_DEQUANT_DECLARE(Q5_K)
COMPRESSD_DEQUANT_DECLARE(Q6_K)
#undef COMPRESSD_DEQUANT_DECLARE

}  // namespace compressd::engine::dequant_internal
