// A GPTQ checkpoint (gptq_export.h's layout) written block by block, for a
// job that never holds the model (pipeline/hf_block_stream.h): block 0 fixes
// the layout (which projections every block quantizes, the one grid they
// share, and so each tensor's shape and place in the shards), each block's
// packed and float16 tensors are written as it finishes, and the tensors
// outside the blocks are written in row chunks at the end. The same checks
// as WriteGptqLlama (a block quantizing other projections than block 0, a
// grid that differs, float16 overflow, PackGptqTensor's errors), made as the
// blocks arrive; the same files, byte for byte, while the checkpoint fits
// one shard (larger: model-0000i-of-0000N.safetensors + index). As
// ExportGptq, an asymmetric grid selects the gptq_v2 format. Not thread-safe.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/sharded_writer.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

class GptqStreamWriter {
 public:
  GptqStreamWriter(const LlamaConfig& config, std::string out_dir, GptqExportOptions options,
                   uint64_t max_shard_bytes = kDefaultMaxShardBytes)
      : config_(config),
        out_dir_(std::move(out_dir)),
        options_(options),
        max_shard_bytes_(max_shard_bytes) {}

  // Block `block`'s tensors (BlockTensors) with their final values, and the
  // quantized codes of those that are quantized (by HF weight name). Blocks
  // come in order from 0.
  absl::Status WriteBlock(int block, const std::vector<NamedTensor>& tensors,
                          const std::map<std::string, const QuantizedTensor*>& quantized);
  // Floats [first, first + n) of a tensor outside the blocks, as float16.
  absl::Status WriteDense(const std::string& name, uint64_t first, const float* data, size_t n);
  // Commits the shards and writes config.json.
  absl::Status Finish();
  const GptqExportStats& stats() const { return stats_; }

 private:
  // Block 0: the layout, then the shards' headers.
  absl::Status Start(const std::vector<NamedTensor>& tensors,
                     const std::map<std::string, const QuantizedTensor*>& quantized);
  absl::Status WritePacked(const NamedTensor& t, const QuantizedTensor& q, int64_t block,
                           const std::string& projection);

  const LlamaConfig config_;
  const std::string out_dir_;
  GptqExportOptions options_;
  const uint64_t max_shard_bytes_;
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
  // Whether every block having `projection` quantizes it: as block 0 does,
  // or for a projection block 0 lacks, as block 0 does its role (Qwen-MoE's
  // dense layers' gate/up/down_proj as its experts').
  bool Packed(const std::string& projection) const;

  std::set<std::string> projections_;  // quantized in block 0
  std::set<std::string> roles_;        // their roles (Role in the .cc)
  std::set<std::string> block0_;       // every projection of block 0
  std::set<std::string> quantized_, present_;  // over all blocks: modules_in_block_to_quantize
  QuantGrid grid_;
  std::string grid_from_;  // the tensor whose grid is grid_
  std::set<std::string> dense_outside_;
  GptqExportStats stats_;
};

}  // namespace compressd::engine
