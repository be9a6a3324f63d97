#include "workers/engine/model/gguf/gptq_stream.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/fp8.h"
#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

// Field `index` of a little-endian stream of `bits`-bit fields held in words
// words[0], words[stride], ... (a field may continue in the next word).
uint32_t Field(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  const int64_t bit = index * bits;
  const int64_t w = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  uint64_t v = words[w * stride] >> shift;
  if (shift + bits > 32) v |= static_cast<uint64_t>(words[(w + 1) * stride]) << (32 - shift);
  return static_cast<uint32_t>(v & ((1u << bits) - 1));
}

// float-quantized: FP8 E4M3 weights per channel, and either no activation
// quantization or E4M3 per token (dynamic).
template <typename Invalid>
absl::StatusOr<GptqStream::Packing> FloatPacking(const json& w, const json& a,
                                                 const std::string& group, const Invalid& invalid) {
  if (!w.is_object() || w.value("num_bits", 0) != 8 || w.value("type", std::string()) != "float" ||
      w.value("strategy", std::string()) != "channel" || !w.value("symmetric", false)) {
    return invalid(group +
                   ".weights: float-quantized reads FP8 (E4M3) symmetric weights per "
                   "channel");
  }
  if (!a.is_null() &&
      (!a.is_object() || a.value("num_bits", 0) != 8 || a.value("type", std::string()) != "float" ||
       a.value("strategy", std::string()) != "token" || !a.value("dynamic", false))) {
    return invalid(group +
                   ".input_activations: float-quantized reads none or FP8 dynamic "
                   "per-token activations");
  }
  GptqStream::Packing p{8, false, true, true};
  p.int8 = true;
  p.fp8 = true;
  p.act = !a.is_null();
  return p;
}

// quantization_config of a compressed-tensors pack-quantized checkpoint with
// one config group of int weights.
absl::StatusOr<GptqStream::Packing> CtPacking(const json& q, const std::string& path) {
  const auto invalid = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": quantization_config", what));
  };
  const std::string format = q.value("format", std::string());
  if (format != "pack-quantized" && format != "int-quantized" && format != "float-quantized") {
    return invalid(
        ".format: only pack-quantized, int-quantized and float-quantized compressed-tensors "
        "checkpoints are read");
  }
  const json groups = q.value("config_groups", json::object());
  if (!groups.is_object() || groups.size() != 1) {
    return invalid(".config_groups: expected exactly one group");
  }
  const json w = groups.begin()->value("weights", json::object());
  const json a = groups.begin()->value("input_activations", json());
  const std::string group = absl::StrCat(".config_groups.", groups.begin().key());
  if (format == "float-quantized") return FloatPacking(w, a, group, invalid);
  if (format == "int-quantized") {
    if (!w.is_object() || w.value("num_bits", 0) != 8 || w.value("type", std::string()) != "int" ||
        w.value("strategy", std::string()) != "channel" || !w.value("symmetric", false)) {
      return invalid(group + ".weights: int-quantized reads int8 symmetric weights per channel");
    }
    if (!a.is_object() || a.value("num_bits", 0) != 8 || a.value("type", std::string()) != "int" ||
        a.value("strategy", std::string()) != "token" || !a.value("dynamic", false) ||
        !a.value("symmetric", false)) {
      return invalid(group +
                     ".input_activations: int-quantized reads int8 symmetric dynamic "
                     "per-token activations");
    }
    GptqStream::Packing p{8, false, true, true};
    p.int8 = true;
    p.act = true;
    return p;
  }
  if (!a.is_null()) {
    return invalid(group +
                   ".input_activations: activation quantization is read with "
                   "int-quantized weights only");
  }
  const int bits = w.is_object() ? w.value("num_bits", 0) : 0;
  const std::string strategy = w.is_object() ? w.value("strategy", std::string()) : "";
  if (!w.is_object() || w.value("type", std::string()) != "int" || bits < 2 || bits > 8 ||
      (strategy != "group" && strategy != "channel")) {
    return invalid(absl::StrCat(".config_groups.", groups.begin().key(),
                                ".weights: expected int weights of 2-8 bits, strategy group or "
                                "channel"));
  }
  return GptqStream::Packing{bits, false, true, w.value("symmetric", true)};
}

std::vector<uint32_t> Words(absl::string_view bytes) {
  std::vector<uint32_t> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

}  // namespace

bool IsGptqConfig(const std::string& config_json) {
  const json j = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  auto q = j.find("quantization_config");
  if (q == j.end() || !q->is_object()) return false;
  const std::string method = q->value("quant_method", std::string());
  return method == "gptq" || method == "compressed-tensors";
}

absl::StatusOr<std::unique_ptr<GptqStream>> GptqStream::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> opened, HfModel::Open(dir));
  std::shared_ptr<const HfModel> hf(std::move(opened));
  const std::string path = (std::filesystem::path(dir) / kHfConfigFile).string();
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ASSIGN_OR_RETURN(LlamaConfig config, ReadHfLlamaConfig(hf->config(), text, path));
  const json q = json::parse(text, nullptr, false).value("quantization_config", json::object());
  if (q.value("quant_method", std::string()) == "compressed-tensors") {
    ASSIGN_OR_RETURN(const Packing packing, CtPacking(q, path));
    std::unique_ptr<GptqStream> stream(new GptqStream(std::move(hf), std::move(config), packing));
    RETURN_IF_ERROR(stream->CheckTensors());
    return stream;
  }
  const int bits = q.value("bits", 0);
  if (q.value("quant_method", std::string()) != "gptq" ||
      (bits != 2 && bits != 3 && bits != 4 && bits != 8)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": quantization_config: expected quant_method gptq with bits 2, 3, 4 or 8"));
  }
  const std::string format = q.value("checkpoint_format", q.value("format", std::string("gptq")));
  if (format != "gptq" && format != "gptq_v2") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": quantization_config.checkpoint_format \"", format,
                     "\" is not gptq or gptq_v2"));
  }
  std::unique_ptr<GptqStream> stream(new GptqStream(
      std::move(hf), std::move(config), Packing{bits, format == "gptq_v2", false, true}));
  RETURN_IF_ERROR(stream->CheckTensors());
  return stream;
}

absl::Status GptqStream::CheckTensors() const {
  const LlamaConfig& c = config_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"model.embed_tokens.weight", {c.vocab, c.hidden}}, {"model.norm.weight", {c.hidden}}};
  if (!c.tie_word_embeddings) want.push_back({"lm_head.weight", {c.vocab, c.hidden}});
  for (int i = 0; i < c.n_layers; ++i) {
    for (const BlockPart& t : LayerTensors(c, i, nullptr)) {
      const StoredPlace p =
          StoredPlaceOf(c, absl::StrCat("model.layers.", i, ".", t.suffix), t.shape);
      const std::string module(absl::StripSuffix(p.name, ".weight"));
      const std::string packed = PackedName(module);
      const HfModel::TensorRef q = hf_->Find(packed);
      if (q.info == nullptr || (packing_.int8 && q.info->dtype != NaiveDType())) {
        want.push_back({p.name, p.shape});
        continue;
      }
      const std::vector<int64_t> shape =
          p.shape.size() != 2 ? std::vector<int64_t>{}
          : packing_.int8     ? p.shape
          : packing_.ct       ? std::vector<int64_t>{p.shape[0], (p.shape[1] * bits_ + 31) / 32}
                              : std::vector<int64_t>{p.shape[1] * bits_ / 32, p.shape[0]};
      if (q.info->shape != shape || shape.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            hf_->dir(), ": tensor \"", packed, "\": shape ", ShapeString(q.info->shape),
            " does not pack a ", bits_, "-bit ", ShapeString(p.shape), " module"));
      }
    }
  }
  for (const auto& [name, shape] : want) {
    const HfModel::TensorRef ref = hf_->Find(name);
    if (ref.info == nullptr || ref.info->shape != shape || !IsConvertibleFloat(ref.info->dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          hf_->dir(), ": tensor \"", name, "\" ",
          ref.info == nullptr ? std::string("is missing")
                              : absl::StrCat("is ", DTypeName(ref.info->dtype), " ",
                                             ShapeString(ref.info->shape)),
          ", expected a float ", ShapeString(shape)));
    }
  }
  return absl::OkStatus();
}

std::string GptqStream::PackedName(const std::string& m) const {
  return m + (packing_.int8 ? ".weight" : packing_.ct ? ".weight_packed" : ".qweight");
}

DType GptqStream::NaiveDType() const { return packing_.fp8 ? DType::kF8E4M3 : DType::kI8; }

bool GptqStream::IsPacked(const std::string& m) const {
  const HfModel::TensorRef ref = hf_->Find(PackedName(m));
  return ref.info != nullptr && (!packing_.int8 || ref.info->dtype == NaiveDType());
}

absl::StatusOr<std::vector<float>> GptqStream::DequantizeInt8(const std::string& m, int64_t out,
                                                              int64_t in) const {
  const HfModel::TensorRef q = hf_->Find(m + ".weight"), sc = hf_->Find(m + ".weight_scale");
  if (sc.info == nullptr || sc.info->shape != std::vector<int64_t>{out, 1}) {
    return absl::InvalidArgumentError(
        absl::StrCat(hf_->dir(), ": ", m, ".weight_scale: expected [", out, ", 1], got ",
                     sc.info == nullptr ? "none" : ShapeString(sc.info->shape)));
  }
  const absl::string_view codes = q.shard->file->Bytes(*q.info);
  ASSIGN_OR_RETURN(std::vector<float> scales, sc.shard->file->ReadAsFloat(*sc.info));
  std::vector<float> w(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const auto c = static_cast<uint8_t>(codes[o * in + i]);
      w[o * in + i] =
          scales[o] * (packing_.fp8 ? Fp8E4m3Value(c) : static_cast<float>(static_cast<int8_t>(c)));
    }
  }
  return w;
}

absl::StatusOr<std::vector<float>> GptqStream::DequantizeCt(const std::string& m, int64_t out,
                                                            int64_t in) const {
  const HfModel::TensorRef pk = hf_->Find(m + ".weight_packed"),
                           sc = hf_->Find(m + ".weight_scale"),
                           zp = hf_->Find(m + ".weight_zero_point");
  const int64_t groups = sc.info != nullptr && sc.info->shape.size() == 2 ? sc.info->shape[1] : 0;
  if (sc.info == nullptr || sc.info->shape != std::vector<int64_t>{out, groups} || groups <= 0 ||
      in % groups != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        hf_->dir(), ": ", m, ".weight_scale: expected [", out, ", groups] with groups dividing ",
        in, ", got ", sc.info == nullptr ? "none" : ShapeString(sc.info->shape)));
  }
  const int64_t zero_words = (out * bits_ + 31) / 32;
  if (!packing_.symmetric &&
      (zp.info == nullptr || zp.info->shape != std::vector<int64_t>{zero_words, groups})) {
    return absl::InvalidArgumentError(
        absl::StrCat(hf_->dir(), ": ", m, ".weight_zero_point: expected [", zero_words, ", ",
                     groups, "] for an asymmetric grid, got ",
                     zp.info == nullptr ? "none" : ShapeString(zp.info->shape)));
  }
  for (const HfModel::TensorRef* ref : {&pk, &zp}) {
    if (ref->info != nullptr && ref->info->dtype != DType::kI32) {
      return absl::InvalidArgumentError(absl::StrCat(hf_->dir(), ": ", ref->info->name, ": ",
                                                     DTypeName(ref->info->dtype),
                                                     ", expected I32 (packed codes)"));
    }
  }
  const std::vector<uint32_t> packed = Words(pk.shard->file->Bytes(*pk.info));
  const std::vector<uint32_t> zeros =
      packing_.symmetric ? std::vector<uint32_t>{} : Words(zp.shard->file->Bytes(*zp.info));
  ASSIGN_OR_RETURN(std::vector<float> scales, sc.shard->file->ReadAsFloat(*sc.info));
  const int64_t row_words = (in * bits_ + 31) / 32, group_size = in / groups;
  std::vector<float> w(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const int64_t g = i / group_size;
      const float zero = packing_.symmetric
                             ? static_cast<float>(1 << (bits_ - 1))
                             : static_cast<float>(Field(zeros.data() + g, groups, o, bits_));
      const float code = static_cast<float>(Field(&packed[o * row_words], 1, i, bits_));
      w[o * in + i] = scales[o * groups + g] * (code - zero);
    }
  }
  return w;
}

absl::StatusOr<std::vector<float>> GptqStream::Dequantize(const std::string& m, int64_t out,
                                                          int64_t in) const {
  if (packing_.int8) return DequantizeInt8(m, out, in);
  if (packing_.ct) return DequantizeCt(m, out, in);
  const HfModel::TensorRef qw = hf_->Find(m + ".qweight"), qz = hf_->Find(m + ".qzeros"),
                           sc = hf_->Find(m + ".scales"), gi = hf_->Find(m + ".g_idx");
  if (qz.info == nullptr || sc.info == nullptr || gi.info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(hf_->dir(), ": ", m, ": qweight without qzeros, scales and g_idx"));
  }
  const int64_t groups = sc.info->shape.empty() ? 0 : sc.info->shape[0];
  const std::vector<std::vector<int64_t>> want = {
      {in * bits_ / 32, out}, {groups, out * bits_ / 32}, {groups, out}, {in}};
  const std::vector<const HfModel::TensorRef*> refs = {&qw, &qz, &sc, &gi};
  for (size_t k = 0; k < refs.size(); ++k) {
    if (refs[k]->info->shape != want[k] || groups <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          hf_->dir(), ": tensor \"", refs[k]->info->name, "\": shape ",
          ShapeString(refs[k]->info->shape), ", expected ", ShapeString(want[k]),
          " for a ", bits_, "-bit [", out, ", ", in, "] module"));
    }
  }
  const std::vector<uint32_t> qweight = Words(qw.shard->file->Bytes(*qw.info));
  const std::vector<uint32_t> qzeros = Words(qz.shard->file->Bytes(*qz.info));
  const std::vector<uint32_t> g_idx = Words(gi.shard->file->Bytes(*gi.info));
  ASSIGN_OR_RETURN(std::vector<float> scales, sc.shard->file->ReadAsFloat(*sc.info));
  std::vector<float> zeros(static_cast<size_t>(groups * out));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      zeros[g * out + o] = static_cast<float>(
          Field(&qzeros[g * (out * bits_ / 32)], 1, o, bits_) + (packing_.v2 ? 0 : 1));
    }
  }
  std::vector<float> w(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < in; ++i) {
    const int64_t g = g_idx[i];
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrCat(hf_->dir(), ": ", m, ".g_idx[", i, "] = ",
                                                     g, " outside [0, ", groups, ")"));
    }
    for (int64_t o = 0; o < out; ++o) {
      const float code = static_cast<float>(Field(&qweight[o], out, i, bits_));
      w[o * in + i] = scales[g * out + o] * (code - zeros[g * out + o]);
    }
  }
  return w;
}

absl::StatusOr<std::vector<float>> HfDense(const HfModel& hf, const std::string& name,
                                           const std::vector<int64_t>& shape) {
  const HfModel::TensorRef ref = hf.Find(name);
  if (ref.info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(hf.dir(), ": tensor \"", name, "\" is missing"));
  }
  if (ref.info->shape != shape || !IsConvertibleFloat(ref.info->dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(hf.dir(), ": tensor \"", name, "\": ", DTypeName(ref.info->dtype), " ",
                     ShapeString(ref.info->shape), ", expected a float ", ShapeString(shape)));
  }
  return ref.shard->file->ReadAsFloat(*ref.info);
}

absl::StatusOr<std::vector<float>> GptqStream::Dense(const std::string& name,
                                                     const std::vector<int64_t>& shape) const {
  return HfDense(*hf_, name, shape);
}

absl::StatusOr<BlockWeights> GptqStream::LoadBlock(int i) const {
  if (i < 0 || i >= config_.n_layers) {
    return absl::OutOfRangeError(absl::StrCat("block ", i, " of ", config_.n_layers));
  }
  BlockWeights w;
  w.layer = i;
  w.act_fp8 = packing_.fp8;
  std::map<std::string, std::vector<float>> stored;  // a fused module once per block
  for (const BlockPart& t : LayerTensors(config_, i, &w)) {
    const std::vector<int64_t>& shape = t.shape;
    const StoredPlace place =
        StoredPlaceOf(config_, absl::StrCat("model.layers.", i, ".", t.suffix), shape);
    const std::string module(absl::StripSuffix(place.name, ".weight"));
    if (packing_.act && IsPacked(module)) w.act_quant |= ActQuantBit(w, t.tensor);
    auto it = stored.find(place.name);
    if (it == stored.end()) {
      absl::StatusOr<std::vector<float>> values =
          IsPacked(module)
              ? Dequantize(module, place.shape[0], place.shape.size() == 2 ? place.shape[1] : 1)
              : Dense(place.name, place.shape);
      RETURN_IF_ERROR(values.status());
      it = stored.emplace(place.name, std::move(*values)).first;
    }
    const int64_t cols = shape.size() == 2 ? shape[1] : 1;
    const auto first = it->second.begin() + place.first_row * cols;
    *t.tensor = Tensor::Owned(shape, std::vector<float>(first, first + shape[0] * cols));
  }
  return w;
}

void GptqStream::ReleaseBlock(int i) const {
  const std::string prefix = absl::StrCat("model.layers.", i, ".");
  for (const auto& [name, ref] : hf_->tensors()) {
    if (absl::StartsWith(name, prefix)) ref.shard->file->ReleaseBytes(*ref.info);
  }
}

absl::StatusOr<Tensor> HfLoadTensor(const HfModel& hf, const std::string& name) {
  const HfModel::TensorRef ref = hf.Find(name);
  if (ref.info == nullptr) {
    return absl::NotFoundError(absl::StrCat(hf.dir(), ": tensor \"", name, "\" is missing"));
  }
  ASSIGN_OR_RETURN(std::vector<float> values, HfDense(hf, name, ref.info->shape));
  return Tensor::Owned(ref.info->shape, std::move(values));
}

absl::Status HfReadRows(const HfModel& hf, const std::string& name, int64_t row, int64_t n,
                        float* out) {
  const HfModel::TensorRef ref = hf.Find(name);
  if (ref.info == nullptr || ref.info->shape.size() != 2 || !IsConvertibleFloat(ref.info->dtype)) {
    return absl::NotFoundError(absl::StrCat(hf.dir(), ": no 2-D float tensor \"", name, "\""));
  }
  const int64_t rows = ref.info->shape[0], cols = ref.info->shape[1];
  if (row < 0 || n < 0 || row + n > rows) {
    return absl::OutOfRangeError(
        absl::StrCat(name, ": rows [", row, ", ", row + n, ") outside [0, ", rows, ")"));
  }
  const size_t esize = DTypeSize(ref.info->dtype);
  const absl::string_view bytes = ref.shard->file->Bytes(*ref.info);
  return BytesToFloats(ref.info->dtype, bytes.data() + static_cast<size_t>(row * cols) * esize,
                       static_cast<size_t>(n * cols), out);
}

void HfRelease(const HfModel& hf, const std::string& name) {
  const HfModel::TensorRef ref = hf.Find(name);
  if (ref.info != nullptr) ref.shard->file->ReleaseBytes(*ref.info);
}

absl::StatusOr<Tensor> GptqStream::LoadTensor(const std::string& name) const {
  return HfLoadTensor(*hf_, name);
}

absl::Status GptqStream::ReadRows(const std::string& name, int64_t row, int64_t n,
                                  float* out) const {
  return HfReadRows(*hf_, name, row, n, out);
}

void GptqStream::Release(const std::string& name) const { HfRelease(*hf_, name); }

const std::string& GptqStream::path() const { return hf_->dir(); }

uint64_t GptqStream::weight_bytes() const { return hf_->total_tensor_bytes(); }

}  // namespace compressd::engine
