// Quantization of float32 rows into ggml block formats, the inverse of
// workers/engine/model/gguf/dequant.h (same block layouts).
//
// Formats (all little-endian; "fp16" is IEEE half, rounded to nearest even):
//   F32, F16   one element per "block".
//   Q8_0  32 elements: fp16 d, int8 q[32];                value = d * q.
//   Q4_0  32 elements: fp16 d, 16 bytes of nibbles;       value = d * (q - 8),
//         element j < 16 in the low nibble of byte j, element j + 16 in its high nibble.
//   Q4_1  32 elements: fp16 d, fp16 m, nibbles as Q4_0;   value = d * q + m.
//   Q5_0  32 elements: fp16 d, u32 qh (bit j = bit 4 of element j), nibbles;
//         value = d * (q - 16).
//   Q5_1  32 elements: fp16 d, fp16 m, u32 qh, nibbles;   value = d * q + m.
//   Q4_K  256 elements (8 sub-blocks of 32): fp16 d, fp16 dmin, 12 bytes of
//         6-bit sub-block scales sc[8] and mins mn[8], 128 bytes of nibbles
//         (per 64 elements, 32 bytes: low nibble = first 32, high = next 32);
//         value = d * sc[j] * q - dmin * mn[j], q in [0, 15].
//   Q5_K  as Q4_K plus 32 bytes qh (bit 2c / 2c+1 of byte l: bit 4 of element
//         64c + l / 64c + 32 + l) before the nibbles; q in [0, 31].
//   Q6_K  256 elements (16 sub-blocks of 16): 128 bytes low nibbles, 64 bytes
//         high 2-bit pairs, int8 scales[16], fp16 d; value = d * sc[j] * (q - 32).
//   Q2_K  256 elements (16 sub-blocks of 16): scales[16] (4-bit scale low,
//         4-bit min high), 64 bytes of 2-bit codes (per 128 elements, 32
//         bytes; element 32j + l at bits 2j of byte l), fp16 d, fp16 dmin;
//         value = d * sc[j] * q - dmin * mn[j], q in [0, 3].
//   Q3_K  256 elements (16 sub-blocks of 16): hmask[32] (bit e / 32 of byte
//         e % 32 set: code >= 0), 64 bytes of low 2-bit codes as Q2_K, 12
//         bytes of 6-bit scales (stored + 32), fp16 d;
//         value = d * sc[j] * q, q in [-4, 3].
//
// Algorithms. The legacy types (Q4_0 .. Q8_0) use ggml's reference
// quantizers' arithmetic (min-max / max-abs scale, the same rounding and
// truncation, scales computed in float32 and stored as fp16), so their bytes
// equal gguf-py's `gguf.quants.quantize` (tests/golden/ggml_quantize_fixtures.py).
// The k-quants fit each sub-block by a small search over candidate scales with
// a weighted least-squares refit (weights rms + |x|, or x^2 for Q6_K/Q3_K, as
// ggml's reference does), round the fp16 super-block scales up, and pick each
// sub-block's quantized scale (and min) among its nearest value and the
// neighbours by error, then re-round every element against the stored scales
// (ggml_quantize_k.cc, ggml_quantize_k_low.cc). Their bytes are not ggml's; their error is
// at or below ggml's reference quantizers' on the golden rows.
//
// Zeros: Q8_0, Q4_0, Q5_0, Q3_K and Q6_K map 0 to exactly 0; F16/F32 keep it;
// the types with a min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) generally do not.
//
// Cost: O(n) for the legacy types, about 60 passes over the data for the
// k-quants. Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/gguf/ggml_types.h"

namespace compressd::engine {

// True for F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool CanQuantize(engine::GgmlType type);

// The type named `name` ("Q4_K", case-insensitive) if CanQuantize;
// INVALID_ARGUMENT otherwise.
absl::StatusOr<engine::GgmlType> ParseQuantizeType(absl::string_view name);

// Quantizes `rows` rows of `row_len` floats at `x` (row-major) into
// rows * GgmlRowBytes(type, row_len) bytes. INVALID_ARGUMENT naming `tensor`
// when the type cannot be written, row_len is not a positive multiple of the
// type's block size, or a value is non-finite or (for every type but F32)
// outside the fp16 range |x| <= 65504 (the row and column are named).
absl::StatusOr<std::string> QuantizeRows(engine::GgmlType type, const float* x, int64_t rows,
                                         int64_t row_len, absl::string_view tensor);

}  // namespace compressd::engine
