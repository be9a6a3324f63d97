#include "workers/engine/export/gguf_writer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

using engine::GgufValueType;

constexpr uint64_t kAlignment = engine::kGgufDefaultAlignment;

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}

void PutString(std::string* out, absl::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s.data(), s.size());
}

uint64_t PadUp(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

// Appends `v` as integer type `t` (little-endian, truncated to its width).
void PutInt(std::string* out, GgufValueType t, int64_t v) {
  char b[sizeof(v)];
  std::memcpy(b, &v, sizeof(v));  // the host is little-endian, like the format
  out->append(b, engine::GgufFixedSize(t));
}

}  // namespace

void GgufBuilder::BeginKv(const std::string& key, GgufValueType type) {
  if (!keys_.insert(key).second) duplicates_.push_back(key);
  ++n_kv_;
  PutString(&kv_bytes_, key);
  Put<uint32_t>(&kv_bytes_, static_cast<uint32_t>(type));
}

void GgufBuilder::AddString(const std::string& key, absl::string_view value) {
  BeginKv(key, GgufValueType::kString);
  PutString(&kv_bytes_, value);
}

void GgufBuilder::AddU32(const std::string& key, uint32_t value) {
  BeginKv(key, GgufValueType::kU32);
  Put(&kv_bytes_, value);
}

void GgufBuilder::AddI32(const std::string& key, int32_t value) {
  BeginKv(key, GgufValueType::kI32);
  Put(&kv_bytes_, value);
}

void GgufBuilder::AddU64(const std::string& key, uint64_t value) {
  BeginKv(key, GgufValueType::kU64);
  Put(&kv_bytes_, value);
}

void GgufBuilder::AddF32(const std::string& key, float value) {
  BeginKv(key, GgufValueType::kF32);
  Put(&kv_bytes_, value);
}

void GgufBuilder::AddBool(const std::string& key, bool value) {
  BeginKv(key, GgufValueType::kBool);
  Put<uint8_t>(&kv_bytes_, value ? 1 : 0);
}

void GgufBuilder::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  BeginKv(key, GgufValueType::kArray);
  Put<uint32_t>(&kv_bytes_, static_cast<uint32_t>(GgufValueType::kString));
  Put<uint64_t>(&kv_bytes_, values.size());
  for (const std::string& v : values) PutString(&kv_bytes_, v);
}

void GgufBuilder::AddIntArray(const std::string& key, GgufValueType elem,
                              const std::vector<int64_t>& values) {
  BeginKv(key, GgufValueType::kArray);
  Put<uint32_t>(&kv_bytes_, static_cast<uint32_t>(elem));
  Put<uint64_t>(&kv_bytes_, values.size());
  for (int64_t v : values) PutInt(&kv_bytes_, elem, v);
}

void GgufBuilder::AddF32Array(const std::string& key, const std::vector<float>& values) {
  BeginKv(key, GgufValueType::kArray);
  Put<uint32_t>(&kv_bytes_, static_cast<uint32_t>(GgufValueType::kF32));
  Put<uint64_t>(&kv_bytes_, values.size());
  for (float v : values) Put(&kv_bytes_, v);
}

absl::Status GgufBuilder::CopyKv(const engine::GgufFile& src, const engine::GgufKv& kv) {
  const std::string& key = kv.key;
  if (kv.type == GgufValueType::kArray) {
    if (kv.elem_type == GgufValueType::kString) {
      ASSIGN_OR_RETURN(std::vector<std::string> v, src.GetStringArray(key));
      AddStringArray(key, v);
      return absl::OkStatus();
    }
    if (engine::IsGgufIntegerType(kv.elem_type)) {
      ASSIGN_OR_RETURN(std::vector<int64_t> v, src.GetIntArray(key));
      AddIntArray(key, kv.elem_type, v);
      return absl::OkStatus();
    }
    if (kv.elem_type == GgufValueType::kF32) {
      ASSIGN_OR_RETURN(std::vector<float> v, src.GetF32Array(key));
      AddF32Array(key, v);
      return absl::OkStatus();
    }
  } else if (kv.type == GgufValueType::kString) {
    ASSIGN_OR_RETURN(std::string v, src.GetString(key));
    AddString(key, v);
    return absl::OkStatus();
  } else if (kv.type == GgufValueType::kBool) {
    ASSIGN_OR_RETURN(bool v, src.GetBool(key));
    AddBool(key, v);
    return absl::OkStatus();
  } else if (kv.type == GgufValueType::kF32) {
    ASSIGN_OR_RETURN(float v, src.GetF32(key));
    AddF32(key, v);
    return absl::OkStatus();
  } else if (engine::IsGgufIntegerType(kv.type)) {
    // Signed values through GetI32 (I8..I32); the rest are non-negative.
    const bool small_signed = kv.type == GgufValueType::kI8 || kv.type == GgufValueType::kI16 ||
                              kv.type == GgufValueType::kI32;
    int64_t v = 0;
    if (small_signed) {
      ASSIGN_OR_RETURN(v, src.GetI32(key));
    } else {
      absl::StatusOr<uint64_t> u = src.GetU64(key);
      if (!u.ok())
        return absl::UnimplementedError(
            absl::StrCat(src.path(), ": metadata key \"", key,
                         "\": cannot copy its value: ", u.status().message()));
      v = static_cast<int64_t>(*u);
    }
    BeginKv(key, kv.type);
    PutInt(&kv_bytes_, kv.type, v);
    return absl::OkStatus();
  }
  std::string type = engine::GgufValueTypeName(kv.type);
  if (kv.type == GgufValueType::kArray)
    absl::StrAppend(&type, " of ", engine::GgufValueTypeName(kv.elem_type));
  return absl::UnimplementedError(
      absl::StrCat(src.path(), ": metadata key \"", key, "\" (", type, ") cannot be copied"));
}

void GgufBuilder::AddTensor(const std::string& name, std::vector<int64_t> ne, engine::GgmlType type,
                            uint64_t nbytes) {
  for (const TensorSlot& s : slots_) {
    if (s.name == name) duplicates_.push_back(name);
  }
  PutString(&info_bytes_, name);
  Put<uint32_t>(&info_bytes_, static_cast<uint32_t>(ne.size()));
  for (int64_t d : ne) Put<uint64_t>(&info_bytes_, static_cast<uint64_t>(d));
  Put<uint32_t>(&info_bytes_, static_cast<uint32_t>(type));
  Put<uint64_t>(&info_bytes_, data_size_);
  slots_.push_back({name, nbytes});
  data_size_ += PadUp(nbytes, kAlignment);
}

absl::StatusOr<std::string> GgufBuilder::Header() const {
  if (!duplicates_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF metadata keys or tensor names given twice: ", absl::StrJoin(duplicates_, ", ")));
  }
  std::string out = "GGUF";
  Put<uint32_t>(&out, 3);
  Put<uint64_t>(&out, slots_.size());
  Put<uint64_t>(&out, n_kv_);
  out += kv_bytes_;
  out += info_bytes_;
  out.resize(PadUp(out.size(), kAlignment), '\0');
  return out;
}

uint64_t GgufBuilder::FileSize() const {
  const uint64_t header = 4 + 4 + 8 + 8 + kv_bytes_.size() + info_bytes_.size();
  return PadUp(header, kAlignment) + data_size_;
}

}  // namespace compressd::engine
