#include "workers/engine/model/gguf/hf_llama.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

// Turns HF tensors into LlamaModel tensors; remembers which were used so
// that unmapped ones can be reported. Not thread-safe.
class HfTensorLoader {
 public:
  HfTensorLoader(std::shared_ptr<const HfModel> model, const LlamaConfig& config)
      : model_(std::move(model)), config_(config) {}

  // The stored tensor holding `name` (StoredPlaceOf), checked against its
  // shape and for a float dtype; marks it used.
  absl::StatusOr<HfModel::TensorRef> Check(const std::string& name,
                                           const std::vector<int64_t>& shape);
  // Check, then the tensor (its rows of a fused one) in float32 (F32
  // zero-copy when aligned).
  absl::StatusOr<Tensor> Load(const std::string& name, const std::vector<int64_t>& shape);
  void MarkUsed(const std::string& name) { used_.insert(name); }
  absl::Status CheckAllUsed() const;

 private:
  std::string Where(const HfModel::TensorRef& ref) const {
    return absl::StrCat(model_->dir(), "/", ref.shard->rel_path, ": tensor \"", ref.info->name,
                        "\" (data at offset ", ref.shard->file->data_start() + ref.info->begin,
                        ")");
  }

  std::shared_ptr<const HfModel> model_;
  const LlamaConfig& config_;
  std::set<std::string> used_;
};

absl::StatusOr<HfModel::TensorRef> HfTensorLoader::Check(const std::string& tensor,
                                                         const std::vector<int64_t>& tensor_shape) {
  const StoredPlace place = StoredPlaceOf(config_, tensor, tensor_shape);
  const std::string& name = place.name;
  const std::vector<int64_t>& shape = place.shape;
  const HfModel::TensorRef ref = model_->Find(name);
  if (ref.info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_->dir(), ": tensor \"", name, "\" is missing"));
  }
  used_.insert(name);
  const TensorInfo& info = *ref.info;
  if (info.shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(Where(ref), ": shape ", ShapeString(info.shape),
                                                   " does not match the config: expected ",
                                                   ShapeString(shape)));
  }
  if (!IsConvertibleFloat(info.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(ref), ": dtype ", DTypeName(info.dtype), " is not F32, F16 or BF16"));
  }
  return ref;
}

absl::StatusOr<Tensor> HfTensorLoader::Load(const std::string& name,
                                            const std::vector<int64_t>& shape) {
  ASSIGN_OR_RETURN(const HfModel::TensorRef ref, Check(name, shape));
  const TensorInfo& info = *ref.info;
  const size_t esize = DTypeSize(info.dtype);
  const auto numel = static_cast<size_t>(
      std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>()));
  const int64_t cols = shape.size() == 2 ? shape[1] : 1;
  const size_t first = static_cast<size_t>(StoredPlaceOf(config_, name, shape).first_row * cols);
  const absl::string_view bytes = ref.shard->file->Bytes(info).substr(first * esize, numel * esize);
  if (info.dtype == DType::kF32 &&
      reinterpret_cast<uintptr_t>(bytes.data()) % alignof(float) == 0) {
    Tensor t;  // zero copy: points into the shard's mapping, which it keeps alive
    t.shape = shape;
    t.data = reinterpret_cast<const float*>(bytes.data());
    t.owner = model_;
    return t;
  }
  std::vector<float> values(numel);
  if (absl::Status s = BytesToFloats(info.dtype, bytes.data(), numel, values.data()); !s.ok())
    return absl::InvalidArgumentError(absl::StrCat(Where(ref), ": ", s.message()));
  return Tensor::Owned(shape, std::move(values));
}

absl::Status HfTensorLoader::CheckAllUsed() const {
  for (const auto& [name, ref] : model_->tensors()) {
    // Older checkpoints store the rotary inverse frequencies, recomputed anyway.
    if (used_.count(name) == 0 && !absl::EndsWith(name, ".rotary_emb.inv_freq")) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(ref), ": not part of a ", model_->config().model_type,
                       " model as this loader maps it (an unmapped tensor "
                       "would change the model's output)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaModel> LoadHfModel(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> opened, HfModel::Open(dir));
  std::shared_ptr<const HfModel> hf(std::move(opened));
  const std::string config_path = (std::filesystem::path(dir) / kHfConfigFile).string();
  ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  LlamaModel model;
  ASSIGN_OR_RETURN(model.config, ReadHfLlamaConfig(hf->config(), config_text, config_path));
  const LlamaConfig& c = model.config;
  HfTensorLoader loader(hf, model.config);
  const std::vector<int64_t> embed_shape = {c.vocab, c.hidden};
  ASSIGN_OR_RETURN(model.embed_tokens, loader.Load("model.embed_tokens.weight", embed_shape));
  model.blocks.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    model.blocks[l].layer = l;
    for (const BlockPart& t : LayerTensors(c, l, &model.blocks[l])) {
      ASSIGN_OR_RETURN(*t.tensor,
                       loader.Load(absl::StrCat("model.layers.", l, ".", t.suffix), t.shape));
    }
  }
  ASSIGN_OR_RETURN(model.final_norm, loader.Load("model.norm.weight", {c.hidden}));
  if (c.tie_word_embeddings) {
    model.lm_head = model.embed_tokens;
    loader.MarkUsed("lm_head.weight");  // transformers ties it to the embeddings when stored
  } else {
    ASSIGN_OR_RETURN(model.lm_head, loader.Load("lm_head.weight", embed_shape));
  }
  RETURN_IF_ERROR(loader.CheckAllUsed());
  return model;
}

namespace {

std::string BlockTensorName(int block, const BlockPart& t) {
  return absl::StrCat("model.layers.", block, ".", t.suffix);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfLlamaStream>> HfLlamaStream::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> opened, HfModel::Open(dir));
  std::shared_ptr<const HfModel> hf(std::move(opened));
  const std::string config_path = (std::filesystem::path(dir) / kHfConfigFile).string();
  ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(config_path));
  ASSIGN_OR_RETURN(LlamaConfig c, ReadHfLlamaConfig(hf->config(), config_text, config_path));
  // Every tensor checked up front, as LoadHfModel would find it.
  HfTensorLoader loader(hf, c);
  const std::vector<int64_t> embed_shape = {c.vocab, c.hidden};
  RETURN_IF_ERROR(loader.Check("model.embed_tokens.weight", embed_shape).status());
  for (int l = 0; l < c.n_layers; ++l) {
    for (const BlockPart& t : LayerTensors(c, l, nullptr)) {
      RETURN_IF_ERROR(loader.Check(BlockTensorName(l, t), t.shape).status());
    }
  }
  RETURN_IF_ERROR(loader.Check("model.norm.weight", {c.hidden}).status());
  if (c.tie_word_embeddings) {
    loader.MarkUsed("lm_head.weight");
  } else {
    RETURN_IF_ERROR(loader.Check("lm_head.weight", embed_shape).status());
  }
  RETURN_IF_ERROR(loader.CheckAllUsed());
  return std::unique_ptr<HfLlamaStream>(new HfLlamaStream(std::move(hf), std::move(c)));
}

const std::string& HfLlamaStream::path() const { return hf_->dir(); }

uint64_t HfLlamaStream::weight_bytes() const { return hf_->total_tensor_bytes(); }

absl::StatusOr<BlockWeights> HfLlamaStream::LoadBlock(int i) const {
  if (i < 0 || i >= config_.n_layers) {
    return absl::OutOfRangeError(absl::StrCat("block ", i, " of ", config_.n_layers));
  }
  HfTensorLoader loader(hf_, config_);
  BlockWeights w;
  w.layer = i;
  for (const BlockPart& t : LayerTensors(config_, i, &w)) {
    ASSIGN_OR_RETURN(*t.tensor, loader.Load(BlockTensorName(i, t), t.shape));
  }
  return w;
}

void HfLlamaStream::ReleaseBlock(int i) const {
  for (const BlockPart& t : LayerTensors(config_, i, nullptr)) {
    Release(StoredPlaceOf(config_, BlockTensorName(i, t), t.shape).name);
  }
}

absl::StatusOr<Tensor> HfLlamaStream::LoadTensor(const std::string& name) const {
  const HfModel::TensorRef ref = hf_->Find(name);
  if (ref.info == nullptr) {
    return absl::NotFoundError(absl::StrCat(hf_->dir(), ": tensor \"", name, "\" is missing"));
  }
  return HfTensorLoader(hf_, config_).Load(name, ref.info->shape);
}

absl::Status HfLlamaStream::ReadRows(const std::string& name, int64_t row, int64_t n,
                                     float* out) const {
  const HfModel::TensorRef ref = hf_->Find(name);
  if (ref.info == nullptr || ref.info->shape.size() != 2) {
    return absl::NotFoundError(absl::StrCat(hf_->dir(), ": no 2-D tensor \"", name, "\""));
  }
  const TensorInfo& info = *ref.info;
  const int64_t rows = info.shape[0], cols = info.shape[1];
  if (row < 0 || n < 0 || row + n > rows) {
    return absl::OutOfRangeError(
        absl::StrCat(name, ": rows [", row, ", ", row + n, ") outside [0, ", rows, ")"));
  }
  const size_t esize = DTypeSize(info.dtype);
  const absl::string_view bytes = ref.shard->file->Bytes(info);
  return BytesToFloats(info.dtype, bytes.data() + static_cast<size_t>(row * cols) * esize,
                       static_cast<size_t>(n * cols), out);
}

void HfLlamaStream::Release(const std::string& name) const {
  const HfModel::TensorRef ref = hf_->Find(name);
  if (ref.info != nullptr) ref.shard->file->ReleaseBytes(*ref.info);
}

}  // namespace compressd::engine
