// compressed-tensors pack-quantized layers; see compressed_tensors_export.h.
#include "workers/engine/export/compressed_tensors_export.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/gptq_export_internal.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/dtype.h"

namespace compressd::engine {
namespace {

using gptq_export_internal::PackCodes;
using gptq_export_internal::PutBits;
using gptq_export_internal::ScaleToHalf;
using nlohmann::json;

int64_t Words(int64_t n, int bits) { return (n * bits + 31) / 32; }

absl::Status Invalid(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

absl::Status CheckLayer(const QuantizedTensor& q, absl::string_view name) {
  RETURN_IF_ERROR(ValidateGrid(q.grid, name));
  if (q.rows <= 0 || q.cols <= 0 || q.groups != GroupCount(q.grid, q.cols)) {
    return Invalid(name, absl::StrCat("shape [", q.rows, ", ", q.cols, "] with ", q.groups,
                                      " groups does not match group_size ", q.grid.group_size));
  }
  const size_t ng = static_cast<size_t>(q.rows * q.groups);
  if (q.codes.size() != static_cast<size_t>(q.rows * q.cols) || q.scales.size() != ng ||
      q.zeros.size() != ng || q.group_index.size() != static_cast<size_t>(q.cols)) {
    return Invalid(name, "codes/scales/zeros/group_index sizes do not match the shape");
  }
  if (q.grid.group_size > 0 && q.cols % q.grid.group_size != 0) {
    return Invalid(name, absl::StrCat("in_features ", q.cols, " is not a multiple of group_size ",
                                      q.grid.group_size,
                                      ": vLLM's compressed-tensors kernels require whole groups"));
  }
  const int64_t group_size = q.grid.group_size > 0 ? q.grid.group_size : q.cols;
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.group_index[c] != c / group_size) {
      return Invalid(name, absl::StrCat("input ", c, " is in group ", q.group_index[c],
                                        ", not ", c / group_size,
                                        ": compressed_tensors output needs contiguous groups "
                                        "(act-order with static_groups: true, the default)"));
    }
  }
  return absl::OkStatus();
}

// The integer zero point of (r, g), checked as the format needs it.
absl::StatusOr<uint32_t> Zero(const QuantizedTensor& q, int64_t r, int64_t g,
                              absl::string_view name) {
  const float z = q.zeros[r * q.groups + g];
  const int maxq = MaxQ(q.grid.bits);
  if (!(z >= 0.0f && z <= static_cast<float>(maxq)) || z != std::nearbyint(z)) {
    return Invalid(name, absl::StrCat("zero point at row ", r, ", group ", g, " = ", z,
                                      " is not an integer in [0, ", maxq, "]"));
  }
  const auto zi = static_cast<uint32_t>(z);
  if (q.grid.symmetric && zi != (1u << (q.grid.bits - 1))) {
    return Invalid(name, absl::StrCat("zero point at row ", r, ", group ", g, " = ", zi,
                                      ", but a symmetric grid has zero ", 1u << (q.grid.bits - 1)));
  }
  return zi;
}

template <typename T>
absl::string_view BytesOf(const std::vector<T>& v) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// W8A8's int-quantized layer: int8 codes per channel, symmetric.
absl::StatusOr<CtPackedTensor> PackInt8(const QuantizedTensor& q, absl::string_view name) {
  if (q.grid.bits != 8 || q.groups != 1 || !q.grid.symmetric) {
    return Invalid(name, absl::StrCat("W8A8 (int-quantized) needs int8 weights per channel, "
                                      "symmetric; got ",
                                      q.grid.bits, " bits, ", q.groups, " groups per row",
                                      q.grid.symmetric ? "" : ", asymmetric"));
  }
  CtPackedTensor p = CtShape(q.rows, q.cols, q.grid, /*int_quantized=*/true);
  p.scale.assign(static_cast<size_t>(q.rows), 0);
  p.weight.resize(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r) {
    ASSIGN_OR_RETURN(p.scale[r], ScaleToHalf(q, r, 0, name));
    RETURN_IF_ERROR(Zero(q, r, 0, name).status());
    for (int64_t c = 0; c < q.cols; ++c) {
      p.weight[r * q.cols + c] = static_cast<int8_t>(int{q.codes[r * q.cols + c]} - 128);
    }
  }
  return p;
}

// fp8's float-quantized layer: E4M3 bytes per channel, symmetric.
absl::StatusOr<CtPackedTensor> PackFp8(const QuantizedTensor& q, absl::string_view name) {
  CtPackedTensor p = CtShape(q.rows, q.cols, q.grid);
  p.scale.assign(static_cast<size_t>(q.rows), 0);
  p.weight.resize(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r) {
    ASSIGN_OR_RETURN(p.scale[r], ScaleToHalf(q, r, 0, name));
    for (int64_t c = 0; c < q.cols; ++c) {
      const uint8_t code = q.codes[r * q.cols + c];
      if ((code & 0x7F) == 0x7F) {
        return Invalid(name, absl::StrCat("code at [", r, ", ", c, "] is E4M3's NaN"));
      }
      p.weight[r * q.cols + c] = static_cast<int8_t>(code);
    }
  }
  return p;
}

}  // namespace

CtPackedTensor CtShape(int64_t out, int64_t in, const QuantGrid& grid, bool int_quantized) {
  CtPackedTensor p;
  p.fp8 = grid.fp8;
  p.int_quantized = int_quantized || grid.fp8;
  p.in = in;
  p.out = out;
  p.groups = GroupCount(grid, in);
  p.bits = grid.bits;
  p.symmetric = grid.symmetric;
  p.shape = {out, in};
  return p;
}

absl::StatusOr<CtPackedTensor> PackCompressedTensor(const QuantizedTensor& q,
                                                    absl::string_view name, bool int_quantized) {
  RETURN_IF_ERROR(CheckLayer(q, name));
  if (q.grid.fp8) return PackFp8(q, name);
  if (int_quantized) return PackInt8(q, name);
  CtPackedTensor p = CtShape(q.rows, q.cols, q.grid);
  const int bits = p.bits;
  const int64_t row_words = Words(q.cols, bits);
  std::vector<uint32_t> packed(static_cast<size_t>(q.rows * row_words), 0);
  RETURN_IF_ERROR(PackCodes(q, bits, packed.data(), row_words, 1, name));
  std::vector<uint32_t> zeros(q.grid.symmetric ? 0 : Words(q.rows, bits) * q.groups, 0);
  p.scale.assign(static_cast<size_t>(q.rows * q.groups), 0);
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t g = 0; g < q.groups; ++g) {
      ASSIGN_OR_RETURN(p.scale[r * q.groups + g], ScaleToHalf(q, r, g, name));
      ASSIGN_OR_RETURN(const uint32_t z, Zero(q, r, g, name));
      if (!q.grid.symmetric) PutBits(zeros.data() + g, q.groups, r, bits, z);
    }
  }
  // The words are bit patterns; int32 is how the checkpoint types them.
  p.weight_packed.resize(packed.size());
  std::memcpy(p.weight_packed.data(), packed.data(), packed.size() * sizeof(uint32_t));
  p.zero_point.resize(zeros.size());
  std::memcpy(p.zero_point.data(), zeros.data(), zeros.size() * sizeof(uint32_t));
  return p;
}

std::vector<TensorToWrite> CompressedTensors(const std::string& module, const CtPackedTensor& p) {
  if (p.int_quantized) {
    return {
        {module + ".weight", p.fp8 ? DType::kF8E4M3 : DType::kI8, {p.out, p.in}, BytesOf(p.weight)},
        {module + ".weight_scale", DType::kF16, {p.out, 1}, BytesOf(p.scale)}};
  }
  std::vector<TensorToWrite> parts = {
      {module + ".weight_packed", DType::kI32, {p.out, Words(p.in, p.bits)},
       BytesOf(p.weight_packed)},
      {module + ".weight_scale", DType::kF16, {p.out, p.groups}, BytesOf(p.scale)},
      {module + ".weight_shape", DType::kI64, {2}, BytesOf(p.shape)}};
  if (!p.symmetric) {
    parts.insert(parts.begin() + 2, {module + ".weight_zero_point", DType::kI32,
                                     {Words(p.out, p.bits), p.groups}, BytesOf(p.zero_point)});
  }
  return parts;
}

std::string CompressedTensorsConfigJson(const LlamaConfig& model_config, bool tied,
                                        const QuantGrid& grid,
                                        const std::vector<std::string>& ignore,
                                        int activation_bits) {
  json config = json::parse(HfLlamaConfigJson(model_config, tied));
  config["torch_dtype"] = "float16";
  const bool channel = grid.group_size <= 0;
  const char* type = grid.fp8 ? "float" : "int";
  const json weights = {
      {"num_bits", grid.bits},
      {"type", type},
      {"symmetric", grid.symmetric},
      {"strategy", channel ? "channel" : "group"},
      {"group_size", channel ? json(nullptr) : json(grid.group_size)},
      {"block_structure", nullptr},
      {"dynamic", false},
      {"actorder", nullptr},
      {"observer", "minmax"},
      {"observer_kwargs", json::object()},
  };
  const char* format = grid.fp8              ? "float-quantized"
                       : activation_bits > 0 ? "int-quantized"
                                             : "pack-quantized";
  const json activations = activation_bits > 0 ? json{{"num_bits", activation_bits},
                                                      {"type", type},
                                                      {"symmetric", true},
                                                      {"strategy", "token"},
                                                      {"group_size", nullptr},
                                                      {"block_structure", nullptr},
                                                      {"dynamic", true},
                                                      {"actorder", nullptr},
                                                      {"observer", nullptr},
                                                      {"observer_kwargs", json::object()}}
                                               : json(nullptr);
  config["quantization_config"] = {
      {"quant_method", "compressed-tensors"},
      {"format", format},
      {"quantization_status", "compressed"},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}},
          {"weights", weights},
          {"input_activations", activations},
          {"output_activations", nullptr},
          {"format", format}}}}},
      {"ignore", ignore},
      {"kv_cache_scheme", nullptr},
      {"global_compression_ratio", nullptr},
      {"sparsity_config", json::object()},
  };
  return config.dump(2) + "\n";
}

}  // namespace compressd::engine
