// Reading an "spqr" output; see spqr_stream.h.
#include "workers/engine/model/gguf/spqr_stream.h"

#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/gguf/gptq_stream.h"
#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/spqr_format.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// How block i's tensor `name` is stored: dense (its info) or as an SpQR
// module (its metadata). INVALID_ARGUMENT naming the file when neither.
struct Stored {
  const TensorInfo* dense = nullptr;
  SpqrModuleMeta meta;
  std::string module;
};

absl::StatusOr<Stored> Locate(const SafetensorsFile& file, const std::string& name,
                              const std::vector<int64_t>& shape) {
  Stored s;
  s.dense = file.Find(name);
  const auto mismatch = [&](const std::vector<int64_t>& got) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor \"", name, "\" is [",
                                                   absl::StrJoin(got, ", "), "], expected [",
                                                   absl::StrJoin(shape, ", "), "]"));
  };
  if (s.dense != nullptr) {
    if (s.dense->shape != shape) return mismatch(s.dense->shape);
    if (!IsConvertibleFloat(s.dense->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor \"", name, "\" is ",
                                                     DTypeName(s.dense->dtype), ", not a float"));
    }
    return s;
  }
  s.module = std::string(absl::StripSuffix(name, ".weight"));
  auto it = file.metadata().find(s.module);
  if (it == file.metadata().end() || shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": tensor \"", name, "\" is missing (neither dense nor an SpQR module)"));
  }
  ASSIGN_OR_RETURN(s.meta,
                   ParseSpqrMeta(it->second, absl::StrCat(file.path(), ": metadata ", s.module)));
  if (std::vector<int64_t>{s.meta.rows, s.meta.cols} != shape) {
    return mismatch({s.meta.rows, s.meta.cols});
  }
  return s;
}

}  // namespace

bool IsSpqrConfig(const std::string& config_json) {
  const json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  auto q = j.find("quantization_config");
  return q != j.end() && q->is_object() &&
         q->value("quant_method", std::string()) == kSpqrQuantMethod;
}

absl::StatusOr<std::unique_ptr<SpqrStream>> SpqrStream::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> opened, HfModel::Open(dir));
  std::shared_ptr<const HfModel> hf(std::move(opened));
  const std::string path = (fs::path(dir) / kHfConfigFile).string();
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ASSIGN_OR_RETURN(LlamaConfig config, ReadHfLlamaConfig(hf->config(), text, path));
  const json q = json::parse(text, nullptr, false).value("quantization_config", json::object());
  if (q.value("format_version", 0) != kSpqrFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": quantization_config.format_version must be ", kSpqrFormatVersion,
                     " (this reader's spqr layout)"));
  }
  std::unique_ptr<SpqrStream> s(new SpqrStream(std::move(hf), std::move(config)));
  for (int i = 0; i < s->config_.n_layers; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> f,
                     SafetensorsFile::Open((fs::path(dir) / SpqrBlockFile(i)).string()));
    for (const TensorInfo& t : f->tensors()) s->block_bytes_ += t.nbytes();
    s->blocks_.push_back(std::move(f));
    RETURN_IF_ERROR(s->CheckBlock(i));
  }
  return s;
}

absl::Status SpqrStream::CheckBlock(int i) const {
  BlockWeights w;
  std::set<std::string> seen;  // a fused module once
  for (const BlockPart& t : LayerTensors(config_, i, &w)) {
    const StoredPlace place =
        StoredPlaceOf(config_, absl::StrCat("model.layers.", i, ".", t.suffix), t.shape);
    if (!seen.insert(place.name).second) continue;
    ASSIGN_OR_RETURN(const Stored s, Locate(*blocks_[i], place.name, place.shape));
    if (s.dense == nullptr) RETURN_IF_ERROR(CheckSpqrParts(*blocks_[i], s.module, s.meta));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> SpqrStream::Read(int i, const std::string& name,
                                                    const std::vector<int64_t>& shape) const {
  ASSIGN_OR_RETURN(const Stored s, Locate(*blocks_[i], name, shape));
  if (s.dense != nullptr) return blocks_[i]->ReadAsFloat(*s.dense);
  return DecodeSpqr(*blocks_[i], s.module, s.meta);
}

absl::StatusOr<BlockWeights> SpqrStream::LoadBlock(int i) const {
  if (i < 0 || i >= config_.n_layers) {
    return absl::OutOfRangeError(absl::StrCat("block ", i, " of ", config_.n_layers));
  }
  BlockWeights w;
  w.layer = i;
  std::map<std::string, std::vector<float>> stored;  // a fused module decoded once
  for (const BlockPart& t : LayerTensors(config_, i, &w)) {
    const StoredPlace place =
        StoredPlaceOf(config_, absl::StrCat("model.layers.", i, ".", t.suffix), t.shape);
    auto it = stored.find(place.name);
    if (it == stored.end()) {
      ASSIGN_OR_RETURN(std::vector<float> values, Read(i, place.name, place.shape));
      it = stored.emplace(place.name, std::move(values)).first;
    }
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
    const auto first = it->second.begin() + place.first_row * cols;
    *t.tensor = Tensor::Owned(t.shape, std::vector<float>(first, first + t.shape[0] * cols));
  }
  return w;
}

void SpqrStream::ReleaseBlock(int i) const {
  if (i < 0 || i >= static_cast<int>(blocks_.size())) return;
  for (const TensorInfo& t : blocks_[i]->tensors()) blocks_[i]->ReleaseBytes(t);
}

absl::StatusOr<Tensor> SpqrStream::LoadTensor(const std::string& name) const {
  return HfLoadTensor(*hf_, name);
}

absl::Status SpqrStream::ReadRows(const std::string& name, int64_t row, int64_t n,
                                  float* out) const {
  return HfReadRows(*hf_, name, row, n, out);
}

void SpqrStream::Release(const std::string& name) const { HfRelease(*hf_, name); }

const std::string& SpqrStream::path() const { return hf_->dir(); }

uint64_t SpqrStream::weight_bytes() const { return hf_->total_tensor_bytes() + block_bytes_; }

}  // namespace compressd::engine
