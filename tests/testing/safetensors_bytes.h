// A well-formed safetensors file of exactly `total` bytes (total >= 120): one
// F32 tensor "w" filled with `fill`, the header padded with spaces (as the
// format allows). For tests that upload a model the server format-checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace compressd::testing {

inline std::string SafetensorsBytes(size_t total, char fill = 'w') {
  const size_t n = (total - 8 - 96) / 4;  // elements; leaves 96..99 bytes for the header
  std::string header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(n) +
                       "],\"data_offsets\":[0," + std::to_string(4 * n) + "]}}";
  header.resize(total - 8 - 4 * n, ' ');
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(uint64_t{header.size()} >> (8 * i)));
  return out + header + std::string(4 * n, fill);
}

}  // namespace compressd::testing
