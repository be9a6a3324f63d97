// Read-only, memory-mapped access to a GGUF file (versions 2 and 3).
//
// Layout (all little-endian): "GGUF", u32 version, u64 tensor_count,
// u64 kv_count; kv_count metadata entries (string key, u32 value type,
// value; an array is u32 element type, u64 count, elements, and may nest);
// tensor_count tensor infos (string name, u32 n_dims, u64 ne[n_dims], u32
// ggml type, u64 offset); padding to `general.alignment` (default 32); the
// data section, in which each tensor starts at its offset. A string is a u64
// length then that many bytes.
//
// Open() validates the whole structure against the file length before
// anything is used: counts and lengths are bounded by the bytes that remain
// before anything is allocated, nested arrays are walked (depth-limited),
// each tensor's dims, type, row size (ne[0] a multiple of the block size),
// byte size (overflow-checked), alignment and byte range are checked, and no
// two tensors may overlap. A malformed file is INVALID_ARGUMENT naming the
// file, the key or tensor, and the byte offset; nothing outside the mapping
// is ever read. Metadata values are decoded on access from the mapping.
//
// A GgufFile is immutable after Open() and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/gguf/ggml_types.h"
#include "workers/engine/model/mapped_file.h"

namespace compressd::engine {

inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
inline constexpr int kGgufMaxArrayDepth = 8;  // nesting depth of array values

// On-disk metadata value type ids.
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* GgufValueTypeName(GgufValueType type);
// Byte size of a fixed-size value type (integers, floats, bool); 0 for
// string and array.
uint64_t GgufFixedSize(GgufValueType type);
// Whether `type` is one of the eight integer types.
bool IsGgufIntegerType(GgufValueType type);

struct GgufKv {
  std::string key;
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays only
  uint64_t count = 0;                            // arrays only: element count
  uint64_t key_offset = 0;                       // file offset of the entry (for messages)
  uint64_t value_offset = 0;  // file offset of the value; for arrays, of the first element
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the innermost (contiguous) dimension
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section, as stored
  uint64_t nbytes = 0;
  int64_t numel = 0;
  uint64_t info_offset = 0;  // file offset of this tensor's info record

  int64_t row_length() const { return ne[0]; }
  int64_t n_rows() const { return ne[0] == 0 ? 0 : numel / ne[0]; }
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory file; `name` stands for the path in messages.
  static absl::StatusOr<std::unique_ptr<GgufFile>> FromBytes(std::string name, std::string bytes);

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }  // absolute file offset
  // In file order.
  const std::vector<GgufKv>& metadata() const { return kvs_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufKv* FindKv(absl::string_view key) const;
  const GgufTensorInfo* FindTensor(absl::string_view name) const;
  bool HasKey(absl::string_view key) const { return FindKv(key) != nullptr; }

  // Typed metadata accessors: NOT_FOUND naming the file and key when the key
  // is absent; INVALID_ARGUMENT naming the file, key, offset and both types
  // when the stored type does not fit. Integer accessors take any integer
  // type whose value fits the result; GetF32 takes F32 or F64.
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<uint32_t> GetU32(absl::string_view key) const;
  absl::StatusOr<int32_t> GetI32(absl::string_view key) const;
  absl::StatusOr<uint64_t> GetU64(absl::string_view key) const;
  absl::StatusOr<float> GetF32(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(absl::string_view key) const;
  // Any integer element type (a u64 above INT64_MAX is INVALID_ARGUMENT).
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;
  // F32 or F64 elements.
  absl::StatusOr<std::vector<float>> GetF32Array(absl::string_view key) const;

  // The tensor's bytes inside the file, `nbytes` long (valid while this
  // object lives). `t` must be one of tensors().
  const uint8_t* TensorData(const GgufTensorInfo& t) const;
  // Hint that `t`'s bytes will not be read again (lets the kernel drop them
  // from the resident set).
  void ReleaseTensorData(const GgufTensorInfo& t) const;

 private:
  explicit GgufFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(std::unique_ptr<MappedFile> file);
  absl::Status ParseHeader(uint64_t* pos, uint64_t* n_tensors, uint64_t* n_kvs);
  absl::Status ParseKv(uint64_t* pos);
  absl::Status ParseTensorInfo(uint64_t* pos);
  absl::Status ReadAlignment();
  absl::Status ValidateTensors();
  absl::StatusOr<const GgufKv*> Lookup(absl::string_view key) const;
  absl::StatusOr<int64_t> ScalarInt(const GgufKv& kv, int64_t min, uint64_t max) const;

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_start_ = 0;
  std::vector<GgufKv> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace compressd::engine
