// A tiny GGUF writer for tests: builds files (valid or deliberately broken)
// in memory. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "workers/engine/model/gguf/gguf_file.h"

namespace compressd::engine::testing {

// Little-endian append helpers.
template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}
void PutString(std::string* out, const std::string& s);

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  void AddU8(const std::string& key, uint8_t v);
  void AddI8(const std::string& key, int8_t v);
  void AddU16(const std::string& key, uint16_t v);
  void AddI16(const std::string& key, int16_t v);
  void AddU32(const std::string& key, uint32_t v);
  void AddI32(const std::string& key, int32_t v);
  void AddU64(const std::string& key, uint64_t v);
  void AddI64(const std::string& key, int64_t v);
  void AddF32(const std::string& key, float v);
  void AddF64(const std::string& key, double v);
  void AddBool(const std::string& key, bool v);
  void AddString(const std::string& key, const std::string& v);
  void AddStringArray(const std::string& key, const std::vector<std::string>& v);
  void AddI32Array(const std::string& key, const std::vector<int32_t>& v);
  void AddF32Array(const std::string& key, const std::vector<float>& v);
  // A metadata entry whose value bytes (after key and type) are given raw.
  void AddRawKv(const std::string& key, GgufValueType type, const std::string& value_bytes);

  // A tensor with its data; placed at the next aligned offset unless
  // `offset` is given (>= 0), in which case the data is placed there.
  void AddTensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data,
                 int64_t offset = -1);
  void AddF32Tensor(const std::string& name, std::vector<uint64_t> ne,
                    const std::vector<float>& values);

  // The file's bytes. `alignment` must match general.alignment if set.
  std::string Build(uint64_t alignment = kGgufDefaultAlignment) const;
  // Writes Build() to a file under the test temp dir; returns its path.
  std::string WriteTemp(const std::string& name, uint64_t alignment = kGgufDefaultAlignment) const;

 private:
  struct TensorEntry {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    int64_t offset;
  };
  void AddKv(const std::string& key, GgufValueType type, const std::string& value);

  uint32_t version_;
  uint64_t n_kv_ = 0;
  std::string kv_bytes_;
  std::vector<TensorEntry> tensors_;
};

// Writes `bytes` to a file under the test temp dir; returns its path.
std::string WriteTempFile(const std::string& name, const std::string& bytes);

}  // namespace compressd::engine::testing
