// Dequantization of ggml tensor data to float32, for the types the engine
// reads: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
// Q6_K.
//
// Block layouts follow ggml-quants.c (32-element blocks for the legacy types,
// 256-element super-blocks of 8 or 16 sub-blocks for the k-quants); each
// element is q * d (+ m) or (d * sc) * q - (dmin * m) with fp16 scales, in
// float32 arithmetic in ggml's order, so results match ggml and gguf-py bit
// for bit. Cost: O(n), one pass.
//
// `Dequantize` is the fast path (per-block scale decode, branch-free inner
// loops the compiler vectorizes, table-driven fp16); `DequantizeRef` is the
// plain per-element reference the tests compare it against (exactly).
// Stateless and thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/gguf/ggml_types.h"

namespace compressd::engine {

// True for the types listed above.
bool CanDequantize(GgmlType type);

// Bytes taken by `n` elements of `type`; INVALID_ARGUMENT if `type` is unknown
// or `n` is negative or not a multiple of its block size.
absl::StatusOr<uint64_t> GgmlRowBytes(GgmlType type, int64_t n);

// Converts `n` elements stored at `src` (GgmlRowBytes(type, n) bytes, any
// alignment) to floats in `dst`. INVALID_ARGUMENT for a type outside
// CanDequantize or a bad `n`; nothing is written then.
absl::Status Dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst);
absl::Status DequantizeRef(GgmlType type, const uint8_t* src, int64_t n, float* dst);

// IEEE half and bfloat16 bit patterns to float (exact; NaN payloads kept).
float HalfBitsToFloat(uint16_t h);
float BF16BitsToFloat(uint16_t b);

}  // namespace compressd::engine
