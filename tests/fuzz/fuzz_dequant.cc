// libFuzzer target, differential: the fast dequantization path against the
// plain reference, for every supported ggml type, on arbitrary block bytes.
// The first input byte picks the type. Results must agree bit for bit (NaNs
// may differ in payload only).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "workers/engine/model/gguf/dequant.h"

using namespace compressd::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                    GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                                    GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K,
                                    GgmlType::kQ5_K, GgmlType::kQ6_K};
  if (size < 1) return 0;
  const GgmlType type = kTypes[data[0] % (sizeof(kTypes) / sizeof(kTypes[0]))];
  const GgmlTypeTraits traits = *GgmlTraits(static_cast<uint32_t>(type));
  const size_t n_blocks = (size - 1) / static_cast<size_t>(traits.type_size);
  const int64_t n = static_cast<int64_t>(n_blocks) * traits.block_size;
  // An exact-size copy, so ASan catches any read past the blocks.
  std::vector<uint8_t> src(data + 1, data + 1 + n_blocks * traits.type_size);
  std::vector<float> fast(static_cast<size_t>(n)), ref(static_cast<size_t>(n));
  if (!Dequantize(type, src.data(), n, fast.data()).ok()) std::abort();
  if (!DequantizeRef(type, src.data(), n, ref.data()).ok()) std::abort();
  for (int64_t i = 0; i < n; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &fast[i], 4);
    std::memcpy(&b, &ref[i], 4);
    if (a != b && !(fast[i] != fast[i] && ref[i] != ref[i])) std::abort();
  }
  return 0;
}
