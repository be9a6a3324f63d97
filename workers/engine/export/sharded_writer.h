// A Hugging Face safetensors output written tensor by tensor, in any order,
// so that a job holding one block at a time never builds the model in memory.
//
// Create() plans the layout from every tensor's name, dtype and shape, taken
// in the given order (embedding, block 0, 1, ..., final norm, LM head): a new
// shard starts when the next tensor would take the current one past
// `max_shard_bytes`. One shard is "model.safetensors", byte-identical to what
// WriteSafetensors writes for the same tensors; several are
// "model-0000i-of-0000N.safetensors" plus "model.safetensors.index.json"
// (metadata.total_size, weight_map), as transformers' save_pretrained writes
// them. Each shard's header is written at Create(); Write() puts a tensor's
// bytes at its offset (pwrite); Commit() checks that every tensor was written
// and renames the shards into place (AtomicFile: a reader sees no partial
// shard). Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/atomic_file.h"
#include "workers/engine/export/safetensors_writer.h"

namespace compressd::engine {

// transformers' default max_shard_size ("5GB").
constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

class ShardedSafetensorsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> Create(
      const std::string& out_dir, std::vector<TensorSpec> tensors,
      const std::map<std::string, std::string>& metadata,
      uint64_t max_shard_bytes = kDefaultMaxShardBytes);

  // INVALID_ARGUMENT for an unknown name, a second write or the wrong size.
  absl::Status Write(const std::string& name, absl::string_view bytes);
  // Part of a tensor: `bytes` at byte `offset` within it (a large tensor
  // converted in chunks). The tensor counts as written once all its bytes are.
  absl::Status WritePart(const std::string& name, uint64_t offset, absl::string_view bytes);
  // FAILED_PRECONDITION naming the first tensor not (fully) written.
  absl::Status Commit();
  int shards() const { return static_cast<int>(files_.size()); }

 private:
  struct Placement {
    int shard = 0;
    uint64_t offset = 0;  // in the shard file
    uint64_t bytes = 0;
    uint64_t written = 0;
  };
  ShardedSafetensorsWriter() = default;

  std::string out_dir_;
  std::vector<std::string> names_;  // shard file names
  std::vector<std::unique_ptr<AtomicFile>> files_;
  std::map<std::string, Placement> placed_;
  uint64_t total_bytes_ = 0;
};

}  // namespace compressd::engine
