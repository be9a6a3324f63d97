#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/gptq_stream_writer.h"

#include <filesystem>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "workers/engine/export/fused_export.h"
#include "workers/engine/export/gptq_export_internal.h"
#include "workers/engine/export/packed_layer.h"

namespace compressd::engine {

using namespace gptq_export_internal;  // NOLINT: the shared pieces of the GPTQ writer

namespace {

absl::string_view HalfBytes(const std::vector<uint16_t>& h) {
  return absl::string_view(reinterpret_cast<const char*>(h.data()), h.size() * sizeof(uint16_t));
}

// What a projection does in its block, whichever MLP holds it: an expert's
// (or the shared expert's) gate/up/down is the dense MLP's.
std::string Role(const std::string& projection) {
  if (absl::StartsWith(projection, "self_attn.")) return projection;
  for (const auto& [a, b, role] : {std::tuple{"gate_proj", "w1", "mlp.gate_proj"},
                                   std::tuple{"up_proj", "w3", "mlp.up_proj"},
                                   std::tuple{"down_proj", "w2", "mlp.down_proj"}}) {
    if (absl::EndsWith(projection, a) || absl::EndsWith(projection, absl::StrCat(".", b))) {
      return role;
    }
  }
  return projection;  // fused (gate_up_proj, qkv_proj)
}

}  // namespace

absl::Status GptqStreamWriter::Start(const std::vector<NamedTensor>& tensors,
                                     const std::map<std::string, const QuantizedTensor*>& quantized) {
  RETURN_IF_ERROR(CheckHfExportable(config_));
  // The projections block 0 quantizes, and one packed example of each (its
  // shapes are every block's).
  std::map<std::string, PackedLayer> example;
  for (const NamedTensor& t : tensors) {
    auto it = quantized.find(t.name);
    int64_t layer = 0;
    std::string projection;
    if (it == quantized.end() || !ParseBlockProjection(t.name, &layer, &projection)) continue;
    if (grid_from_.empty()) {
      grid_ = it->second->grid;
      grid_from_ = t.name;
      if (!grid_.symmetric) options_.format = GptqCheckpointFormat::kGptqV2;
    }
    ASSIGN_OR_RETURN(example[projection], PackLayer(*it->second, options_, t.name));
    projections_.insert(projection);
    roles_.insert(Role(projection));
  }
  for (const NamedTensor& t : tensors) {
    int64_t layer = 0;
    std::string projection;
    if (ParseBlockProjection(t.name, &layer, &projection)) block0_.insert(projection);
  }
  RETURN_IF_ERROR(CheckPackable(config_, options_.layout, grid_.symmetric));
  if (projections_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        LayoutName(options_.layout),
        " output: block 0 has no quantized projection; the checkpoint's quantization_config "
        "applies to every block, so block 0 must quantize what the others do"));
  }
  std::vector<TensorSpec> specs;
  for (const NamedShape& s : StoredShapes(config_)) {
    int64_t layer = 0;
    std::string projection;
    if (ParseBlockProjection(s.name, &layer, &projection) && Packed(projection)) {
      const std::string module = s.name.substr(0, s.name.size() - std::string(".weight").size());
      // The shapes of a layer block 0 does not have (Qwen-MoE's dense MLPs).
      const PackedLayer shape =
          LayerShape(options_.layout, s.shape[0], s.shape[1], grid_, options_.activation_bits > 0);
      auto it = example.find(projection);
      for (const TensorToWrite& part : (it != example.end() ? it->second : shape).Tensors(module)) {
        specs.push_back({part.name, part.dtype, part.shape});
      }
    } else {
      specs.push_back({s.name, DType::kF16, s.shape});
    }
  }
  ASSIGN_OR_RETURN(writer_, ShardedSafetensorsWriter::Create(out_dir_, std::move(specs),
                                                             {{"format", "pt"}}, max_shard_bytes_));
  return absl::OkStatus();
}

bool GptqStreamWriter::Packed(const std::string& projection) const {
  return block0_.count(projection) ? projections_.count(projection) > 0
                                   : roles_.count(Role(projection)) > 0;
}

absl::Status GptqStreamWriter::WritePacked(const NamedTensor& t, const QuantizedTensor& q,
                                           int64_t block, const std::string& projection) {
  if (!Packed(projection)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.layers.", block, ".", projection, " is quantized but model.layers.0.",
        block0_.count(projection) ? projection : Role(projection),
        " is not: GPTQ's modules_in_block_to_quantize applies to every block, so all blocks "
        "must quantize the same projections"));
  }
  if (!SameGrid(q.grid, grid_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        t.name, ": grid (", GridText(q.grid), ") differs from ", grid_from_, " (",
        GridText(grid_), "): the checkpoint has one quantization_config"));
  }
  ASSIGN_OR_RETURN(const PackedLayer p, PackLayer(q, options_, t.name));
  stats_.desc_act = stats_.desc_act || p.act_order();
  stats_.max_abs_diff = std::max(stats_.max_abs_diff, LayerMaxAbsDiff(q, p, t.tensor->data));
  ++stats_.quantized_tensors;
  const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
  for (const TensorToWrite& part : p.Tensors(module)) {
    RETURN_IF_ERROR(writer_->Write(part.name, part.bytes));
  }
  return absl::OkStatus();
}

absl::Status GptqStreamWriter::WriteBlock(
    int block, const std::vector<NamedTensor>& block_tensors,
    const std::map<std::string, const QuantizedTensor*>& block_quantized) {
  // As the checkpoint stores them (Phi-3's fused projections).
  ASSIGN_OR_RETURN(const StoredTensors stored,
                   FuseForExport(config_, block_tensors, block_quantized));
  const std::vector<NamedTensor>& tensors = stored.tensors;
  const std::map<std::string, const QuantizedTensor*>& quantized = stored.quantized;
  if (writer_ == nullptr) RETURN_IF_ERROR(Start(tensors, quantized));
  for (const NamedTensor& t : tensors) {
    int64_t layer = 0;
    std::string projection;
    const bool is_projection = ParseBlockProjection(t.name, &layer, &projection);
    auto it = quantized.find(t.name);
    if (it != quantized.end()) {
      if (!is_projection) {
        return absl::InvalidArgumentError(
            absl::StrCat(t.name, ": ", LayoutName(options_.layout),
                         " output quantizes only decoder-block projections "
                         "(model.layers.N.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj)"));
      }
      RETURN_IF_ERROR(WritePacked(t, *it->second, block, projection));
      quantized_.insert(projection);
      present_.insert(projection);
      continue;
    }
    if (is_projection) present_.insert(projection);
    if (is_projection && Packed(projection)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers.", block, ".", projection, " is not quantized but model.layers.0.",
          block0_.count(projection) ? projection : Role(projection),
          " is: GPTQ's modules_in_block_to_quantize applies to every block, so all "
          "blocks must quantize the same projections"));
    }
    ASSIGN_OR_RETURN(const std::vector<uint16_t> h,
                     DenseF16(t.tensor->data, static_cast<size_t>(t.tensor->numel()), t.name));
    RETURN_IF_ERROR(writer_->Write(t.name, HalfBytes(h)));
    ++stats_.dense_tensors;
  }
  return absl::OkStatus();
}

absl::Status GptqStreamWriter::WriteDense(const std::string& name, uint64_t first,
                                          const float* data, size_t n) {
  if (writer_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(LayoutName(options_.layout), " output: block 0 must be written first"));
  }
  ASSIGN_OR_RETURN(const std::vector<uint16_t> h, DenseF16(data, n, name));
  RETURN_IF_ERROR(writer_->WritePart(name, first * sizeof(uint16_t), HalfBytes(h)));
  if (dense_outside_.insert(name).second) ++stats_.dense_tensors;
  return absl::OkStatus();
}

absl::Status GptqStreamWriter::Finish() {
  if (writer_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(LayoutName(options_.layout), " output: no quantized tensors to write"));
  }
  RETURN_IF_ERROR(writer_->Commit());
  ASSIGN_OR_RETURN(const std::string config,
                   PackedConfigJson(config_, config_.tie_word_embeddings, grid_, stats_.desc_act,
                                    {quantized_}, {present_}, options_));
  return WriteFileAtomically((std::filesystem::path(out_dir_) / "config.json").string(), config);
}

}  // namespace compressd::engine
