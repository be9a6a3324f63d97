// Safetensors element types and the F16/BF16 <-> F32 conversions.
//
// Each conversion has a plain bit-manipulation reference (`..._Ref`, one
// element) that defines the result, and a bulk function that tests compare
// against it (exhaustively for the 16-bit inputs). Float -> 16-bit rounds to
// nearest, ties to even; NaN stays NaN (quiet), infinities and signed zeros
// are preserved. Stateless and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compressd::engine {

// The dtypes of the safetensors format. Only F32/F16/BF16 are ever converted;
// the others are carried as raw bytes.
// clang-format off
enum class DType {
  kBool, kU8, kI8, kI16, kU16, kI32, kU32, kI64, kU64,
  kF8E4M3, kF8E5M2, kF16, kBF16, kF32, kF64,
};
// clang-format on

// INVALID_ARGUMENT for a name outside the safetensors list (e.g. "F16", "BF16").
absl::StatusOr<DType> ParseDType(absl::string_view name);
const char* DTypeName(DType dtype);
size_t DTypeSize(DType dtype);
// True for F32, F16 and BF16: the dtypes the engine converts to F32 and back.
bool IsConvertibleFloat(DType dtype);

// Reference conversions of one element.
float HalfToFloatRef(uint16_t h);
uint16_t FloatToHalfRef(float f);
float BFloat16ToFloatRef(uint16_t b);
uint16_t FloatToBFloat16Ref(float f);
// The smallest fp16 value >= f (f >= 0 and finite, at most 65504): scales
// rounded this way never grow a quantized code past its range, and a tiny
// positive scale never becomes 0 (fp16's subnormals are coarse).
float RoundUpToHalf(float f);

// Bulk conversions (may use F16C instructions when the CPU has them).
void HalfToFloat(const uint16_t* in, float* out, size_t n);
void FloatToHalf(const float* in, uint16_t* out, size_t n);
void BFloat16ToFloat(const uint16_t* in, float* out, size_t n);
void FloatToBFloat16(const float* in, uint16_t* out, size_t n);

// Converts `n` elements of raw little-endian bytes of `dtype` (F32/F16/BF16;
// `in` need not be aligned) to floats, and back. INVALID_ARGUMENT for other dtypes.
absl::Status BytesToFloats(DType dtype, const char* in, size_t n, float* out);
absl::StatusOr<std::string> FloatsToBytes(DType dtype, const float* in, size_t n);

}  // namespace compressd::engine
