#include "workers/engine/model/safetensors.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace compressd::engine {
namespace {

using nlohmann::json;

absl::Status Malformed(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": malformed safetensors file: ", what));
}

bool ToU64(const json& v, uint64_t* out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  const int64_t s = v.get<int64_t>();
  if (s < 0) return false;
  *out = static_cast<uint64_t>(s);
  return true;
}

// Parses and checks one tensor entry against the data section size.
absl::Status ParseTensor(const std::string& path, const std::string& name, const json& v,
                         uint64_t data_start, uint64_t data_size, TensorInfo* t) {
  const std::string where = absl::StrCat("tensor \"", name, "\"");
  auto bad = [&](absl::string_view why) { return Malformed(path, absl::StrCat(where, ": ", why)); };
  if (!v.is_object()) return bad("entry is not a JSON object");
  t->name = name;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) return bad("missing or non-string \"dtype\"");
  absl::StatusOr<DType> dtype = ParseDType(dt->get<std::string>());
  if (!dtype.ok()) return bad(dtype.status().message());
  t->dtype = *dtype;
  auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array()) return bad("missing or non-array \"shape\"");
  t->numel = 1;
  for (const json& d : *shape) {
    uint64_t dim;
    if (!ToU64(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
      return bad(absl::StrCat("shape entry ", d.dump(), " is not a non-negative integer"));
    }
    t->shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(t->numel, dim, &t->numel)) return bad("shape numel overflows");
  }
  auto offsets = v.find("data_offsets");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 ||
      !ToU64((*offsets)[0], &t->begin) || !ToU64((*offsets)[1], &t->end)) {
    return bad("\"data_offsets\" must be two non-negative integers");
  }
  const std::string range = absl::StrCat("data_offsets [", t->begin, ", ", t->end, ")");
  if (t->begin > t->end) return bad(absl::StrCat(range, ": begin is after end"));
  if (t->end > data_size) {
    return bad(absl::StrCat(range, " end at file byte offset ", data_start + t->end,
                            " lies beyond the data section (", data_size,
                            " bytes, file ends at byte offset ", data_start + data_size, ")"));
  }
  uint64_t expected;
  if (__builtin_mul_overflow(t->numel, DTypeSize(t->dtype), &expected)) {
    return bad("byte size overflows");
  }
  if (expected != t->nbytes()) {
    return bad(absl::StrCat(range, " at file byte offset ", data_start + t->begin, " holds ",
                            t->nbytes(), " bytes but ", t->numel, " elements of ",
                            DTypeName(t->dtype), " need ", expected));
  }
  return absl::OkStatus();
}

absl::Status ParseMetadata(const std::string& path, const json& v,
                           std::map<std::string, std::string>* out) {
  if (!v.is_object()) return Malformed(path, "\"__metadata__\" is not a JSON object");
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it->is_string()) {
      return Malformed(
          path, absl::StrCat("\"__metadata__\" value for \"", it.key(), "\" is not a string"));
    }
    (*out)[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::MappedFile> mapped, engine::MappedFile::Open(path));
  if (mapped->size() < 8) {
    return Malformed(path, absl::StrCat("file is ", mapped->size(),
                                        " bytes, shorter than the 8-byte header length"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile(path, std::move(mapped)));
  RETURN_IF_ERROR(file->ParseHeader());
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

absl::Status SafetensorsFile::ParseHeader() {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | static_cast<uint8_t>(base_[i]);
  if (header_len > size_ - 8) {
    return Malformed(path_, absl::StrCat("header length ", header_len, " at byte offset 0 exceeds",
                                         " the ", size_ - 8, " bytes after it"));
  }
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Malformed(path_, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                         kMaxSafetensorsHeaderBytes, " bytes"));
  }
  data_start_ = 8 + header_len;
  const uint64_t data_size = size_ - data_start_;
  json header;
  try {
    header = json::parse(base_ + 8, base_ + data_start_);
  } catch (const json::exception& e) {
    return Malformed(path_, absl::StrCat("header JSON (bytes 8..", data_start_, "): ", e.what()));
  }
  if (!header.is_object()) return Malformed(path_, "header JSON is not an object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(path_, *it, &metadata_));
      continue;
    }
    TensorInfo t;
    RETURN_IF_ERROR(ParseTensor(path_, it.key(), *it, data_start_, data_size, &t));
    tensors_.push_back(std::move(t));
  }
  // No two tensors may share bytes: check in data order.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    if (cur.begin < prev.end) {
      return Malformed(path_, absl::StrCat("tensor \"", cur.name, "\" data_offsets [", cur.begin,
                                           ", ", cur.end, ") at file byte offset ",
                                           data_start_ + cur.begin, " overlaps tensor \"",
                                           prev.name, "\" [", prev.begin, ", ", prev.end, ")"));
    }
  }
  // nlohmann's object iterates in key order, so tensors_ is already sorted by name.
  return absl::OkStatus();
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, absl::string_view n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

absl::string_view SafetensorsFile::Bytes(const TensorInfo& tensor) const {
  return absl::string_view(base_ + data_start_ + tensor.begin, tensor.nbytes());
}

void SafetensorsFile::ReleaseBytes(const TensorInfo& tensor) const {
  file_->DropPages(data_start_ + tensor.begin, tensor.nbytes());
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadAsFloat(const TensorInfo& tensor) const {
  if (!IsConvertibleFloat(tensor.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor \"", tensor.name, "\": dtype ",
                                                   DTypeName(tensor.dtype),
                                                   " is not F32, F16 or BF16"));
  }
  std::vector<float> out(tensor.numel);
  RETURN_IF_ERROR(BytesToFloats(tensor.dtype, Bytes(tensor).data(), tensor.numel, out.data()));
  return out;
}

}  // namespace compressd::engine
