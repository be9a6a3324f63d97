// One quantized layer in the packed layout a writer was asked for (GPTQ's or
// compressed-tensors'), and that layout's config.json: what lets
// WriteGptqLlama and GptqStreamWriter write either checkpoint. Internal;
// stateless, thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/export/compressed_tensors_export.h"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/safetensors_writer.h"

namespace compressd::engine::gptq_export_internal {

struct PackedLayer {
  PackedLayout layout = PackedLayout::kGptq;
  GptqPackedTensor gptq;  // kGptq
  CtPackedTensor ct;      // kCompressedTensors
  // Groups in sweep order (GPTQ's g_idx differs from i / group_size).
  bool act_order() const { return layout == PackedLayout::kGptq && gptq.act_order; }
  // The layer's tensors under `module` ("model.layers.0.self_attn.q_proj"),
  // viewing this layer's bytes.
  std::vector<TensorToWrite> Tensors(const std::string& module) const;
};

// "gptq" or "compressed_tensors": the recipe's output.format.
const char* LayoutName(PackedLayout layout);

// INVALID_ARGUMENT when `config` quantized on a `symmetric` or asymmetric
// grid cannot be written in `layout`: a mixture of experts' asymmetric
// experts in compressed-tensors (transformers' loader for per-expert
// pack-quantized weights reads no zero points).
absl::Status CheckPackable(const LlamaConfig& config, PackedLayout layout, bool symmetric);

// Packs q (PackGptqTensor or PackCompressedTensor).
absl::StatusOr<PackedLayer> PackLayer(const QuantizedTensor& q, const GptqExportOptions& options,
                                      absl::string_view name);
// The names, dtypes and shapes of an [out, in] layer on `grid`, no bytes
// (int_quantized: compressed-tensors' W8A8 layout).
PackedLayer LayerShape(PackedLayout layout, int64_t out, int64_t in, const QuantGrid& grid,
                       bool int_quantized = false);
// max |float16(scale) * (code - zero) - w| over one layer.
double LayerMaxAbsDiff(const QuantizedTensor& q, const PackedLayer& p, const float* w);

// config.json of the layout. per_block[b]: the projections block b
// quantizes; present[b]: every projection it has (BlockModules' checks).
absl::StatusOr<std::string> PackedConfigJson(const LlamaConfig& config, bool tied,
                                             const QuantGrid& grid, bool desc_act,
                                             const std::vector<std::set<std::string>>& per_block,
                                             const std::vector<std::set<std::string>>& present,
                                             const GptqExportOptions& options);

}  // namespace compressd::engine::gptq_export_internal
