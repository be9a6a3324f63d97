// Writing GGUF v3 files (the reader and the format are in
// workers/engine/model/gguf/gguf_file.h).
//
// Layout written: "GGUF", u32 version 3, u64 tensor count, u64 metadata
// count; the metadata entries (u64-length key, u32 value type, value; arrays
// as u32 element type, u64 count, elements; strings as u64 length + bytes);
// the tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32
// ggml type, u64 offset into the data section); zero padding to the
// alignment (32, the GGUF default, so no general.alignment key is written);
// then each tensor's bytes at its offset, each followed by zero padding to
// the alignment (as gguf-py writes it).
//
// GgufBuilder collects the metadata and tensor infos; the exporter streams the
// file (header, then the tensors' bytes in declaration order) through an
// AtomicFile (common/atomic_file.h), so a reader never sees a partial file.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/gguf/gguf_file.h"

namespace compressd::engine {

class GgufBuilder {
 public:
  void AddString(const std::string& key, absl::string_view value);
  void AddU32(const std::string& key, uint32_t value);
  void AddI32(const std::string& key, int32_t value);
  void AddU64(const std::string& key, uint64_t value);
  void AddF32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  // `elem` is the integer type the elements are stored as (values must fit).
  void AddIntArray(const std::string& key, engine::GgufValueType elem,
                   const std::vector<int64_t>& values);
  void AddF32Array(const std::string& key, const std::vector<float>& values);

  // Copies `kv` of `src` under its key, with its stored type. UNIMPLEMENTED
  // naming the key for a value that the reader's accessors cannot return
  // without loss (F64 values, negative I64 scalars, arrays of bool or arrays).
  absl::Status CopyKv(const engine::GgufFile& src, const engine::GgufKv& kv);

  bool HasKey(absl::string_view key) const { return keys_.count(std::string(key)) > 0; }

  // Declares the next tensor: ggml dims (ne[0] innermost), type and byte
  // size. Its data offset is the previous tensor's end rounded up to 32.
  void AddTensor(const std::string& name, std::vector<int64_t> ne, engine::GgmlType type,
                 uint64_t nbytes);

  // Everything before the data section, padded. INVALID_ARGUMENT for a
  // duplicate key or tensor name.
  absl::StatusOr<std::string> Header() const;
  // Header size plus every tensor's padded bytes.
  uint64_t FileSize() const;

  struct TensorSlot {
    std::string name;
    uint64_t nbytes;
  };
  const std::vector<TensorSlot>& tensors() const { return slots_; }

 private:
  void BeginKv(const std::string& key, engine::GgufValueType type);

  uint64_t n_kv_ = 0;
  std::string kv_bytes_;
  std::set<std::string> keys_;
  std::vector<std::string> duplicates_;
  std::string info_bytes_;
  std::vector<TensorSlot> slots_;
  uint64_t data_size_ = 0;  // padded
};

}  // namespace compressd::engine
