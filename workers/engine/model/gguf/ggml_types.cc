#include "workers/engine/model/gguf/ggml_types.h"

#include "absl/strings/str_cat.h"

namespace compressd::engine {
namespace {

constexpr int64_t kQK_K = 256;  // super-block size of the k-quants

struct Entry {
  GgmlType type;
  GgmlTypeTraits traits;
};

// ggml's type_traits table (block size, bytes per block), as in gguf-py's
// GGML_QUANT_SIZES.
constexpr Entry kTable[] = {
    {GgmlType::kF32, {"F32", 1, 4}},
    {GgmlType::kF16, {"F16", 1, 2}},
    {GgmlType::kQ4_0, {"Q4_0", 32, 2 + 16}},
    {GgmlType::kQ4_1, {"Q4_1", 32, 2 + 2 + 16}},
    {GgmlType::kQ5_0, {"Q5_0", 32, 2 + 4 + 16}},
    {GgmlType::kQ5_1, {"Q5_1", 32, 2 + 2 + 4 + 16}},
    {GgmlType::kQ8_0, {"Q8_0", 32, 2 + 32}},
    {GgmlType::kQ8_1, {"Q8_1", 32, 4 + 4 + 32}},
    {GgmlType::kQ2_K, {"Q2_K", kQK_K, 2 + 2 + kQK_K / 16 + kQK_K / 4}},
    {GgmlType::kQ3_K, {"Q3_K", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + 12}},
    {GgmlType::kQ4_K, {"Q4_K", kQK_K, 2 + 2 + kQK_K / 2 + 12}},
    {GgmlType::kQ5_K, {"Q5_K", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 8 + 12}},
    {GgmlType::kQ6_K, {"Q6_K", kQK_K, 2 + kQK_K / 2 + kQK_K / 4 + kQK_K / 16}},
    {GgmlType::kQ8_K, {"Q8_K", kQK_K, 4 + kQK_K + kQK_K / 8}},
    {GgmlType::kIQ2_XXS, {"IQ2_XXS", kQK_K, 2 + kQK_K / 4}},
    {GgmlType::kIQ2_XS, {"IQ2_XS", kQK_K, 2 + kQK_K / 4 + kQK_K / 32}},
    {GgmlType::kIQ3_XXS, {"IQ3_XXS", kQK_K, 2 + kQK_K / 4 + kQK_K / 8}},
    {GgmlType::kIQ1_S, {"IQ1_S", kQK_K, 2 + kQK_K / 8 + kQK_K / 16}},
    {GgmlType::kIQ4_NL, {"IQ4_NL", 32, 2 + 16}},
    {GgmlType::kIQ3_S, {"IQ3_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 8 + kQK_K / 32 + 4}},
    {GgmlType::kIQ2_S, {"IQ2_S", kQK_K, 2 + kQK_K / 4 + kQK_K / 16}},
    {GgmlType::kIQ4_XS, {"IQ4_XS", kQK_K, 2 + 2 + kQK_K / 2 + kQK_K / 64}},
    {GgmlType::kI8, {"I8", 1, 1}},
    {GgmlType::kI16, {"I16", 1, 2}},
    {GgmlType::kI32, {"I32", 1, 4}},
    {GgmlType::kI64, {"I64", 1, 8}},
    {GgmlType::kF64, {"F64", 1, 8}},
    {GgmlType::kIQ1_M, {"IQ1_M", kQK_K, kQK_K / 8 + kQK_K / 16 + kQK_K / 32}},
    {GgmlType::kBF16, {"BF16", 1, 2}},
    {GgmlType::kTQ1_0, {"TQ1_0", kQK_K, 2 + 4 * 13}},
    {GgmlType::kTQ2_0, {"TQ2_0", kQK_K, 2 + 64}},
    {GgmlType::kMXFP4, {"MXFP4", 32, 1 + 16}},
};

const Entry* FindEntry(uint32_t type_id) {
  for (const Entry& e : kTable) {
    if (static_cast<uint32_t>(e.type) == type_id) return &e;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<GgmlTypeTraits> GgmlTraits(uint32_t type_id) {
  const Entry* e = FindEntry(type_id);
  if (e == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("unknown ggml type id ", type_id));
  return e->traits;
}

const char* GgmlTypeName(GgmlType type) {
  const Entry* e = FindEntry(static_cast<uint32_t>(type));
  return e == nullptr ? "unknown" : e->traits.name;
}

}  // namespace compressd::engine
