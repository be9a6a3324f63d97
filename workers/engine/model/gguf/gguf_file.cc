#include "workers/engine/model/gguf/gguf_file.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/model/gguf/byte_reader.h"

namespace compressd::engine {
namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
// Smallest encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim
constexpr uint64_t kMinArrayBytes = 4 + 8;                   // element type, count

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

// Walks one value of type `t` (strings and nested arrays included), checking
// every length against the bytes that remain. Returns a description of the
// problem, or "" when the value is well formed.
std::string SkipValue(ByteReader* r, GgufValueType t, int depth) {
  if (t == GgufValueType::kString) {
    absl::string_view s;
    return r->ReadString(&s)
               ? ""
               : absl::StrCat("string at offset ", r->pos(), " runs past end of file");
  }
  if (t != GgufValueType::kArray) {
    return r->Skip(GgufFixedSize(t))
               ? ""
               : absl::StrCat("value at offset ", r->pos(), " runs past end of file");
  }
  if (depth >= kGgufMaxArrayDepth) {
    return absl::StrCat("arrays nested deeper than ", kGgufMaxArrayDepth, " at offset ", r->pos());
  }
  const uint64_t at = r->pos();
  uint32_t elem = 0;
  uint64_t count = 0;
  if (!r->Read(&elem) || !r->Read(&count))
    return absl::StrCat("array header at offset ", at, " runs past end of file");
  if (!ValidValueType(elem))
    return absl::StrCat("array at offset ", at, " has unknown element type ", elem);
  const GgufValueType et = static_cast<GgufValueType>(elem);
  const uint64_t min_elem = et == GgufValueType::kString  ? 8
                            : et == GgufValueType::kArray ? kMinArrayBytes
                                                          : GgufFixedSize(et);
  if (count > r->remaining() / min_elem) {
    return absl::StrCat("array at offset ", at, " declares ", count, " elements of ",
                        GgufValueTypeName(et), " but only ", r->remaining(), " bytes remain");
  }
  if (GgufFixedSize(et) != 0) {
    r->Skip(count * GgufFixedSize(et));
    return "";
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::string err = SkipValue(r, et, depth + 1);
    if (!err.empty()) return absl::StrCat("element ", i, " of array at offset ", at, ": ", err);
  }
  return "";
}

}  // namespace

uint64_t GgufFixedSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8:
    case GgufValueType::kI8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kU16:
    case GgufValueType::kI16:
      return 2;
    case GgufValueType::kU32:
    case GgufValueType::kI32:
    case GgufValueType::kF32:
      return 4;
    case GgufValueType::kU64:
    case GgufValueType::kI64:
    case GgufValueType::kF64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool IsGgufIntegerType(GgufValueType t) {
  return t != GgufValueType::kF32 && t != GgufValueType::kF64 && t != GgufValueType::kBool &&
         GgufFixedSize(t) != 0;
}

const char* GgufValueTypeName(GgufValueType type) {
  static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  const uint32_t i = static_cast<uint32_t>(type);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "unknown";
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(std::move(file));
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBytes(std::string name, std::string bytes) {
  return Parse(MappedFile::FromBytes(std::move(name), std::move(bytes)));
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::unique_ptr<MappedFile> mapped) {
  std::unique_ptr<GgufFile> f(new GgufFile(std::move(mapped)));
  uint64_t pos = 0, n_tensors = 0, n_kvs = 0;
  RETURN_IF_ERROR(f->ParseHeader(&pos, &n_tensors, &n_kvs));
  f->kvs_.reserve(n_kvs);
  for (uint64_t i = 0; i < n_kvs; ++i) RETURN_IF_ERROR(f->ParseKv(&pos));
  f->tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) RETURN_IF_ERROR(f->ParseTensorInfo(&pos));
  RETURN_IF_ERROR(f->ReadAlignment());
  // pos <= file size and alignment <= 2^32, so this cannot overflow.
  f->data_start_ = (pos + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  RETURN_IF_ERROR(f->ValidateTensors());
  return f;
}

absl::Status GgufFile::ParseHeader(uint64_t* pos, uint64_t* n_tensors, uint64_t* n_kvs) {
  const uint64_t size = file_size();
  if (size < kHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": truncated GGUF header: file is ",
                                                   size, " bytes, the header needs ",
                                                   kHeaderBytes));
  }
  ByteReader r(file_->data(), size);
  char magic[4];
  r.Read(&magic);
  if (std::memcmp(magic, kMagic, 4) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": not a GGUF file: bad magic at offset 0 (expected \"GGUF\")"));
  }
  r.Read(&version_);
  if (version_ != 2 && version_ != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": unsupported GGUF version ", version_,
                     " at offset 4 (supported: 2, 3; big-endian files are not supported)"));
  }
  r.Read(n_tensors);
  r.Read(n_kvs);
  if (*n_kvs > r.remaining() / kMinKvBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": metadata count ", *n_kvs,
                                                   " at offset 16 exceeds what the ", r.remaining(),
                                                   " remaining bytes can hold"));
  }
  if (*n_tensors > r.remaining() / kMinTensorInfoBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": tensor count ", *n_tensors,
                                                   " at offset 8 exceeds what the ", r.remaining(),
                                                   " remaining bytes can hold"));
  }
  *pos = r.pos();
  return absl::OkStatus();
}

absl::Status GgufFile::ParseKv(uint64_t* pos) {
  ByteReader r(file_->data(), file_size(), *pos);
  GgufKv kv;
  kv.key_offset = *pos;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": metadata entry ", kvs_.size(),
                                                   " key \"", kv.key, "\" at offset ",
                                                   kv.key_offset, ": ", why));
  };
  absl::string_view key;
  if (!r.ReadString(&key)) return bad("key string runs past end of file");
  kv.key = std::string(key);
  uint32_t type = 0;
  if (!r.Read(&type)) return bad("value type runs past end of file");
  if (!ValidValueType(type)) return bad(absl::StrCat("unknown value type ", type));
  kv.type = static_cast<GgufValueType>(type);
  if (kv.type == GgufValueType::kArray) {
    ByteReader head = r;
    uint32_t elem = 0;
    if (head.Read(&elem) && head.Read(&kv.count) && ValidValueType(elem)) {
      kv.elem_type = static_cast<GgufValueType>(elem);
    }
    kv.value_offset = head.pos();
  } else {
    kv.value_offset = r.pos();
  }
  std::string err = SkipValue(&r, kv.type, 0);
  if (!err.empty()) return bad(err);
  if (kv_index_.count(kv.key) != 0) return bad("duplicate key");
  kv_index_.emplace(kv.key, kvs_.size());
  kvs_.push_back(std::move(kv));
  *pos = r.pos();
  return absl::OkStatus();
}

absl::Status GgufFile::ParseTensorInfo(uint64_t* pos) {
  ByteReader r(file_->data(), file_size(), *pos);
  GgufTensorInfo t;
  t.info_offset = *pos;
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(path(), ": tensor info ", tensors_.size(), " \"",
                                                   t.name, "\" at offset ", t.info_offset, ": ",
                                                   why));
  };
  absl::string_view name;
  if (!r.ReadString(&name)) return bad("name string runs past end of file");
  t.name = std::string(name);
  uint32_t n_dims = 0;
  if (!r.Read(&n_dims)) return bad("n_dims runs past end of file");
  if (n_dims < 1 || n_dims > kGgufMaxDims) {
    return bad(absl::StrCat("n_dims ", n_dims, " outside 1..", kGgufMaxDims));
  }
  t.numel = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    if (!r.Read(&ne)) return bad("dims run past end of file");
    if (ne > static_cast<uint64_t>(INT64_MAX))
      return bad(absl::StrCat("dim ", d, " = ", ne, " is negative as int64"));
    t.ne.push_back(static_cast<int64_t>(ne));
    if (__builtin_mul_overflow(t.numel, t.ne.back(), &t.numel))
      return bad("element count overflows int64");
  }
  uint32_t type = 0;
  if (!r.Read(&type)) return bad("type runs past end of file");
  absl::StatusOr<GgmlTypeTraits> traits = GgmlTraits(type);
  if (!traits.ok()) return bad(traits.status().message());
  t.type = static_cast<GgmlType>(type);
  if (!r.Read(&t.offset)) return bad("data offset runs past end of file");
  if (t.ne[0] % traits->block_size != 0) {
    return bad(absl::StrCat("row length ne[0] = ", t.ne[0], " is not a multiple of the ",
                            traits->name, " block size ", traits->block_size));
  }
  if (__builtin_mul_overflow(static_cast<uint64_t>(t.numel / traits->block_size),
                             static_cast<uint64_t>(traits->type_size), &t.nbytes)) {
    return bad("byte size overflows");
  }
  if (tensor_index_.count(t.name) != 0) return bad("duplicate tensor name");
  tensor_index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
  *pos = r.pos();
  return absl::OkStatus();
}

absl::Status GgufFile::ReadAlignment() {
  if (!HasKey("general.alignment")) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint32_t a, GetU32("general.alignment"));
  if (a == 0 || (a & (a - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path(), ": metadata key \"general.alignment\" at offset ",
                     FindKv("general.alignment")->key_offset, ": ", a, " is not a power of two"));
  }
  alignment_ = a;
  return absl::OkStatus();
}

absl::Status GgufFile::ValidateTensors() {
  const uint64_t size = file_size();
  for (const GgufTensorInfo& t : tensors_) {
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(path(), ": tensor \"", t.name,
                                                     "\" (info at offset ", t.info_offset,
                                                     ", data offset ", t.offset, "): ", why));
    };
    if (t.offset % alignment_ != 0) {
      return bad(
          absl::StrCat("misaligned data: offset is not a multiple of the alignment ", alignment_));
    }
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_start_, t.offset, &begin) ||
        __builtin_add_overflow(begin, t.nbytes, &end) || end > size) {
      return bad(absl::StrCat(t.nbytes, " bytes from data section start ", data_start_,
                              " run past end of file (", size, " bytes)"));
    }
  }
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const GgufTensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  const GgufTensorInfo* furthest = nullptr;  // the tensor ending last so far
  for (const GgufTensorInfo* cur : by_offset) {
    if (cur->nbytes == 0) continue;
    if (furthest != nullptr && cur->offset < furthest->offset + furthest->nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path(), ": tensor \"", cur->name, "\" data at offset ",
                       data_start_ + cur->offset, " overlaps tensor \"", furthest->name, "\""));
    }
    if (furthest == nullptr || cur->offset + cur->nbytes > furthest->offset + furthest->nbytes) {
      furthest = cur;
    }
  }
  return absl::OkStatus();
}

const GgufKv* GgufFile::FindKv(absl::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* GgufFile::TensorData(const GgufTensorInfo& t) const {
  return file_->data() + data_start_ + t.offset;
}

void GgufFile::ReleaseTensorData(const GgufTensorInfo& t) const {
  file_->DropPages(data_start_ + t.offset, t.nbytes);
}

}  // namespace compressd::engine
