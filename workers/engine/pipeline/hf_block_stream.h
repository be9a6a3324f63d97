// The BlockStream (calib/calibrated_compress.h) of a block-at-a-time job: an
// HF safetensors model in, an HF safetensors model (F32, BF16 or F16 as
// output.dtype says, sharded past 5 GB) out, never more than one block of it
// in memory.
//
//   Embed: the calibration batch's embedding rows, read from the mapped file
//     (an exact conversion of the stored BF16/F16/F32 values);
//   Load(i): block i in float32 (HfLlamaStream::LoadBlock), its stored pages
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
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/export/gptq_stream_writer.h"
#include "workers/engine/export/sharded_writer.h"
#include "workers/engine/model/gguf/hf_llama.h"

namespace compressd::engine {

// hidden [T, hidden] = the embedding rows of `batch`, read from the mapped
// file; INVALID_ARGUMENT for a token id outside the vocabulary.
absl::Status EmbedFromStream(const HfLlamaStream& source, const SequenceBatch& batch,
                             float* hidden);
// Tensor `name` ([rows, cols] or [n]) read in float32 row chunks of about 16
// MiB: fn(first float, data, n floats) per chunk; its mapped pages released.
absl::Status ForEachRowChunk(
    const HfLlamaStream& source, const std::string& name, const std::vector<int64_t>& shape,
    const std::function<absl::Status(uint64_t first, const float* data, int64_t n)>& fn);

class HfBlockStream : public BlockStream {
 public:
  // `source` and `result` must outlive the stream; the output's weights are
  // in `dtype` (F32, BF16 or F16). UNIMPLEMENTED for q/k/v biases outside
  // qwen2 (as WriteHfLlama).
  static absl::StatusOr<std::unique_ptr<HfBlockStream>> Create(
      const HfLlamaStream& source, const std::string& out_dir, DType dtype,
      CompressionResult* result, uint64_t max_shard_bytes = kDefaultMaxShardBytes);

  absl::Status Embed(const SequenceBatch& batch, float* hidden) override;
  absl::Status Load(int block, BlockWeights* w) override;
  absl::Status Done(int block, BlockWeights* w) override;
  absl::Status Finish();

 private:
  HfBlockStream(const HfLlamaStream& source, std::string out_dir, DType dtype,
                CompressionResult* result, std::unique_ptr<ShardedSafetensorsWriter> writer)
      : source_(source),
        out_dir_(std::move(out_dir)),
        dtype_(dtype),
        result_(result),
        writer_(std::move(writer)) {}
  // `n` floats as the output's bytes: a view of `data` for F32, else
  // converted into *buf.
  absl::StatusOr<absl::string_view> OutputBytes(const float* data, int64_t n, std::string* buf);
  // Tensor `name` ([rows, cols] or [n]) copied to the output in row chunks.
  absl::Status CopyTensor(const std::string& name, const std::vector<int64_t>& shape);

  const HfLlamaStream& source_;
  const std::string out_dir_;
  const DType dtype_;
  CompressionResult* result_;
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
};

// The same for a GPTQ output (output.format: gptq): Done(i) packs block i's
// quantized projections and writes them with its other tensors in float16
// (GptqStreamWriter), dropping the block's codes from the result; Finish()
// writes the tensors outside the blocks, commits and writes config.json.
class GptqBlockStream : public BlockStream {
 public:
  GptqBlockStream(const HfLlamaStream& source, const std::string& out_dir,
                  const GptqExportOptions& options, CompressionResult* result,
                  uint64_t max_shard_bytes = kDefaultMaxShardBytes)
      : source_(source), result_(result), writer_(source.config(), out_dir, options,
                                                   max_shard_bytes) {}

  absl::Status Embed(const SequenceBatch& batch, float* hidden) override;
  absl::Status Load(int block, BlockWeights* w) override;
  absl::Status Done(int block, BlockWeights* w) override;
  absl::Status Finish();
  const GptqExportStats& stats() const { return writer_.stats(); }

 private:
  const HfLlamaStream& source_;
  CompressionResult* result_;
  GptqStreamWriter writer_;
};

}  // namespace compressd::engine
