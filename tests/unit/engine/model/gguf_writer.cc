#include "tests/unit/engine/model/gguf_writer.h"

#include <fstream>

#include "gtest/gtest.h"

namespace compressd::engine::testing {

void PutString(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

void GgufWriter::AddKv(const std::string& key, GgufValueType type, const std::string& value) {
  PutString(&kv_bytes_, key);
  Put<uint32_t>(&kv_bytes_, static_cast<uint32_t>(type));
  kv_bytes_.append(value);
  ++n_kv_;
}

#define COMPRESSD_SCALAR_ADDER(Name, T, Type)               \
  void GgufWriter::Add##Name(const std::string& key, T v) { \
    std::string b;                                          \
    Put<T>(&b, v);                                          \
    AddKv(key, GgufValueType::Type, b);                     \
  }
COMPRESSD_SCALAR_ADDER(U8, uint8_t, kU8)
COMPRESSD_SCALAR_ADDER(I8, int8_t, kI8)
COMPRESSD_SCALAR_ADDER(U16, uint16_t, kU16)
COMPRESSD_SCALAR_ADDER(I16, int16_t, kI16)
COMPRESSD_SCALAR_ADDER(U32, uint32_t, kU32)
COMPRESSD_SCALAR_ADDER(I32, int32_t, kI32)
COMPRESSD_SCALAR_ADDER(U64, uint64_t, kU64)
COMPRESSD_SCALAR_ADDER(I64, int64_t, kI64)
COMPRESSD_SCALAR_ADDER(F32, float, kF32)
COMPRESSD_SCALAR_ADDER(F64, double, kF64)
#undef COMPRESSD_SCALAR_ADDER

void GgufWriter::AddBool(const std::string& key, bool v) {
  AddKv(key, GgufValueType::kBool, std::string(1, v ? '\1' : '\0'));
}

void GgufWriter::AddString(const std::string& key, const std::string& v) {
  std::string b;
  PutString(&b, v);
  AddKv(key, GgufValueType::kString, b);
}

void GgufWriter::AddStringArray(const std::string& key, const std::vector<std::string>& v) {
  std::string b;
  Put<uint32_t>(&b, static_cast<uint32_t>(GgufValueType::kString));
  Put<uint64_t>(&b, v.size());
  for (const std::string& s : v) PutString(&b, s);
  AddKv(key, GgufValueType::kArray, b);
}

void GgufWriter::AddI32Array(const std::string& key, const std::vector<int32_t>& v) {
  std::string b;
  Put<uint32_t>(&b, static_cast<uint32_t>(GgufValueType::kI32));
  Put<uint64_t>(&b, v.size());
  for (int32_t x : v) Put<int32_t>(&b, x);
  AddKv(key, GgufValueType::kArray, b);
}

void GgufWriter::AddF32Array(const std::string& key, const std::vector<float>& v) {
  std::string b;
  Put<uint32_t>(&b, static_cast<uint32_t>(GgufValueType::kF32));
  Put<uint64_t>(&b, v.size());
  for (float x : v) Put<float>(&b, x);
  AddKv(key, GgufValueType::kArray, b);
}

void GgufWriter::AddRawKv(const std::string& key, GgufValueType type,
                          const std::string& value_bytes) {
  AddKv(key, type, value_bytes);
}

void GgufWriter::AddTensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                           std::string data, int64_t offset) {
  tensors_.push_back({name, std::move(ne), type, std::move(data), offset});
}

void GgufWriter::AddF32Tensor(const std::string& name, std::vector<uint64_t> ne,
                              const std::vector<float>& values) {
  std::string data(values.size() * 4, '\0');
  std::memcpy(data.data(), values.data(), data.size());
  AddTensor(name, std::move(ne), static_cast<uint32_t>(GgmlType::kF32), std::move(data));
}

std::string GgufWriter::Build(uint64_t alignment) const {
  std::string out = "GGUF";
  Put<uint32_t>(&out, version_);
  Put<uint64_t>(&out, tensors_.size());
  Put<uint64_t>(&out, n_kv_);
  out += kv_bytes_;
  // Lay out the data section first so the infos can carry the offsets.
  std::string data;
  std::vector<uint64_t> offsets;
  for (const TensorEntry& t : tensors_) {
    uint64_t at = t.offset >= 0 ? static_cast<uint64_t>(t.offset)
                                : (data.size() + alignment - 1) / alignment * alignment;
    if (data.size() < at) data.resize(at, '\0');
    if (data.size() < at + t.data.size()) data.resize(at + t.data.size(), '\0');
    data.replace(at, t.data.size(), t.data);
    offsets.push_back(at);
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorEntry& t = tensors_[i];
    PutString(&out, t.name);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) Put<uint64_t>(&out, d);
    Put<uint32_t>(&out, t.type);
    Put<uint64_t>(&out, offsets[i]);
  }
  out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
  return out + data;
}

std::string WriteTempFile(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(f.good()) << path;
  return path;
}

std::string GgufWriter::WriteTemp(const std::string& name, uint64_t alignment) const {
  return WriteTempFile(name, Build(alignment));
}

}  // namespace compressd::engine::testing
