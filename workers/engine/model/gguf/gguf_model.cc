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

  // The tensor's info, its shape checked against `hf_shape` and its type
  // against the dequantizers; marks it used.
  absl::StatusOr<const GgufTensorInfo*> Check(const std::string& name,
                                              const std::vector<int64_t>& hf_shape);
  absl::StatusOr<Tensor> Load(const std::string& name, const std::vector<int64_t>& hf_shape,
                              RowPermutation perm);
  // GGUF rows [row, row + n) of `t` into out[n, row length], HF order within
  // the range when permuted (whole tensors only: row 0, all rows).
  absl::Status DequantizeRows(const GgufTensorInfo& t, RowPermutation perm, int64_t row,
                              int64_t n, float* out) const;
  // INVALID_ARGUMENT naming the first tensor of the file not used by Load().
  absl::Status CheckAllUsed() const;
  void Release(const GgufTensorInfo& t) const { file_->ReleaseTensorData(t); }

 private:
  absl::Status Error(const GgufTensorInfo& t, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_->path(), ": tensor \"", t.name, "\" (info at offset ", t.info_offset,
                     ", data at offset ", file_->data_start() + t.offset, "): ", why));
  }

  std::shared_ptr<const GgufFile> file_;
  const LlamaConfig& config_;
  std::set<std::string> used_;
};

absl::StatusOr<const GgufTensorInfo*> TensorLoader::Check(const std::string& name,
                                                         const std::vector<int64_t>& hf_shape) {
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
  return t;
}

absl::StatusOr<Tensor> TensorLoader::Load(const std::string& name,
                                          const std::vector<int64_t>& hf_shape,
                                          RowPermutation perm) {
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, Check(name, hf_shape));
  const uint8_t* src = file_->TensorData(*t);
  if (t->type == GgmlType::kF32 && perm == RowPermutation::kNone &&
      reinterpret_cast<uintptr_t>(src) % alignof(float) == 0) {
    Tensor out;  // zero copy: points into the mapping, which it keeps alive
    out.shape = hf_shape;
    out.data = reinterpret_cast<const float*>(src);
    out.owner = file_;
    return out;
  }
  std::vector<float> values(static_cast<size_t>(t->numel));
  RETURN_IF_ERROR(DequantizeRows(*t, perm, 0, t->n_rows(), values.data()));
  file_->ReleaseTensorData(*t);
  return Tensor::Owned(hf_shape, std::move(values));
}

absl::Status TensorLoader::DequantizeRows(const GgufTensorInfo& t, RowPermutation perm,
                                          int64_t row, int64_t n, float* out) const {
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
  const int64_t row_len = t.row_length();
  if (row < 0 || n < 0 || row + n > t.n_rows()) {
    return absl::OutOfRangeError(absl::StrCat(t.name, ": rows [", row, ", ", row + n,
                                              ") outside [0, ", t.n_rows(), ")"));
  }
  absl::StatusOr<uint64_t> row_bytes = GgmlRowBytes(t.type, row_len);
  if (!row_bytes.ok()) return fail(row_bytes.status());
  for (int64_t r = row; r < row + n; ++r) {
    const int64_t dst = perm == RowPermutation::kNone ? r - row : UnpermutedRow(r, head_dim);
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

// Gemma's norm weights: GGUF stores 1 + w, the model w (its (1 + w) norm).
Tensor WithoutNormOffset(const Tensor& t) {
  std::vector<float> v(t.data, t.data + t.numel());
  for (float& x : v) x -= 1.0f;
  return Tensor::Owned(t.shape, std::move(v));
}

absl::Status LoadBlock(TensorLoader& loader, const LlamaConfig& c, int layer, BlockWeights* block) {
  block->layer = layer;
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (!HasTensor(c, spec, layer) || GgufFusedOf(c, spec.slot, nullptr) != nullptr) continue;
    ASSIGN_OR_RETURN(block->*spec.slot,
                     loader.Load(absl::StrCat("blk.", layer, ".", spec.gguf_suffix),
                                 ExpectedShape(c, spec), GgufPermutation(c, spec)));
    if (c.norm_offset && IsNormSpec(spec)) block->*spec.slot = WithoutNormOffset(block->*spec.slot);
  }
  if (c.fused_projections) {  // Phi-3: each fused tensor split back by rows
    for (const GgufFusedTensor& fused : GgufFusedTensors()) {
      const std::vector<int64_t> shape = GgufFusedShape(c, fused);
      ASSIGN_OR_RETURN(const GgufTensorInfo* t,
                       loader.Check(absl::StrCat("blk.", layer, ".", fused.gguf_suffix), shape));
      int64_t row = 0;
      for (Tensor BlockWeights::*part : fused.parts) {
        const std::vector<int64_t> part_shape = GgufFusedPartShape(c, part);
        const int64_t rows = part_shape[0];
        std::vector<float> values(static_cast<size_t>(rows * part_shape[1]));
        RETURN_IF_ERROR(loader.DequantizeRows(*t, RowPermutation::kNone, row, rows, values.data()));
        block->*part = Tensor::Owned(part_shape, std::move(values));
        row += rows;
      }
      loader.Release(*t);
    }
  }
  // The experts: each stacked tensor split back into its experts' matrices.
  for (const GgufMoeTensor& m : GgufMoeTensors(c, layer, block)) {
    ASSIGN_OR_RETURN(const GgufTensorInfo* t,
                     loader.Check(absl::StrCat("blk.", layer, ".", m.gguf_suffix), m.shape));
    int64_t row = 0;
    for (const BlockPart& part : m.parts) {
      const int64_t rows = part.shape.size() == 2 ? part.shape[0] : 1;
      std::vector<float> values(static_cast<size_t>(rows * part.shape.back()));
      RETURN_IF_ERROR(loader.DequantizeRows(*t, RowPermutation::kNone, row, rows, values.data()));
      *part.tensor = Tensor::Owned(part.shape, std::move(values));
      row += rows;
    }
    loader.Release(*t);
  }
  return absl::OkStatus();
}

// Block `layer`'s GGUF tensor names.
std::vector<std::string> BlockGgufNames(const LlamaConfig& c, int layer) {
  std::vector<std::string> out;
  for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
    if (HasTensor(c, spec, layer) && GgufFusedOf(c, spec.slot, nullptr) == nullptr)
      out.push_back(absl::StrCat("blk.", layer, ".", spec.gguf_suffix));
  }
  if (c.fused_projections) {
    for (const GgufFusedTensor& fused : GgufFusedTensors())
      out.push_back(absl::StrCat("blk.", layer, ".", fused.gguf_suffix));
  }
  for (const GgufMoeTensor& m : GgufMoeTensors(c, layer, nullptr))
    out.push_back(absl::StrCat("blk.", layer, ".", m.gguf_suffix));
  return out;
}

// The rope tensors ReadGgufLlamaConfig consumed (as config.rope_scaling):
// rope_freqs (llama3), rope_factors_long / _short (Phi-3's longrope).
absl::Status CheckRopeTensors(TensorLoader& loader, const GgufFile& file, const LlamaConfig& c) {
  for (const char* name : {"rope_freqs.weight", "rope_factors_long.weight",
                           "rope_factors_short.weight"}) {
    if (file.FindTensor(name) != nullptr)
      RETURN_IF_ERROR(loader.Check(name, {RotaryDims(c) / 2}).status());
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
  if (c.norm_offset) model.final_norm = WithoutNormOffset(model.final_norm);
  if (c.tie_word_embeddings) {
    model.lm_head = model.embed_tokens;
  } else {
    ASSIGN_OR_RETURN(model.lm_head,
                     loader.Load("output.weight", embed_shape, RowPermutation::kNone));
  }
  RETURN_IF_ERROR(CheckRopeTensors(loader, *file, c));
  RETURN_IF_ERROR(loader.CheckAllUsed());
  return model;
}

absl::StatusOr<LlamaModel> LoadGgufModel(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  return LoadGgufModel(std::shared_ptr<const GgufFile>(std::move(file)));
}

namespace {

// The GGUF name of a tensor outside the blocks, by its HF name; "" if none.
std::string OutsideGgufName(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<GgufLlamaStream>> GgufLlamaStream::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> opened, GgufFile::Open(path));
  return Open(std::shared_ptr<const GgufFile>(std::move(opened)));
}

absl::StatusOr<std::unique_ptr<GgufLlamaStream>> GgufLlamaStream::Open(
    std::shared_ptr<const GgufFile> file) {
  ASSIGN_OR_RETURN(LlamaConfig c, ReadGgufLlamaConfig(*file));
  // Every tensor checked up front, as LoadGgufModel would find it.
  TensorLoader loader(file, c);
  const std::vector<int64_t> embed_shape = {c.vocab, c.hidden};
  RETURN_IF_ERROR(loader.Check("token_embd.weight", embed_shape).status());
  for (int l = 0; l < c.n_layers; ++l) {
    for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
      if (!HasTensor(c, spec, l) || GgufFusedOf(c, spec.slot, nullptr) != nullptr) continue;
      RETURN_IF_ERROR(loader.Check(absl::StrCat("blk.", l, ".", spec.gguf_suffix),
                                   ExpectedShape(c, spec)).status());
    }
    for (const GgufFusedTensor& fused : GgufFusedTensors()) {
      if (!c.fused_projections) break;
      RETURN_IF_ERROR(loader.Check(absl::StrCat("blk.", l, ".", fused.gguf_suffix),
                                   GgufFusedShape(c, fused)).status());
    }
    for (const GgufMoeTensor& m : GgufMoeTensors(c, l, nullptr)) {
      RETURN_IF_ERROR(loader.Check(absl::StrCat("blk.", l, ".", m.gguf_suffix), m.shape).status());
    }
  }
  RETURN_IF_ERROR(loader.Check("output_norm.weight", {c.hidden}).status());
  if (!c.tie_word_embeddings) RETURN_IF_ERROR(loader.Check("output.weight", embed_shape).status());
  RETURN_IF_ERROR(CheckRopeTensors(loader, *file, c));
  RETURN_IF_ERROR(loader.CheckAllUsed());
  return std::unique_ptr<GgufLlamaStream>(new GgufLlamaStream(std::move(file), std::move(c)));
}

const std::string& GgufLlamaStream::path() const { return file_->path(); }

uint64_t GgufLlamaStream::weight_bytes() const {
  uint64_t total = 0;
  for (const GgufTensorInfo& t : file_->tensors()) total += t.nbytes;
  return total;
}

absl::StatusOr<BlockWeights> GgufLlamaStream::LoadBlock(int i) const {
  if (i < 0 || i >= config_.n_layers) {
    return absl::OutOfRangeError(absl::StrCat("block ", i, " of ", config_.n_layers));
  }
  TensorLoader loader(file_, config_);
  BlockWeights w;
  RETURN_IF_ERROR(engine::LoadBlock(loader, config_, i, &w));
  return w;
}

void GgufLlamaStream::ReleaseBlock(int i) const {
  for (const std::string& name : BlockGgufNames(config_, i)) {
    const GgufTensorInfo* t = file_->FindTensor(name);
    if (t != nullptr) file_->ReleaseTensorData(*t);
  }
}

absl::StatusOr<const GgufTensorInfo*> GgufLlamaStream::Find(const std::string& name) const {
  const std::string gguf = OutsideGgufName(name);
  const GgufTensorInfo* t = gguf.empty() ? nullptr : file_->FindTensor(gguf);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(file_->path(), ": tensor \"", name, "\" (",
                                            gguf.empty() ? "not a tensor outside the blocks" : gguf,
                                            ") is missing"));
  }
  return t;
}

absl::StatusOr<Tensor> GgufLlamaStream::LoadTensor(const std::string& name) const {
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, Find(name));
  TensorLoader loader(file_, config_);
  ASSIGN_OR_RETURN(Tensor out, loader.Load(t->name, std::vector<int64_t>(t->ne.rbegin(), t->ne.rend()),
                                           RowPermutation::kNone));
  if (config_.norm_offset && t->name == "output_norm.weight") return WithoutNormOffset(out);
  return out;
}

absl::Status GgufLlamaStream::ReadRows(const std::string& name, int64_t row, int64_t n,
                                       float* out) const {
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, Find(name));
  if (t->ne.size() != 2) {
    return absl::NotFoundError(absl::StrCat(file_->path(), ": no 2-D tensor \"", name, "\""));
  }
  return TensorLoader(file_, config_).DequantizeRows(*t, RowPermutation::kNone, row, n, out);
}

void GgufLlamaStream::Release(const std::string& name) const {
  absl::StatusOr<const GgufTensorInfo*> t = Find(name);
  if (t.ok()) file_->ReleaseTensorData(**t);
}

}  // namespace compressd::engine
