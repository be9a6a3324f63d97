// WriteGgufLlama: metadata and tensor data; the tensor plan (names, types) is
// made by gguf_export_plan.cc. See gguf_export.h.
#include "workers/engine/export/gguf_export.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "workers/engine/export/ggml_grid_encode.h"
#include "workers/engine/export/ggml_quantize.h"
#include "workers/engine/export/gguf_export_internal.h"
#include "workers/engine/export/gguf_writer.h"
#include "workers/engine/model/gguf/gguf_model.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using engine::GgufFile;
using engine::RowPermutation;
using gguf_export_internal::TensorPlan;

constexpr int64_t kChunkElements = int64_t{1} << 20;  // floats quantized per call

void AddHyperparameters(const engine::LlamaConfig& c, GgufBuilder* b) {
  auto u32 = [](int v) { return static_cast<uint32_t>(v); };
  const std::string arch = engine::GgufArchitecture(c);
  auto key = [&arch](const char* name) { return absl::StrCat(arch, ".", name); };
  b->AddU32(key("context_length"), u32(c.max_position > 0 ? c.max_position : 2048));
  b->AddU32(key("embedding_length"), u32(c.hidden));
  b->AddU32(key("block_count"), u32(c.n_layers));
  b->AddU32(key("feed_forward_length"), u32(c.intermediate));
  b->AddU32(key("attention.head_count"), u32(c.n_heads));
  b->AddU32(key("attention.head_count_kv"), u32(c.n_kv_heads));
  b->AddF32(key("rope.freq_base"), c.rope_theta);
  b->AddF32(key("attention.layer_norm_rms_epsilon"), c.rms_norm_eps);
  b->AddU32(key("rope.dimension_count"), u32(engine::RotaryDims(c)));
  if (c.rope_scaling.type == "longrope") {  // Phi-3 (its factors are tensors)
    b->AddU32(key("rope.scaling.original_context_length"),
              u32(c.rope_scaling.original_max_position_embeddings));
    b->AddF32(key("rope.scaling.attn_factor"), c.rope_scaling.attention_factor);
  }
  if (int64_t{c.head_dim} * c.n_heads != c.hidden || engine::RotaryDims(c) != c.head_dim) {
    b->AddU32(key("attention.key_length"), u32(c.head_dim));
    b->AddU32(key("attention.value_length"), u32(c.head_dim));
  }
  b->AddU32(key("vocab_size"), u32(c.vocab));
  if (c.rope_scaling.type == "linear") {  // Gemma 3: its global layers only
    b->AddString(key("rope.scaling.type"), "linear");
    b->AddF32(key("rope.scaling.factor"), c.rope_scaling.factor);
  }
  if (c.sliding_window > 0) b->AddU32(key("attention.sliding_window"), u32(c.sliding_window));
  if (c.sandwich_norms && c.attn_softcap > 0)
    b->AddF32(key("attn_logit_softcapping"), c.attn_softcap);
  if (c.sandwich_norms && c.final_softcap > 0)
    b->AddF32(key("final_logit_softcapping"), c.final_softcap);
  if (c.n_experts > 0) {
    b->AddU32(key("expert_count"), u32(c.n_experts));
    b->AddU32(key("expert_used_count"), u32(c.experts_per_token));
    b->AddU32(key("expert_feed_forward_length"), u32(c.expert_intermediate));
    if (c.shared_expert_intermediate > 0)
      b->AddU32(key("expert_shared_feed_forward_length"), u32(c.shared_expert_intermediate));
  }
}

bool IsOwnGeneralKey(absl::string_view key) {
  return key == "general.architecture" || key == "general.name" || key == "general.file_type" ||
         key == "general.quantization_version" || key == "general.alignment";
}

absl::Status CheckTokenizerSize(const GgufFile& source, int vocab) {
  const engine::GgufKv* tokens = source.FindKv("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->count == static_cast<uint64_t>(vocab)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(source.path(), ": tokenizer.ggml.tokens has ",
                                                 tokens->count,
                                                 " tokens but the model's vocabulary is ", vocab));
}

}  // namespace

namespace gguf_export_internal {

absl::StatusOr<std::vector<std::string>> AddMetadata(const engine::LlamaConfig& c,
                                                     const GgufFile& source,
                                                     const GgufExportOptions& options,
                                                     uint32_t file_type, GgufBuilder* b) {
  RETURN_IF_ERROR(CheckTokenizerSize(source, c.vocab));
  b->AddString("general.architecture", engine::GgufArchitecture(c));
  std::string name = options.name;
  if (name.empty()) name = source.GetString("general.name").value_or("compressd");
  b->AddString("general.name", name);
  for (const engine::GgufKv& kv : source.metadata()) {
    if (!absl::StartsWith(kv.key, "general.") || IsOwnGeneralKey(kv.key)) continue;
    if (absl::Status s = b->CopyKv(source, kv); !s.ok() && !absl::IsUnimplemented(s)) return s;
  }
  AddHyperparameters(c, b);
  b->AddU32("general.file_type", file_type);
  b->AddU32("general.quantization_version", 2);
  for (const engine::GgufKv& kv : source.metadata()) {
    if (absl::StartsWith(kv.key, "tokenizer.")) RETURN_IF_ERROR(b->CopyKv(source, kv));
  }
  std::vector<std::string> dropped;
  for (const engine::GgufKv& kv : source.metadata()) {
    if (!b->HasKey(kv.key)) dropped.push_back(kv.key);
  }
  return dropped;
}

}  // namespace gguf_export_internal

namespace {

using gguf_export_internal::AddMetadata;

// Reorders whole rows of `bytes` into llama.cpp's rotary order.
std::string PermuteRows(const std::string& bytes, int64_t rows, int64_t head_dim) {
  const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
  std::string out(bytes.size(), '\0');
  for (int64_t g = 0; g < rows; ++g) {
    std::memcpy(&out[g * row_bytes], &bytes[engine::UnpermutedRow(g, head_dim) * row_bytes],
                row_bytes);
  }
  return out;
}

// The floats of a 1-D tensor, biases in llama.cpp's rotary order.
std::vector<float> VectorValues(const TensorPlan& p, int64_t head_dim) {
  std::vector<float> v = p.generated;
  if (p.tensor != nullptr) v.assign(p.tensor->data, p.tensor->data + p.row_len());
  for (float& x : v) x += p.add;
  if (p.perm == RowPermutation::kNone) return v;
  std::vector<float> out(v.size());
  for (size_t g = 0; g < v.size(); ++g) out[g] = v[engine::UnpermutedRow(g, head_dim)];
  return out;
}

// A 2-D tensor from its floats, a chunk of GGUF rows at a time.
absl::Status WriteMatrix(const TensorPlan& p, int64_t head_dim, AtomicFile* sink) {
  const int64_t rows = p.rows(), len = p.row_len();
  const int64_t chunk = std::max<int64_t>(1, kChunkElements / len);
  const std::string& name = p.report.hf_name;
  std::vector<float> buf;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    const float* src = nullptr;
    if (p.tensor == nullptr) {
      if (!p.read_rows || p.perm != RowPermutation::kNone) {
        return absl::InternalError(absl::StrCat(name, ": no rows to write"));
      }
      buf.resize(static_cast<size_t>(n * len));
      RETURN_IF_ERROR(p.read_rows(r0, n, buf.data()));
      src = buf.data();
    } else if (p.perm == RowPermutation::kNone) {
      src = p.tensor->data + r0 * len;
    } else {
      buf.resize(static_cast<size_t>(n * len));
      for (int64_t g = r0; g < r0 + n; ++g) {
        const float* row = p.tensor->data + engine::UnpermutedRow(g, head_dim) * len;
        std::copy(row, row + len, buf.begin() + (g - r0) * len);
      }
      src = buf.data();
    }
    ASSIGN_OR_RETURN(std::string bytes, QuantizeRows(p.report.type, src, n, len, name));
    RETURN_IF_ERROR(sink->Write(bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status gguf_export_internal::WriteTensor(const TensorPlan& p, int64_t head_dim,
                                               AtomicFile* sink, bool pad) {
  const uint64_t start = sink->written();
  const std::string& name = p.report.gguf_name;
  if (p.report.exact_from_grid) {
    ASSIGN_OR_RETURN(std::string bytes, EncodeGridExact(*p.grid, p.report.type, p.report.hf_name));
    if (p.perm != RowPermutation::kNone) bytes = PermuteRows(bytes, p.rows(), head_dim);
    RETURN_IF_ERROR(sink->Write(bytes));
  } else if (!p.is_matrix()) {
    const std::vector<float> v = VectorValues(p, head_dim);
    ASSIGN_OR_RETURN(std::string bytes,
                     QuantizeRows(p.report.type, v.data(), 1, p.row_len(), name));
    RETURN_IF_ERROR(sink->Write(bytes));
  } else {
    RETURN_IF_ERROR(WriteMatrix(p, head_dim, sink));
  }
  if (sink->written() - start != p.report.bytes) {
    return absl::InternalError(absl::StrCat(name, ": wrote ", sink->written() - start,
                                            " bytes, its tensor info says ", p.report.bytes));
  }
  return pad ? sink->PadTo(engine::kGgufDefaultAlignment) : absl::OkStatus();
}

namespace {

absl::Status WriteFile(const GgufBuilder& b, const std::vector<TensorPlan>& plans, int64_t head_dim,
                       const std::string& out_path) {
  ASSIGN_OR_RETURN(std::string header, b.Header());
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> sink, AtomicFile::Create(out_path));
  RETURN_IF_ERROR(sink->Write(header));
  for (size_t i = 0; i < plans.size(); ++i) {
    const TensorPlan& p = plans[i];
    const bool pad = i + 1 == plans.size() || !plans[i + 1].continues_stack;
    absl::Status s = gguf_export_internal::WriteTensor(p, head_dim, sink.get(), pad);
    if (!s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat(out_path, ": tensor ", p.report.gguf_name, ": ", s.message()));
    }
  }
  if (sink->written() != b.FileSize()) {
    return absl::InternalError(absl::StrCat(out_path, ": wrote ", sink->written(),
                                            " bytes, the layout says ", b.FileSize()));
  }
  return sink->Commit();
}

}  // namespace

absl::Status CheckGgufExportable(const engine::LlamaConfig& config) {
  return gguf_export_internal::ListTensors(config, config.tie_word_embeddings, nullptr).status();
}

absl::StatusOr<GgufExportReport> WriteGgufLlama(
    const engine::LlamaModel& model, const GgufFile* source,
    const std::map<std::string, const engine::QuantizedTensor*>& quantized,
    const GgufExportOptions& options, const std::string& out_path) {
  if (source == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(out_path,
                     ": GGUF export needs the tokenizer of a source GGUF file (the model was not "
                     "read from one; converting a Hugging Face tokenizer is not implemented)"));
  }
  RETURN_IF_ERROR(engine::ValidateLlamaConfig(model.config, "model"));
  if (model.blocks.size() != static_cast<size_t>(model.config.n_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", model.blocks.size(),
                                                   " blocks, its config ", model.config.n_layers));
  }
  ASSIGN_OR_RETURN(std::vector<TensorPlan> plans, gguf_export_internal::ListTensors(model));
  RETURN_IF_ERROR(gguf_export_internal::ChooseTypes(options, quantized, &plans));
  GgufExportReport report;
  report.path = out_path;
  report.file_type = gguf_export_internal::LlamaFileType(plans);
  GgufBuilder builder;
  ASSIGN_OR_RETURN(report.dropped_keys,
                   AddMetadata(model.config, *source, options, report.file_type, &builder));
  gguf_export_internal::AddTensorInfos(plans, &builder);
  for (const TensorPlan& p : plans) report.tensors.push_back(p.report);
  RETURN_IF_ERROR(WriteFile(builder, plans, model.config.head_dim, out_path));
  report.file_size = builder.FileSize();
  return report;
}

}  // namespace compressd::engine
