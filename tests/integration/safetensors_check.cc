#include "tests/integration/safetensors_check.h"

#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace compressd::testing {

std::map<std::string, RawTensor> ReadSafetensorsDir(const std::string& dir) {
  std::map<std::string, RawTensor> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    std::string data = ReadFile(entry.path().string());
    if (data.size() < 8) {
      ADD_FAILURE() << entry.path() << ": too short";
      return {};
    }
    uint64_t header_len = 0;
    std::memcpy(&header_len, data.data(), 8);
    if (header_len > data.size() - 8) {
      ADD_FAILURE() << entry.path() << ": header length past end";
      return {};
    }
    auto header = nlohmann::json::parse(data.substr(8, header_len), nullptr, false);
    if (header.is_discarded()) {
      ADD_FAILURE() << entry.path() << ": bad JSON header";
      return {};
    }
    const size_t base = 8 + header_len;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      RawTensor t;
      t.dtype = it.value()["dtype"].get<std::string>();
      t.shape = it.value()["shape"].get<std::vector<int64_t>>();
      auto offs = it.value()["data_offsets"].get<std::vector<uint64_t>>();
      if (offs.size() != 2 || offs[0] > offs[1] || base + offs[1] > data.size()) {
        ADD_FAILURE() << entry.path() << ": bad offsets for " << it.key();
        return {};
      }
      t.bytes = data.substr(base + offs[0], offs[1] - offs[0]);
      out[it.key()] = std::move(t);
    }
  }
  return out;
}

double ZeroFraction(const RawTensor& t) {
  size_t width = t.dtype == "F32" ? 4 : 2;
  size_t n = t.bytes.size() / width;
  size_t zeros = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(t.bytes.data()) + i * width;
    bool zero = true;
    for (size_t b = 0; b < width; ++b) {
      unsigned char v = p[b];
      if (b == width - 1) v &= 0x7f;  // ignore the sign bit (little-endian: last byte)
      if (v != 0) zero = false;
    }
    zeros += zero;
  }
  return n ? static_cast<double>(zeros) / static_cast<double>(n) : 0.0;
}

}  // namespace compressd::testing
