// A Hugging Face model directory opened for reading: config.json plus the
// weights as one model.safetensors, shards listed by
// model.safetensors.index.json ("weight_map"), or else every top-level
// *.safetensors file. All shards are memory-mapped and validated on Open();
// a tensor name may appear in only one shard.
//
// Immutable after Open() and thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/hf_config.h"
#include "workers/engine/model/safetensors.h"

namespace compressd::engine {

inline constexpr char kHfConfigFile[] = "config.json";
inline constexpr char kSingleWeightsFile[] = "model.safetensors";
inline constexpr char kWeightsIndexFile[] = "model.safetensors.index.json";

class HfModel {
 public:
  enum class Layout {
    kSingle,   // model.safetensors
    kIndexed,  // model.safetensors.index.json + the shards it names
    kGlob,     // every *.safetensors file, no index
  };
  struct Shard {
    std::string rel_path;  // relative to the model directory
    std::unique_ptr<SafetensorsFile> file;
  };
  struct TensorRef {
    const Shard* shard = nullptr;
    const TensorInfo* info = nullptr;
  };

  // INVALID_ARGUMENT for a missing/invalid config.json, no weights, a bad
  // index or a malformed shard; NOT_FOUND if `dir` does not exist.
  static absl::StatusOr<std::unique_ptr<HfModel>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const HfConfig& config() const { return config_; }
  Layout layout() const { return layout_; }
  // Sorted by rel_path.
  const std::vector<Shard>& shards() const { return shards_; }
  // The index file's text (kIndexed only, else empty).
  const std::string& index_json() const { return index_json_; }
  // Every tensor, sorted by name.
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  // {nullptr, nullptr} when absent.
  TensorRef Find(const std::string& name) const;
  uint64_t total_tensor_bytes() const;

 private:
  HfModel() = default;
  absl::Status FindShardFiles(std::vector<std::string>* rel_paths);
  absl::Status ReadIndex(std::vector<std::string>* rel_paths,
                         std::map<std::string, std::string>* weight_map);
  absl::Status IndexTensors(const std::map<std::string, std::string>& weight_map);

  std::string dir_;
  HfConfig config_;
  Layout layout_ = Layout::kSingle;
  std::vector<Shard> shards_;
  std::string index_json_;
  std::map<std::string, TensorRef> tensors_;
};

}  // namespace compressd::engine
