// Fast dequantization: per block, the scales are decoded once (fp16 through
// a 64K-entry table) and the quants are unpacked by fixed-length, branch-free
// loops that the compiler vectorizes. The arithmetic is the reference's, in
// the same order (built with -ffp-contract=off), so results are identical.
#include "workers/engine/model/gguf/dequant.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/gguf/dequant_internal.h"

namespace compressd::engine {
namespace dequant_internal {
namespace {

const float* HalfTable() {
  static const std::array<float, 65536>* table = [] {
    auto* t = new std::array<float, 65536>();
    for (uint32_t h = 0; h < 65536; ++h) (*t)[h] = HalfBitsToFloat(static_cast<uint16_t>(h));
    return t;
  }();
  return table->data();
}

inline float Half(const float* table, const uint8_t* p) { return table[LoadU16(p)]; }

// The 5th bits of a legacy 32-element block, one per element.
inline void HighBits(uint32_t qh, uint8_t* out) {
  for (int j = 0; j < 32; ++j) out[j] = static_cast<uint8_t>(((qh >> j) & 1) << 4);
}

inline void ScalesMinsK4(const uint8_t* q, float d, float dmin, float* dsc, float* dm) {
  for (int j = 0; j < 4; ++j) {
    dsc[j] = d * static_cast<float>(q[j] & 63);
    dm[j] = dmin * static_cast<float>(q[j + 4] & 63);
  }
  for (int j = 4; j < 8; ++j) {
    dsc[j] = d * static_cast<float>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    dm[j] = dmin * static_cast<float>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace

void F32(const uint8_t* src, int64_t nb, float* y) {
  std::memcpy(y, src, static_cast<size_t>(nb) * 4);
}

void F16(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i) y[i] = Half(t, src + 2 * i);
}

void BF16(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const uint32_t bits = static_cast<uint32_t>(LoadU16(src + 2 * i)) << 16;
    std::memcpy(&y[i], &bits, 4);
  }
}

void Q4_0(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 18, y += 32) {
    const float d = Half(t, src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void Q4_1(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 20, y += 32) {
    const float d = Half(t, src), m = Half(t, src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
      y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

void Q5_0(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  uint8_t hb[32];
  for (int64_t i = 0; i < nb; ++i, src += 22, y += 32) {
    const float d = Half(t, src);
    HighBits(LoadU32(src + 2), hb);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(((qs[j] & 0xF) | hb[j]) - 16) * d;
      y[j + 16] = static_cast<float>(((qs[j] >> 4) | hb[j + 16]) - 16) * d;
    }
  }
}

void Q5_1(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  uint8_t hb[32];
  for (int64_t i = 0; i < nb; ++i, src += 24, y += 32) {
    const float d = Half(t, src), m = Half(t, src + 2);
    HighBits(LoadU32(src + 4), hb);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0xF) | hb[j]) * d + m;
      y[j + 16] = static_cast<float>((qs[j] >> 4) | hb[j + 16]) * d + m;
    }
  }
}

void Q8_0(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 34, y += 32) {
    const float d = Half(t, src);
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
// Per 128 elements, 32 bytes of qs: shift 2j holds elements 32j .. 32j + 31.
void Q2_K(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 84) {
    const float d = Half(t, src + 80), dmin = Half(t, src + 82);
    const uint8_t* sc = src;
    const uint8_t* q = src + 16;
    for (int h = 0; h < 2; ++h, q += 32) {
      for (int j = 0; j < 4; ++j, sc += 2, y += 32) {
        const float d1 = d * static_cast<float>(sc[0] & 0xF);
        const float m1 = dmin * static_cast<float>(sc[0] >> 4);
        const float d2 = d * static_cast<float>(sc[1] & 0xF);
        const float m2 = dmin * static_cast<float>(sc[1] >> 4);
        for (int l = 0; l < 16; ++l) y[l] = d1 * static_cast<float>((q[l] >> (2 * j)) & 3) - m1;
        for (int l = 0; l < 16; ++l) {
          y[l + 16] = d2 * static_cast<float>((q[l + 16] >> (2 * j)) & 3) - m2;
        }
      }
    }
  }
}

// Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales, offset 32), d.
// Code = low 2 bits (as Q2_K) minus 4 unless bit e / 32 of hmask[e % 32] is set.
void Q3_K(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 110) {
    const float d = Half(t, src + 108);
    const uint8_t* hm = src;
    const uint8_t* q = src + 32;
    const uint8_t* s = src + 96;
    float ds[16];
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
      const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
      ds[j] = d * static_cast<float>((low | high << 4) - 32);
    }
    for (int h = 0; h < 2; ++h, q += 32) {
      for (int j = 0; j < 4; ++j, y += 32) {
        const int bit = 4 * h + j;
        const float d1 = ds[8 * h + 2 * j], d2 = ds[8 * h + 2 * j + 1];
        for (int l = 0; l < 32; ++l) {
          const int v = ((q[l] >> (2 * j)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4);
          y[l] = (l < 16 ? d1 : d2) * static_cast<float>(v);
        }
      }
    }
  }
}

void Q4_K(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  float dsc[8], dm[8];
  for (int64_t i = 0; i < nb; ++i, src += 144) {
    ScalesMinsK4(src + 4, Half(t, src), Half(t, src + 2), dsc, dm);
    const uint8_t* q = src + 16;
    for (int c = 0; c < 4; ++c, q += 32, y += 64) {
      const float d1 = dsc[2 * c], m1 = dm[2 * c], d2 = dsc[2 * c + 1], m2 = dm[2 * c + 1];
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void Q5_K(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  float dsc[8], dm[8];
  for (int64_t i = 0; i < nb; ++i, src += 176) {
    ScalesMinsK4(src + 4, Half(t, src), Half(t, src + 2), dsc, dm);
    const uint8_t* qh = src + 16;
    const uint8_t* q = src + 48;
    for (int c = 0; c < 4; ++c, q += 32, y += 64) {
      const float d1 = dsc[2 * c], m1 = dm[2 * c], d2 = dsc[2 * c + 1], m2 = dm[2 * c + 1];
      const int s1 = 2 * c, s2 = 2 * c + 1;
      for (int l = 0; l < 32; ++l) {
        y[l] = d1 * static_cast<float>((q[l] & 0xF) | (((qh[l] >> s1) & 1) << 4)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        y[l + 32] = d2 * static_cast<float>((q[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
      }
    }
  }
}

void Q6_K(const uint8_t* src, int64_t nb, float* y) {
  const float* t = HalfTable();
  for (int64_t i = 0; i < nb; ++i, src += 210) {
    const float d = Half(t, src + 208);
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
    for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, y += 128) {
      float ds[8];
      for (int k = 0; k < 8; ++k) ds[k] = d * static_cast<float>(sc[k]);
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        y[l] = ds[is] * static_cast<float>(((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
        y[l + 32] =
            ds[is + 2] * static_cast<float>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        y[l + 64] =
            ds[is + 4] * static_cast<float>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        y[l + 96] =
            ds[is + 6] * static_cast<float>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
  }
}

}  // namespace dequant_internal

namespace {

struct Kernels {
  dequant_internal::BlockFn fast;
  dequant_internal::BlockFn ref;
};

bool FindKernels(GgmlType type, Kernels* k) {
  namespace di = dequant_internal;
  switch (type) {
#define COMPRESSD_CASE(T)      \
  case GgmlType::k##T:         \
    *k = {di::T, di::T##_ref}; \
    return true;
    COMPRESSD_CASE(F32)
    COMPRESSD_CASE(F16)
    COMPRESSD_CASE(BF16)
    COMPRESSD_CASE(Q4_0)
    COMPRESSD_CASE(Q4_1)
    COMPRESSD_CASE(Q5_0)
    COMPRESSD_CASE(Q5_1)
    COMPRESSD_CASE(Q8_0)
    COMPRESSD_CASE(Q2_K)
    COMPRESSD_CASE(Q3_K)
    COMPRESSD_CASE(Q4_K)
    COMPRESSD_CASE(Q5_K)
    COMPRESSD_CASE(Q6_K)
#undef COMPRESSD_CASE
    default:
      return false;
  }
}

absl::Status Run(GgmlType type, const uint8_t* src, int64_t n, float* dst, bool ref) {
  Kernels k;
  if (!FindKernels(type, &k)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dequantization of ggml type ", GgmlTypeName(type), " (id ",
                     static_cast<uint32_t>(type), ") is not supported"));
  }
  if (absl::StatusOr<uint64_t> bytes = GgmlRowBytes(type, n); !bytes.ok()) return bytes.status();
  const int64_t nb = n / GgmlTraits(static_cast<uint32_t>(type))->block_size;
  if (nb == 0) return absl::OkStatus();  // src/dst may be null then (e.g. empty vectors)
  (ref ? k.ref : k.fast)(src, nb, dst);
  return absl::OkStatus();
}

}  // namespace

bool CanDequantize(GgmlType type) {
  Kernels k;
  return FindKernels(type, &k);
}

absl::StatusOr<uint64_t> GgmlRowBytes(GgmlType type, int64_t n) {
  absl::StatusOr<GgmlTypeTraits> traits = GgmlTraits(static_cast<uint32_t>(type));
  if (!traits.ok()) return traits.status();
  if (n < 0 || n % traits->block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(n, " elements of ", traits->name,
                                                   " is not a whole number of ", traits->block_size,
                                                   "-element blocks"));
  }
  return static_cast<uint64_t>(n / traits->block_size) * static_cast<uint64_t>(traits->type_size);
}

absl::Status Dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  return Run(type, src, n, dst, /*ref=*/false);
}

absl::Status DequantizeRef(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  return Run(type, src, n, dst, /*ref=*/true);
}

}  // namespace compressd::engine
