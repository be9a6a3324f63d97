// The ggml tensor types a GGUF file can declare, with their block layout.
//
// A quantized type packs `block_size` consecutive elements of a row into
// `type_size` bytes; a row of n elements (n a multiple of block_size) takes
// n / block_size * type_size bytes. The table covers every type id the GGUF
// format defines (so any file's byte ranges can be validated); which of them
// can be dequantized is decided by dequant.h. Stateless and thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace compressd::engine {

// Values are the on-disk ids (ggml.h `enum ggml_type`).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct GgmlTypeTraits {
  const char* name;
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
};

// Traits of an on-disk type id; INVALID_ARGUMENT for an id no ggml type has.
absl::StatusOr<GgmlTypeTraits> GgmlTraits(uint32_t type_id);
// The name of a type ("Q4_1"), or "unknown" for an id outside the table.
const char* GgmlTypeName(GgmlType type);

}  // namespace compressd::engine
