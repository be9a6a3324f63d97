// An independent, minimal safetensors reader for checking artifacts in tests
// (deliberately not the worker's reader, so a bug there cannot hide itself).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace compressd::testing {

struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian data
};

// Reads every tensor of every *.safetensors file in `dir`. Fails the current
// test (ADD_FAILURE) and returns an empty map on a malformed file.
std::map<std::string, RawTensor> ReadSafetensorsDir(const std::string& dir);

// Fraction of elements that are exactly zero (+0 or -0), for F32/F16/BF16.
double ZeroFraction(const RawTensor& t);

}  // namespace compressd::testing
