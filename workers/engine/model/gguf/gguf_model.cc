#include "workers/engine/model/gguf/gguf_model.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

// Turns GGUF tensors into HF-oriented float tensors; remembers which tensors
// it used so that unmapped ones can be reported. Not thread-safe.
class TensorLoader {
 public:
  TensorLoader(std::shared_ptr<const GgufFile> file, const LlamaConfig& config)
      : file_(std::move(file)), config_(config) {}

  absl::StatusOr<Tensor> Load(const std::string& name, const std::vector<int64_t>& hf_shape,
                              RowPermutation perm);
  // INVALID_ARGUMENT naming the first tensor of the file not used by Load().
  absl::Status CheckAllUsed() const;

 private:
  absl::Status Error(const GgufTensorInfo& t, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_->path(), ": tensor \"", t.name, "\" (info at offset ", t.info_offset,
                     ", data at offset ", file_->data_start() + t.offset, "): ", why));
  }
  absl::Status DequantizeRows(const GgufTensorInfo& t, RowPermutation perm, float* out) const;

  std::shared_ptr<const GgufFile> file_;
  const LlamaConfig& config_;
  std::set<std::string> used_;
};

absl::StatusOr<Tensor> TensorLoader::Load(const std::string& name,
                                          const std::vector<int64_t>& hf_shape,
                                          RowPermutation perm) {
  const GgufTensorInfo* t = file_->FindTensor(name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_->path(), ": tensor \"", name, "\" is missing"));
  }
  used_.insert(name);
  std::vector<int64_t> shape(t->ne.rbegin(), t->ne.rend());  // ggml ne is innermost-first
  if (shape != hf_shape) {
    return Error(*t, absl::StrCat("shape ", ShapeString(shape), " (ggml ne ", ShapeString(t->ne),
                                  ") does not match the config: expected ", ShapeString(hf_shape)));
  }
  if (!CanDequantize(t->type)) {
    return Error(*t, absl::StrCat("tensor type ", GgmlTypeName(t->type), " is not supported"));
  }
  const uint8_t* src = file_->TensorData(*t);
  if (t->type == GgmlType::kF32 && perm == RowPermutation::kNone &&
      reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    Tensor out;  // zero copy: points into the mapping, which it keeps alive
    out.shape = std::move(shape);
    out.data = reinterpret_cast<const float*>(src);
    out.owner = file_;
    return out;
  }
  std::vector<float> values(static_cast<size_t>(t->numel));
  RETURN_IF_ERROR(DequantizeRows(*t, perm, values.data()));
  file_->ReleaseTensorData(*t);
  return Tensor::Owned(std::move(shape), std::move(values));
}

absl::Status TensorLoader::DequantizeRows(const GgufTensorInfo& t, RowPermutation perm,
                                          float* out) const {
  const uint8_t* src = file_->TensorData(t);
  const int64_t head_dim = config_.head_dim;
  auto fail = [&](const absl::Status& s) { return Error(t, s.message()); };
  if (perm != RowPermutation::kNone && t.ne.size() == 1) {
    // A bias: its elements are the permuted "rows".
    std::vector<float> tmp(static_cast<size_t>(t.numel));
    if (absl::Status s = Dequantize(t.type, src, t.numel, tmp.data()); !s.ok()) return fail(s);
    for (int64_t i = 0; i < t.numel; ++i) out[UnpermutedRow(i, head_dim)] = tmp[i];
    return absl::OkStatus();
  }
  const int64_t row_len = t.row_length(), n_rows = t.n_rows();
  absl::StatusOr<uint64_t> row_bytes = GgmlRowBytes(t.type, row_len);
  if (!row_bytes.ok()) return fail(row_bytes.status());
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t dst = perm == RowPermutation::kNone ? r : UnpermutedRow(r, head_dim);
    absl::Status s = Dequantize(t.type, src + static_cast<uint64_t>(r) * *row_bytes, row_len,
                                out + dst * row_len);
    if (!s.ok()) return fail(s);
  }
  return absl::OkStatus();
}

absl::Status TensorLoader::CheckAllUsed() const {
  for (const GgufTensorInfo& t : file_->tensors()) {
    if (used_.count(t.name) == 0) {
      return Error(
          t,
          "not part of a llama model as this loader maps it (an unmapped tensor would change "
          "the model's output)");
    }
  }
  return absl::OkStatus();
}

absl::Status LoadBlock(TensorLoader& loader, const LlamaConfig& c, int layer, BlockWeights* block) {
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (spec.is_bias && !c.attention_bias) continue;
    ASSIGN_OR_RETURN(block->*spec.slot,
                     loader.Load(absl::StrCat("blk.", layer, ".", spec.gguf_suffix),
                                 ExpectedShape(c, spec), spec.permutation));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaModel> LoadGgufModel(std::shared_ptr<const GgufFile> file) {
  LlamaModel model;
  ASSIGN_OR_RETURN(model.config, ReadGgufLlamaConfig(*file));
  const LlamaConfig& c = model.config;
  TensorLoader loader(file, c);
  const std::vector<int64_t> embed_shape = {c.vocab, c.hidden};
  ASSIGN_OR_RETURN(model.embed_tokens,
                   loader.Load("token_embd.weight", embed_shape, RowPermutation::kNone));
  model.blocks.resize(c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) RETURN_IF_ERROR(LoadBlock(loader, c, i, &model.blocks[i]));
  ASSIGN_OR_RETURN(model.final_norm,
                   loader.Load("output_norm.weight", {c.hidden}, RowPermutation::kNone));
  if (c.tie_word_embeddings) {
    model.lm_head = model.embed_tokens;
  } else {
    ASSIGN_OR_RETURN(model.lm_head,
                     loader.Load("output.weight", embed_shape, RowPermutation::kNone));
  }
  if (file->FindTensor("rope_freqs.weight") != nullptr) {
    // Consumed by ReadGgufLlamaConfig (as config.rope_scaling).
    RETURN_IF_ERROR(
        loader.Load("rope_freqs.weight", {c.head_dim / 2}, RowPermutation::kNone).status());
  }
  RETURN_IF_ERROR(loader.CheckAllUsed());
  return model;
}

absl::StatusOr<LlamaModel> LoadGgufModel(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  return LoadGgufModel(std::shared_ptr<const GgufFile>(std::move(file)));
}

}  // namespace compressd::engine
