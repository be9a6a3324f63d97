// The BlockStream (calib/calibrated_compress.h) of a block-at-a-time job: an
// HF safetensors model in, an HF safetensors model (F32, BF16 or F16 as
// output.dtype says, sharded past 5 GB) out, never more than one block of it
// in memory.
//
//   Embed: the calibration batch's embedding rows, read from the mapped file
//     (an exact conversion of the stored BF16/F16/F32 values);
//   Load(i): block i in float32 (ModelStream::LoadBlock), its stored pages
//     returned to the kernel at once;
//   Done(i): block i's final weights written at their place in the output
//     shards (ShardedSafetensorsWriter), then freed, and the input pages of
//     block i returned to the kernel; the block's quantization codes are
//     dropped from the result (an HF output does not use them);
//   Finish(): the tensors outside the blocks (embedding, final norm, an
//     untied LM head) copied over in row chunks, the shards committed, and
//     config.json written as WriteHfLlama writes it.
// The output is byte-identical to WriteHfLlama's for the same weights while
// it fits one shard. Not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/export/gguf_stream_writer.h"
#include "workers/engine/export/gptq_stream_writer.h"
#include "workers/engine/export/sharded_writer.h"
#include "workers/engine/export/spqr_writer.h"
#include "workers/engine/model/model_stream.h"

namespace compressd::engine {

// hidden [T, hidden] = the embedding rows of `batch`, read from the mapped
// file; INVALID_ARGUMENT for a token id outside the vocabulary.
absl::Status EmbedFromStream(const ModelStream& source, const SequenceBatch& batch,
                             float* hidden);
// Tensor `name` ([rows, cols] or [n]) read in float32 row chunks of about 16
// MiB: fn(first float, data, n floats) per chunk; its mapped pages released.
absl::Status ForEachRowChunk(
    const ModelStream& source, const std::string& name, const std::vector<int64_t>& shape,
    const std::function<absl::Status(uint64_t first, const float* data, int64_t n)>& fn);

// The input side the output streams share: Embed reads the embedding rows
// from `source`, Load(i) block i (its stored pages released at once:
// BF16/F16/GGUF blocks were converted into owned buffers, F32 tensors point
// into the mapping and fault their pages back in); Finished(i) hands a
// finished block's tensors, with the codes of those quantized, to the
// output, then drops the codes from the result, frees the block and releases
// its input pages.
class SourceBlockStream : public BlockStream {
 public:
  absl::Status Embed(const SequenceBatch& batch, float* hidden) override;
  absl::Status Load(int block, BlockWeights* w) override;

 protected:
  using BlockWriter = std::function<absl::Status(
      const std::vector<NamedTensor>& tensors,
      const std::map<std::string, const QuantizedTensor*>& quantized)>;
  SourceBlockStream(const ModelStream& source, CompressionResult* result)
      : source_(source), result_(result) {}
  absl::Status Finished(int block, BlockWeights* w, const BlockWriter& write);

  const ModelStream& source_;
  CompressionResult* result_;
};

class HfBlockStream : public SourceBlockStream {
 public:
  // `source` and `result` must outlive the stream; the output's weights are
  // in `dtype` (F32, BF16 or F16). UNIMPLEMENTED for q/k/v biases outside
  // qwen2 (as WriteHfLlama).
  static absl::StatusOr<std::unique_ptr<HfBlockStream>> Create(
      const ModelStream& source, const std::string& out_dir, DType dtype,
      CompressionResult* result, uint64_t max_shard_bytes = kDefaultMaxShardBytes);

  absl::Status Done(int block, BlockWeights* w) override;
  absl::Status Finish();

 private:
  HfBlockStream(const ModelStream& source, std::string out_dir, DType dtype,
                CompressionResult* result, std::unique_ptr<ShardedSafetensorsWriter> writer)
      : SourceBlockStream(source, result),
        out_dir_(std::move(out_dir)),
        dtype_(dtype),
        writer_(std::move(writer)) {}
  // `n` floats as the output's bytes: a view of `data` for F32, else
  // converted into *buf.
  absl::StatusOr<absl::string_view> OutputBytes(const float* data, int64_t n, std::string* buf);
  // Tensor `name` ([rows, cols] or [n]) copied to the output in row chunks.
  absl::Status CopyTensor(const std::string& name, const std::vector<int64_t>& shape);

  const std::string out_dir_;
  const DType dtype_;
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
};

// The same for an spqr output (output.format: spqr): Done(i) writes block
// i's file (SpqrWriter: its SpQR modules exactly, the rest float16),
// dropping the block's codes from the result; Finish() writes the tensors
// outside the blocks, commits and writes config.json.
class SpqrBlockStream : public SourceBlockStream {
 public:
  SpqrBlockStream(const ModelStream& source, std::unique_ptr<SpqrWriter> writer,
                  CompressionResult* result)
      : SourceBlockStream(source, result), writer_(std::move(writer)) {}

  absl::Status Done(int block, BlockWeights* w) override;
  absl::Status Finish();
  const SpqrExportStats& stats() const { return writer_->stats(); }

 private:
  std::unique_ptr<SpqrWriter> writer_;
};

// Every tensor of `source` outside the blocks in row chunks (ForEachRowChunk).
absl::Status ForEachOutsideChunk(
    const ModelStream& source,
    const std::function<absl::Status(const std::string& name, uint64_t first, const float* data,
                                     int64_t n)>& fn);

// The same for a GPTQ output (output.format: gptq): Done(i) packs block i's
// quantized projections and writes them with its other tensors in float16
// (GptqStreamWriter), dropping the block's codes from the result; Finish()
// writes the tensors outside the blocks, commits and writes config.json.
class GptqBlockStream : public SourceBlockStream {
 public:
  GptqBlockStream(const ModelStream& source, const std::string& out_dir,
                  const GptqExportOptions& options, CompressionResult* result,
                  uint64_t max_shard_bytes = kDefaultMaxShardBytes)
      : SourceBlockStream(source, result),
        writer_(source.config(), out_dir, options, max_shard_bytes) {}

  absl::Status Done(int block, BlockWeights* w) override;
  absl::Status Finish();
  const GptqExportStats& stats() const { return writer_.stats(); }

 private:
  GptqStreamWriter writer_;
};

// The same for a GGUF output (output.format: gguf) of a GGUF input, whose
// tokenizer and general.* keys it copies (GgufStreamWriter): Create() writes
// the embedding (row chunks from the mapped file), Done(i) types and encodes
// block i's tensors (exactly from their grids where a ggml type fits, as
// WriteGgufLlama), dropping its codes from the result; Finish() writes the
// final norm and an untied LM head, then the header. UNIMPLEMENTED for a
// source that is not a GGUF file (as WriteGgufLlama).
class GgufBlockStream : public SourceBlockStream {
 public:
  // The GGUF's general.* and tokenizer.* keys come from the source's GGUF,
  // or from `metadata` (kept) when the source is not one.
  static absl::StatusOr<std::unique_ptr<GgufBlockStream>> Create(
      const ModelStream& source, const std::string& out_path, GgufExportOptions options,
      CompressionResult* result, std::unique_ptr<GgufFile> metadata = nullptr);

  absl::Status Done(int block, BlockWeights* w) override;
  absl::StatusOr<GgufExportReport> Finish();

 private:
  GgufBlockStream(const ModelStream& source, CompressionResult* result,
                  std::unique_ptr<GgufStreamWriter> writer)
      : SourceBlockStream(source, result), writer_(std::move(writer)) {}
  // Tensor `name` outside the blocks, from the source: whole when a
  // `vector`, else in row chunks.
  absl::Status WriteOutside(const std::string& name, bool vector);

  std::unique_ptr<GgufFile> metadata_;  // outlives writer_, which may read it
  std::unique_ptr<GgufStreamWriter> writer_;
};

}  // namespace compressd::engine
