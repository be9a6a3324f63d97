// Writing safetensors files and Hugging Face model directories.
//
// A file is written as: 8-byte little-endian header length, the JSON header
// (tensors plus "__metadata__", space-padded so the data section starts at a
// multiple of 8), then each tensor's bytes in name order. It is written to a
// temporary file in the same directory, fsync'ed and renamed into place, so
// a reader never sees a partial file. Stateless; thread-safe for distinct paths.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/hf_model.h"

namespace compressd::engine {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  absl::string_view bytes;  // must outlive the write; size must be numel * dtype size
};

// A tensor's name, dtype and shape, without its bytes.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// numel * dtype size; INVALID_ARGUMENT (naming `path` and the tensor) for a
// negative dimension or an overflow.
absl::StatusOr<uint64_t> TensorBytes(const std::string& path, const TensorSpec& t);

// The bytes before a file's data section (length, JSON header, padding) for
// `tensors`, which it sorts by name (the data order); offsets[i] is where
// tensor i's bytes start in the data section. Errors as WriteSafetensors'.
absl::StatusOr<std::string> SafetensorsHeader(const std::string& path,
                                              std::vector<TensorSpec>* tensors,
                                              const std::map<std::string, std::string>& metadata,
                                              std::vector<uint64_t>* offsets);

// INVALID_ARGUMENT for duplicate names, a byte size that does not match the
// shape, or the name "__metadata__"; INTERNAL for I/O errors (naming the path).
absl::Status WriteSafetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata);

// Writes one shard of `model` to `out_path`: every tensor of the shard, with
// the bytes of names in `replaced` taken from there (same dtype and shape),
// the rest copied byte-for-byte; the shard's metadata is kept.
absl::Status WriteShard(const HfModel::Shard& shard,
                        const std::map<std::string, std::string>& replaced,
                        const std::string& out_path);

// Writes the non-weight files of an output model directory: config.json and
// other small files (tokenizer, generation config) copied verbatim, and for
// an indexed model the index JSON (its metadata kept, total_size recomputed,
// weight_map unchanged). Weight files (*.safetensors, *.bin, *.pt, *.gguf, ...)
// are not copied. Creates `out_dir` if needed.
absl::Status WriteModelSideFiles(const HfModel& model, const std::string& out_dir);

}  // namespace compressd::engine
