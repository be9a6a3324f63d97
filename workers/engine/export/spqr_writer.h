// The "spqr" output (model/spqr_format.h's layout): SpQR's stored form
// exactly (algorithms/spqr.h: packed codes, second-level codes and float16
// statistics, the sweep order and the float16 outliers), block by block as
// blocks finish, so a job that never holds the model writes it the same way
// as one that does. Every tensor that is not an SpQR module (norms, linears
// an override skipped, the embedding and head) is stored dense in float16.
// Families whose checkpoints fuse projections (Phi-3's qkv_proj) store each
// fused group as one SpQR module (export/fused_export.h: its parts share the
// sweep order, their rows and statistics one after another). Read back by
// gguf/spqr_stream.h (the reload check) and, independently, by
// tests/python/check_spqr.py. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/export/sharded_writer.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

struct SpqrExportStats {
  int64_t spqr_tensors = 0;
  int64_t dense_tensors = 0;
  int64_t outliers = 0;
  uint64_t spqr_params = 0;  // weights stored as SpQR
  uint64_t spqr_bits = 0;    // their stored bits (SpqrStoredBits), exactly
  uint64_t file_bytes = 0;   // every weight file written
};

// OK when `config`'s family can be written as spqr with statistics groups of
// each of `stat_groups` rows: an HF-exportable family, and for fused ones each
// fused part's rows a multiple of every stat_group (else INVALID_ARGUMENT
// naming the part and the stat_group).
absl::Status CheckSpqrExportable(const LlamaConfig& config,
                                 const std::vector<int64_t>& stat_groups);

class SpqrWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SpqrWriter>> Create(const LlamaConfig& config,
                                                            const std::string& out_dir);
  // Block `block`'s tensors (BlockTensors) with their final values and the
  // quantized form of those quantized (by HF weight name): writes its file.
  absl::Status WriteBlock(int block, const std::vector<NamedTensor>& tensors,
                          const std::map<std::string, const QuantizedTensor*>& quantized);
  // Floats [first, first + n) of a tensor outside the blocks.
  absl::Status WriteDense(const std::string& name, uint64_t first, const float* data, size_t n);
  // Commits model.safetensors and writes config.json.
  absl::Status Finish();
  const SpqrExportStats& stats() const { return stats_; }

 private:
  SpqrWriter(const LlamaConfig& config, std::string out_dir,
             std::unique_ptr<ShardedSafetensorsWriter> outside)
      : config_(config), out_dir_(std::move(out_dir)), outside_(std::move(outside)) {}

  const LlamaConfig config_;
  const std::string out_dir_;
  std::unique_ptr<ShardedSafetensorsWriter> outside_;
  int next_block_ = 0;
  SpqrExportStats stats_;
};

}  // namespace compressd::engine
