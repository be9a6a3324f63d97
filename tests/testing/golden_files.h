// The golden fixtures of tests/golden/fixtures, for tests run by ctest (which
// sets COMPRESSD_SOURCE_DIR; "." otherwise).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace compressd::testing {

inline std::string GoldenFixture(const std::string& name) {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/tests/golden/fixtures/" + name;
}

// The whole file; empty when it cannot be read.
inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace compressd::testing
