#include "workers/engine/pipeline/hf_block_stream.h"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "workers/engine/export/fused_export.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

constexpr char kEmbedding[] = "model.embed_tokens.weight";
constexpr int64_t kCopyChunkFloats = int64_t{1} << 22;  // 16 MiB of float32 per write

absl::string_view FloatBytes(const float* data, int64_t n) {
  return absl::string_view(reinterpret_cast<const char*>(data),
                           static_cast<size_t>(n) * sizeof(float));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfBlockStream>> HfBlockStream::Create(const ModelStream& source,
                                                                     const std::string& out_dir,
                                                                     DType dtype,
                                                                     CompressionResult* result,
                                                                     uint64_t max_shard_bytes) {
  const LlamaConfig& c = source.config();
  RETURN_IF_ERROR(CheckHfExportable(c));
  std::vector<TensorSpec> specs;
  for (const NamedShape& t : StoredShapes(c)) specs.push_back({t.name, dtype, t.shape});
  ASSIGN_OR_RETURN(std::unique_ptr<ShardedSafetensorsWriter> writer,
                   ShardedSafetensorsWriter::Create(out_dir, std::move(specs), {{"format", "pt"}},
                                                    max_shard_bytes));
  return std::unique_ptr<HfBlockStream>(
      new HfBlockStream(source, out_dir, dtype, result, std::move(writer)));
}

absl::StatusOr<absl::string_view> HfBlockStream::OutputBytes(const float* data, int64_t n,
                                                             std::string* buf) {
  if (dtype_ == DType::kF32) return FloatBytes(data, n);
  ASSIGN_OR_RETURN(*buf, FloatsToBytes(dtype_, data, static_cast<size_t>(n)));
  return absl::string_view(*buf);
}

absl::Status SourceBlockStream::Embed(const SequenceBatch& batch, float* hidden) {
  return EmbedFromStream(source_, batch, hidden);
}

absl::Status EmbedFromStream(const ModelStream& source, const SequenceBatch& batch,
                             float* hidden) {
  const LlamaConfig& c = source.config();
  for (int64_t r = 0; r < batch.tokens(); ++r) {
    const int32_t id = batch.ids[r];
    if (id < 0 || id >= c.vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", id, " at row ", r, " is outside the vocabulary [0, ", c.vocab, ")"));
    }
    RETURN_IF_ERROR(source.ReadRows(kEmbedding, id, 1, hidden + r * c.hidden));
  }
  ScaleEmbeddings(c, batch.tokens(), hidden);
  return absl::OkStatus();
}

absl::Status SourceBlockStream::Load(int block, BlockWeights* w) {
  ASSIGN_OR_RETURN(*w, source_.LoadBlock(block));
  source_.ReleaseBlock(block);
  return absl::OkStatus();
}

absl::Status SourceBlockStream::Finished(int block, BlockWeights* w, const BlockWriter& write) {
  const std::vector<NamedTensor> tensors = BlockTensors(source_.config(), block, w);
  std::map<std::string, const QuantizedTensor*> quantized;
  for (const NamedTensor& t : tensors) {
    auto it = result_->quantized.find(t.name);
    if (it != result_->quantized.end()) quantized[t.name] = &it->second;
  }
  RETURN_IF_ERROR(write(tensors, quantized));
  for (const NamedTensor& t : tensors) result_->quantized.erase(t.name);
  *w = BlockWeights();
  source_.ReleaseBlock(block);
  return absl::OkStatus();
}

absl::Status HfBlockStream::Done(int block, BlockWeights* w) {
  return Finished(block, w, [&](const std::vector<NamedTensor>& tensors, const auto&) {
    ASSIGN_OR_RETURN(const StoredTensors stored, FuseForExport(source_.config(), tensors, {}));
    std::string buf;
    for (const NamedTensor& t : stored.tensors) {
      ASSIGN_OR_RETURN(const absl::string_view bytes,
                       OutputBytes(t.tensor->data, t.tensor->numel(), &buf));
      RETURN_IF_ERROR(writer_->Write(t.name, bytes));
    }
    return absl::OkStatus();
  });
}

absl::Status ForEachRowChunk(
    const ModelStream& source, const std::string& name, const std::vector<int64_t>& shape,
    const std::function<absl::Status(uint64_t first, const float* data, int64_t n)>& fn) {
  if (shape.size() == 1) {
    ASSIGN_OR_RETURN(const Tensor t, source.LoadTensor(name));
    RETURN_IF_ERROR(fn(0, t.data, t.numel()));
    source.Release(name);
    return absl::OkStatus();
  }
  const int64_t rows = shape[0], cols = shape[1];
  const int64_t step = std::max<int64_t>(1, kCopyChunkFloats / std::max<int64_t>(cols, 1));
  std::vector<float> rows_f32(static_cast<size_t>(std::min(rows, step) * cols));
  for (int64_t r = 0; r < rows; r += step) {
    const int64_t n = std::min(step, rows - r);
    RETURN_IF_ERROR(source.ReadRows(name, r, n, rows_f32.data()));
    source.Release(name);  // the stored pages read so far leave the resident set
    RETURN_IF_ERROR(fn(static_cast<uint64_t>(r * cols), rows_f32.data(), n * cols));
  }
  return absl::OkStatus();
}

absl::Status HfBlockStream::CopyTensor(const std::string& name, const std::vector<int64_t>& shape) {
  const size_t esize = DTypeSize(dtype_);
  std::string buf;
  return ForEachRowChunk(source_, name, shape,
                         [&](uint64_t first, const float* data, int64_t n) -> absl::Status {
                           ASSIGN_OR_RETURN(const absl::string_view bytes,
                                            OutputBytes(data, n, &buf));
                           return writer_->WritePart(name, first * esize, bytes);
                         });
}

absl::Status HfBlockStream::Finish() {
  const LlamaConfig& c = source_.config();
  for (const NamedShape& t : ConfigShapes(c)) {
    if (!absl::StartsWith(t.name, "model.layers.")) RETURN_IF_ERROR(CopyTensor(t.name, t.shape));
  }
  RETURN_IF_ERROR(writer_->Commit());
  return WriteFileAtomically((fs::path(out_dir_) / "config.json").string(),
                             HfLlamaConfigJson(c, c.tie_word_embeddings));
}

absl::Status GptqBlockStream::Done(int block, BlockWeights* w) {
  return Finished(block, w, [&](const std::vector<NamedTensor>& tensors, const auto& quantized) {
    return writer_.WriteBlock(block, tensors, quantized);
  });
}

absl::Status ForEachOutsideChunk(
    const ModelStream& source,
    const std::function<absl::Status(const std::string& name, uint64_t first, const float* data,
                                     int64_t n)>& fn) {
  for (const NamedShape& t : ConfigShapes(source.config())) {
    if (absl::StartsWith(t.name, "model.layers.")) continue;
    RETURN_IF_ERROR(ForEachRowChunk(
        source, t.name, t.shape,
        [&](uint64_t first, const float* data, int64_t n) { return fn(t.name, first, data, n); }));
  }
  return absl::OkStatus();
}

absl::Status GptqBlockStream::Finish() {
  RETURN_IF_ERROR(ForEachOutsideChunk(
      source_, [&](const std::string& name, uint64_t first, const float* data, int64_t n) {
        return writer_.WriteDense(name, first, data, static_cast<size_t>(n));
      }));
  return writer_.Finish();
}

absl::Status SpqrBlockStream::Done(int block, BlockWeights* w) {
  return Finished(block, w, [&](const std::vector<NamedTensor>& tensors, const auto& quantized) {
    return writer_->WriteBlock(block, tensors, quantized);
  });
}

absl::Status SpqrBlockStream::Finish() {
  RETURN_IF_ERROR(ForEachOutsideChunk(
      source_, [&](const std::string& name, uint64_t first, const float* data, int64_t n) {
        return writer_->WriteDense(name, first, data, static_cast<size_t>(n));
      }));
  return writer_->Finish();
}

absl::StatusOr<std::unique_ptr<GgufBlockStream>> GgufBlockStream::Create(
    const ModelStream& source, const std::string& out_path, GgufExportOptions options,
    CompressionResult* result, std::unique_ptr<GgufFile> metadata) {
  const GgufFile* keys = source.gguf() != nullptr ? source.gguf() : metadata.get();
  if (keys == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_path, ": GGUF export needs a source GGUF or its tokenizer's keys"));
  }
  const LlamaConfig& c = source.config();
  ASSIGN_OR_RETURN(std::unique_ptr<GgufStreamWriter> writer,
                   GgufStreamWriter::Create(c, c.tie_word_embeddings, *keys, std::move(options),
                                            out_path));
  std::unique_ptr<GgufBlockStream> stream(
      new GgufBlockStream(source, result, std::move(writer)));
  stream->metadata_ = std::move(metadata);
  RETURN_IF_ERROR(stream->WriteOutside(kEmbedding, /*vector=*/false));
  return stream;
}

absl::Status GgufBlockStream::WriteOutside(const std::string& name, bool vector) {
  absl::Status s;
  if (vector) {
    ASSIGN_OR_RETURN(const Tensor t, source_.LoadTensor(name));
    s = writer_->WriteRows(name, [&t](int64_t, int64_t, float* out) {
      std::copy(t.data, t.data + t.numel(), out);
      return absl::OkStatus();
    });
  } else {
    s = writer_->WriteRows(name, [&](int64_t row, int64_t n, float* out) {
      RETURN_IF_ERROR(source_.ReadRows(name, row, n, out));
      source_.Release(name);  // the stored pages read so far leave the resident set
      return absl::OkStatus();
    });
  }
  source_.Release(name);
  return s;
}

absl::Status GgufBlockStream::Done(int block, BlockWeights* w) {
  const BlockWeights& weights = *w;
  return Finished(block, w, [&](const std::vector<NamedTensor>&, const auto& quantized) {
    return writer_->WriteBlock(block, weights, quantized);
  });
}

absl::StatusOr<GgufExportReport> GgufBlockStream::Finish() {
  RETURN_IF_ERROR(WriteOutside("model.norm.weight", /*vector=*/true));
  if (!source_.config().tie_word_embeddings) RETURN_IF_ERROR(WriteOutside("lm_head.weight", /*vector=*/false));
  return writer_->Finish();
}

}  // namespace compressd::engine
