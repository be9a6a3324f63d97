#include "workers/engine/export/packed_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"
#include "workers/engine/export/gptq_export_internal.h"
#include "workers/engine/model/dtype.h"

namespace compressd::engine::gptq_export_internal {

void PutBits(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t value) {
  const int64_t bit = index * bits;
  const int64_t word = bit / 32;
  const int shift = static_cast<int>(bit % 32);
  words[word * stride] |= value << shift;
  if (shift + bits > 32) {
    words[(word + 1) * stride] |= value >> (32 - shift);
  }
}

absl::Status PackCodes(const QuantizedTensor& q, int bits, uint32_t* words, int64_t row_step,
                       int64_t stride, absl::string_view name) {
  const int maxq = MaxQ(bits);
  for (int64_t r = 0; r < q.rows; ++r) {
    const uint8_t* codes = q.codes.data() + r * q.cols;
    for (int64_t c = 0; c < q.cols; ++c) {
      if (codes[c] > maxq) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": code ", int{codes[c]}, " at [", r,
                                                       ", ", c, "] exceeds ", maxq, " for ", bits,
                                                       " bits"));
      }
      PutBits(words + r * row_step, stride, c, bits, codes[c]);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> ScaleToHalf(const QuantizedTensor& q, int64_t r, int64_t g,
                                     absl::string_view name) {
  const float s = q.scales[r * q.groups + g];
  const uint16_t h = FloatToHalfRef(s);
  const bool overflow = (h & 0x7C00u) == 0x7C00u;
  const bool underflow = s != 0.0f && (h & 0x7FFFu) == 0;
  if (!std::isfinite(s) || overflow || underflow) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": scale at row ", r, ", group ", g, " = ", s,
                     " is not representable as a finite nonzero float16"));
  }
  return h;
}

std::vector<TensorToWrite> PackedLayer::Tensors(const std::string& module) const {
  return layout == PackedLayout::kGptq ? PackedTensors(module, gptq)
                                       : CompressedTensors(module, ct);
}

const char* LayoutName(PackedLayout layout) {
  return layout == PackedLayout::kGptq ? "gptq" : "compressed_tensors";
}

absl::Status CheckPackable(const LlamaConfig& config, PackedLayout layout, bool symmetric) {
  if (layout == PackedLayout::kCompressedTensors && config.n_experts > 0 && !symmetric) {
    return absl::InvalidArgumentError(absl::StrCat(
        "compressed_tensors output: a mixture of experts (", config.n_experts,
        " experts per layer) needs a symmetric grid (transformers' loader of per-expert "
        "pack-quantized weights reads no zero points); drop asymmetric, or write gptq or gguf"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PackedLayer> PackLayer(const QuantizedTensor& q, const GptqExportOptions& options,
                                      absl::string_view name) {
  PackedLayer p;
  p.layout = options.layout;
  if (options.layout == PackedLayout::kGptq && q.grid.fp8) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": an fp8 (E4M3) grid has no GPTQ layout: write compressed_tensors"));
  }
  if (options.layout == PackedLayout::kGptq) {
    ASSIGN_OR_RETURN(p.gptq, PackGptqTensor(q, options.format, name));
  } else {
    ASSIGN_OR_RETURN(p.ct, PackCompressedTensor(q, name, options.activation_bits > 0));
  }
  return p;
}

PackedLayer LayerShape(PackedLayout layout, int64_t out, int64_t in, const QuantGrid& grid,
                       bool int_quantized) {
  PackedLayer p;
  p.layout = layout;
  p.gptq.in = in;
  p.gptq.out = out;
  p.gptq.groups = GroupCount(grid, in);
  p.gptq.bits = grid.bits;
  p.ct = CtShape(out, in, grid, int_quantized);
  return p;
}

double LayerMaxAbsDiff(const QuantizedTensor& q, const PackedLayer& p, const float* w) {
  return p.layout == PackedLayout::kGptq ? MaxAbsDiff(q, p.gptq.scales.data(), true, w)
                                         : MaxAbsDiff(q, p.ct.scale.data(), false, w);
}

absl::StatusOr<std::string> PackedConfigJson(const LlamaConfig& config, bool tied,
                                             const QuantGrid& grid, bool desc_act,
                                             const std::vector<std::set<std::string>>& per_block,
                                             const std::vector<std::set<std::string>>& present,
                                             const GptqExportOptions& options) {
  ASSIGN_OR_RETURN(const nlohmann::json modules, BlockModules(per_block, present));
  if (options.layout == PackedLayout::kGptq) {
    return GptqConfigJson(config, tied, grid, desc_act, modules, options);
  }
  // Every block quantizes the same projections (BlockModules), so the dense
  // ones are ignored by pattern, in every block.
  std::set<std::string> quantized, dense;
  for (const auto& b : per_block) quantized.insert(b.begin(), b.end());
  for (const auto& b : present) {
    for (const std::string& m : b) {
      if (!quantized.count(m)) dense.insert(m);
    }
  }
  std::vector<std::string> ignore = {"lm_head"};
  if (config.n_experts > 0) {  // the routers, Linear modules the job never quantizes
    ignore.push_back("re:.*\\.gate$");
    ignore.push_back("re:.*\\.shared_expert_gate$");
  }
  for (const std::string& m : dense) {
    ignore.push_back(absl::StrCat("re:.*\\.", absl::StrReplaceAll(m, {{".", "\\."}}), "$"));
  }
  return CompressedTensorsConfigJson(config, tied, grid, ignore, options.activation_bits);
}

}  // namespace compressd::engine::gptq_export_internal
