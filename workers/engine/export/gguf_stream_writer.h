// A GGUF output (gguf_export.h's file, byte for byte) written block by block,
// for a job that never holds the model (pipeline/hf_block_stream.h
// GgufBlockStream). Every tensor's name and dims follow from the config, and
// a tensor info's type and offset are fixed-size fields, so the header's size
// is known before any type is chosen: Create() lists the tensors and writes a
// placeholder header of that size; each tensor is then typed (from its grid,
// as WriteGgufLlama chooses) and encoded as it arrives, in the file's order;
// Finish() writes the real header over the placeholder (pwrite) and renames
// the file into place. Memory: one tensor's encoded bytes (row chunks for the
// tensors outside the blocks).
//
// Order: the tensors outside the blocks come through WriteRows, the blocks
// through WriteBlock, in GGUF order: token_embd, blocks 0..n-1, output_norm,
// output (untied only); rope_freqs (llama3 scaling) is generated and written
// first by itself. A call out of that order is FAILED_PRECONDITION naming the
// tensor expected. The same checks as WriteGgufLlama, made as the tensors
// arrive. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/atomic_file.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/export/gguf_export_internal.h"

namespace compressd::engine {

class GgufStreamWriter {
 public:
  using RowReader = std::function<absl::Status(int64_t row, int64_t n, float* out)>;

  // The output of a model of `config` (LM head left out when `tied`), with
  // the tokenizer and general.* keys of `source`, which must outlive the writer.
  static absl::StatusOr<std::unique_ptr<GgufStreamWriter>> Create(
      const LlamaConfig& config, bool tied, const GgufFile& source, GgufExportOptions options,
      const std::string& out_path);

  // The next tensor outside the blocks, by HF name: its rows (a 1-D tensor is
  // one row) in float32, read as it is encoded.
  absl::Status WriteRows(const std::string& hf_name, const RowReader& read);
  // Block `block`'s tensors with their final values; `quantized` maps the HF
  // names of those quantized to their grids.
  absl::Status WriteBlock(int block, const BlockWeights& w,
                          const std::map<std::string, const QuantizedTensor*>& quantized);
  // Every tensor written: the header, then the commit.
  absl::StatusOr<GgufExportReport> Finish();

 private:
  GgufStreamWriter(const LlamaConfig& config, const GgufFile& source, GgufExportOptions options,
                   std::string out_path)
      : config_(config), source_(source), options_(std::move(options)),
        out_path_(std::move(out_path)) {}
  // The header for the plans' current types and sizes.
  absl::StatusOr<std::string> Header(uint32_t file_type, GgufBuilder* builder,
                                     std::vector<std::string>* dropped) const;
  // Types and writes plans_[next_] (generated ones: rope_freqs) and moves on.
  absl::Status WriteNext(const QuantizedTensor* q);
  absl::Status WriteGenerated();
  absl::Status Expect(const std::string& hf_name) const;

  const LlamaConfig config_;
  const GgufFile& source_;
  const GgufExportOptions options_;
  const std::string out_path_;
  std::vector<gguf_export_internal::TensorPlan> plans_;
  size_t next_ = 0;
  uint64_t header_size_ = 0;
  std::unique_ptr<AtomicFile> sink_;
};

}  // namespace compressd::engine
