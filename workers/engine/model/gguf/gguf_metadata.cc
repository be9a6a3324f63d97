// GgufFile's typed metadata accessors. Values were bounds-checked by Open();
// they are decoded here from the mapping on each call.
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/model/gguf/byte_reader.h"
#include "workers/engine/model/gguf/gguf_file.h"

namespace compressd::engine {
namespace {

// An integer of type `t` at `at`; *negative tells whether `*value` is to be
// read as int64 (true for negative signed values only).
struct IntValue {
  bool negative = false;
  uint64_t magnitude = 0;  // the value if !negative
  int64_t value = 0;       // the value if negative
};

IntValue LoadInt(const uint8_t* at, GgufValueType t) {
  IntValue v;
  int64_t s = 0;
  switch (t) {
    case GgufValueType::kU8: {
      uint8_t x;
      std::memcpy(&x, at, 1);
      v.magnitude = x;
      return v;
    }
    case GgufValueType::kU16: {
      uint16_t x;
      std::memcpy(&x, at, 2);
      v.magnitude = x;
      return v;
    }
    case GgufValueType::kU32: {
      uint32_t x;
      std::memcpy(&x, at, 4);
      v.magnitude = x;
      return v;
    }
    case GgufValueType::kU64: {
      uint64_t x;
      std::memcpy(&x, at, 8);
      v.magnitude = x;
      return v;
    }
    case GgufValueType::kI8: {
      int8_t x;
      std::memcpy(&x, at, 1);
      s = x;
      break;
    }
    case GgufValueType::kI16: {
      int16_t x;
      std::memcpy(&x, at, 2);
      s = x;
      break;
    }
    case GgufValueType::kI32: {
      int32_t x;
      std::memcpy(&x, at, 4);
      s = x;
      break;
    }
    default: {
      int64_t x;
      std::memcpy(&x, at, 8);
      s = x;
      break;
    }
  }
  if (s < 0) {
    v.negative = true;
    v.value = s;
  } else {
    v.magnitude = static_cast<uint64_t>(s);
  }
  return v;
}

float LoadFloat(const uint8_t* at, GgufValueType t) {
  if (t == GgufValueType::kF32) {
    float f;
    std::memcpy(&f, at, 4);
    return f;
  }
  double d;
  std::memcpy(&d, at, 8);
  return static_cast<float>(d);
}

}  // namespace

absl::StatusOr<const GgufKv*> GgufFile::Lookup(absl::string_view key) const {
  const GgufKv* kv = FindKv(key);
  if (kv == nullptr)
    return absl::NotFoundError(absl::StrCat(path(), ": metadata key \"", key, "\" is missing"));
  return kv;
}

namespace {

absl::Status TypeError(const std::string& path, const GgufKv& kv, absl::string_view expected) {
  std::string actual = GgufValueTypeName(kv.type);
  if (kv.type == GgufValueType::kArray)
    absl::StrAppend(&actual, " of ", GgufValueTypeName(kv.elem_type));
  return absl::InvalidArgumentError(absl::StrCat(path, ": metadata key \"", kv.key, "\" at offset ",
                                                 kv.key_offset, " is ", actual, ", expected ",
                                                 expected));
}

}  // namespace

absl::StatusOr<int64_t> GgufFile::ScalarInt(const GgufKv& kv, int64_t min, uint64_t max) const {
  if (!IsGgufIntegerType(kv.type)) return TypeError(path(), kv, "an integer");
  const IntValue v = LoadInt(file_->data() + kv.value_offset, kv.type);
  if ((v.negative && v.value < min) || (!v.negative && v.magnitude > max)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": metadata key \"", kv.key, "\" at offset ", kv.key_offset,
                     ": value ", v.negative ? absl::StrCat(v.value) : absl::StrCat(v.magnitude),
                     " outside [", min, ", ", max, "]"));
  }
  return v.negative ? v.value : static_cast<int64_t>(v.magnitude);
}

absl::StatusOr<uint32_t> GgufFile::GetU32(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  ASSIGN_OR_RETURN(int64_t v, ScalarInt(*kv, 0, std::numeric_limits<uint32_t>::max()));
  return static_cast<uint32_t>(v);
}

absl::StatusOr<int32_t> GgufFile::GetI32(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  ASSIGN_OR_RETURN(int64_t v, ScalarInt(*kv, std::numeric_limits<int32_t>::min(),
                                        std::numeric_limits<int32_t>::max()));
  return static_cast<int32_t>(v);
}

absl::StatusOr<uint64_t> GgufFile::GetU64(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type == GgufValueType::kU64) {
    return LoadInt(file_->data() + kv->value_offset, kv->type).magnitude;
  }
  ASSIGN_OR_RETURN(int64_t v, ScalarInt(*kv, 0, std::numeric_limits<int64_t>::max()));
  return static_cast<uint64_t>(v);
}

absl::StatusOr<float> GgufFile::GetF32(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kF32 && kv->type != GgufValueType::kF64)
    return TypeError(path(), *kv, "f32");
  return LoadFloat(file_->data() + kv->value_offset, kv->type);
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kBool) return TypeError(path(), *kv, "bool");
  return file_->data()[kv->value_offset] != 0;
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kString) return TypeError(path(), *kv, "string");
  ByteReader r(file_->data(), file_size(), kv->value_offset);
  absl::string_view s;
  r.ReadString(&s);  // in range: checked by Open()
  return std::string(s);
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kArray || kv->elem_type != GgufValueType::kString) {
    return TypeError(path(), *kv, "array of string");
  }
  ByteReader r(file_->data(), file_size(), kv->value_offset);
  std::vector<std::string> out;
  out.reserve(kv->count);  // bounded by the file size at Open()
  for (uint64_t i = 0; i < kv->count; ++i) {
    absl::string_view s;
    r.ReadString(&s);
    out.emplace_back(s);
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kArray || !IsGgufIntegerType(kv->elem_type)) {
    return TypeError(path(), *kv, "array of integers");
  }
  const size_t size = GgufFixedSize(kv->elem_type);
  const uint8_t* at = file_->data() + kv->value_offset;
  std::vector<int64_t> out(kv->count);
  for (uint64_t i = 0; i < kv->count; ++i) {
    const IntValue v = LoadInt(at + i * size, kv->elem_type);
    if (!v.negative && v.magnitude > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path(), ": metadata key \"", kv->key, "\" element ", i, " at offset ",
                       kv->value_offset + i * size, " exceeds int64"));
    }
    out[i] = v.negative ? v.value : static_cast<int64_t>(v.magnitude);
  }
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetF32Array(absl::string_view key) const {
  ASSIGN_OR_RETURN(const GgufKv* kv, Lookup(key));
  if (kv->type != GgufValueType::kArray ||
      (kv->elem_type != GgufValueType::kF32 && kv->elem_type != GgufValueType::kF64)) {
    return TypeError(path(), *kv, "array of f32");
  }
  const size_t size = kv->elem_type == GgufValueType::kF32 ? 4 : 8;
  const uint8_t* at = file_->data() + kv->value_offset;
  std::vector<float> out(kv->count);
  for (uint64_t i = 0; i < kv->count; ++i) out[i] = LoadFloat(at + i * size, kv->elem_type);
  return out;
}

}  // namespace compressd::engine
