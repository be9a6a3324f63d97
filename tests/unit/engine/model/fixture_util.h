// Locating golden fixtures and the real model from tests. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace compressd::engine::testing {

// $COMPRESSD_SOURCE_DIR/tests/golden/fixtures/<name> (set by ctest).
std::string FixturePath(const std::string& name);
// The whole file; an empty string (and a test failure) if it cannot be read.
std::string ReadFileOrFail(const std::string& path);
// $COMPRESSD_REAL_MODEL, or "" when it is unset or missing.
std::string RealModelPath();
// $COMPRESSD_REAL_MODEL; adds a test failure (telling to run
// scripts/fetch-model.sh) and returns "" when it is unset or missing.
std::string RealModelPathOrFail();

// One record of tests/golden/fixtures/gguf_dequant.bin (see
// tests/golden/gguf_dequant_fixtures.py).
struct DequantRecord {
  std::string name;
  uint32_t ggml_type = 0;
  int64_t n = 0;
  std::string raw;
  std::vector<float> expected;
};
std::vector<DequantRecord> ReadDequantFixture();

}  // namespace compressd::engine::testing
