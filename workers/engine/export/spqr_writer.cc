// Writing the "spqr" output; see spqr_writer.h.
#include "workers/engine/export/spqr_writer.h"

#include <deque>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/spqr.h"
#include "workers/engine/export/fused_export.h"
#include "workers/engine/export/gptq_export_internal.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/spqr_format.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Bytes(const void* data, size_t n) {
  return std::string(static_cast<const char*>(data), n);
}

std::string Halves(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  FloatToHalf(v.data(), h.data(), v.size());
  return Bytes(h.data(), h.size() * 2);
}

// Indices as U16 or I32 (spqr_format.h: U16 up to 65536 inputs).
std::string IndexBytes(const std::vector<int32_t>& v, bool narrow) {
  if (!narrow) return Bytes(v.data(), v.size() * 4);
  std::vector<uint16_t> n(v.begin(), v.end());
  return Bytes(n.data(), n.size() * 2);
}

// The parts of one SpQR module in SpqrPartSpecs' order.
std::vector<std::string> EncodeParts(const QuantizedTensor& q) {
  const SpqrParts& p = *q.spqr;
  std::vector<uint8_t> sweep(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) sweep[r * q.cols + c] = q.codes[r * q.cols + p.perm[c]];
  }
  const bool narrow = SpqrNarrowIndex(q.cols);
  const int64_t stats = static_cast<int64_t>(p.scale_codes.size());
  return {PackBits(sweep.data(), static_cast<int64_t>(sweep.size()), q.grid.bits),
          IndexBytes(p.perm, narrow),
          PackBits(p.scale_codes.data(), stats, p.stat_bits),
          PackBits(p.zero_codes.data(), stats, p.stat_bits),
          Halves(p.scale_stats),
          Halves(p.zero_stats),
          Bytes(p.outlier_rows.data(), p.outlier_rows.size() * 4),
          IndexBytes(p.outlier_cols, narrow),
          Halves(p.outlier_values)};
}

SpqrModuleMeta MetaOf(const QuantizedTensor& q) {
  return SpqrModuleMeta{q.grid.bits,
                        q.grid.group_size,
                        q.spqr->stat_bits,
                        q.spqr->stat_group,
                        q.rows,
                        q.cols,
                        static_cast<int64_t>(q.spqr->outlier_cols.size())};
}

}  // namespace

absl::Status CheckSpqrExportable(const LlamaConfig& config,
                                 const std::vector<int64_t>& stat_groups) {
  RETURN_IF_ERROR(CheckHfExportable(config));
  if (!config.fused_projections || config.n_layers == 0) return absl::OkStatus();
  for (const NamedShape& t : ConfigShapes(config)) {
    if (!absl::StartsWith(t.name, "model.layers.0.") || t.shape.size() != 2) continue;
    const StoredPlace place = StoredPlaceOf(config, t.name, t.shape);
    if (place.name == t.name) continue;
    for (const int64_t g : stat_groups) {
      if (g > 0 && t.shape[0] % g != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("spqr output: ", t.name, " (stored fused in ", place.name, ") has ",
                         t.shape[0], " rows, not a multiple of spqr.stat_group ", g,
                         " (a statistics group would span two parts of the fused module)"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SpqrWriter>> SpqrWriter::Create(const LlamaConfig& config,
                                                               const std::string& out_dir) {
  RETURN_IF_ERROR(CheckHfExportable(config));
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "blocks", ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, "/blocks: mkdir: ", ec.message()));
  std::vector<TensorSpec> outside;
  for (const NamedShape& t : ConfigShapes(config)) {
    if (!absl::StartsWith(t.name, "model.layers."))
      outside.push_back({t.name, DType::kF16, t.shape});
  }
  ASSIGN_OR_RETURN(
      std::unique_ptr<ShardedSafetensorsWriter> writer,
      ShardedSafetensorsWriter::Create(out_dir, std::move(outside), {{"format", "pt"}}));
  return std::unique_ptr<SpqrWriter>(new SpqrWriter(config, out_dir, std::move(writer)));
}

absl::Status SpqrWriter::WriteBlock(
    int block, const std::vector<NamedTensor>& tensors,
    const std::map<std::string, const QuantizedTensor*>& quantized) {
  if (block != next_block_) {
    return absl::FailedPreconditionError(
        absl::StrCat("spqr output: block ", block, " written before block ", next_block_));
  }
  // As the checkpoint stores them: Phi-3's q/k/v and gate/up as one module each.
  ASSIGN_OR_RETURN(const StoredTensors stored, FuseForExport(config_, tensors, quantized));
  std::deque<std::string> storage;
  std::vector<TensorToWrite> out;
  std::map<std::string, std::string> metadata;
  for (const NamedTensor& t : stored.tensors) {
    auto it = stored.quantized.find(t.name);
    if (it != stored.quantized.end() && it->second->spqr) {
      const QuantizedTensor& q = *it->second;
      const std::string module(absl::StripSuffix(t.name, ".weight"));
      const SpqrModuleMeta meta = MetaOf(q);
      metadata[module] = SpqrMetaJson(meta);
      std::vector<std::string> parts = EncodeParts(q);
      const std::vector<SpqrPartSpec> specs = SpqrPartSpecs(module, meta);
      for (size_t k = 0; k < specs.size(); ++k) {
        out.push_back({specs[k].name, specs[k].dtype, specs[k].shape,
                       storage.emplace_back(std::move(parts[k]))});
      }
      ++stats_.spqr_tensors;
      stats_.outliers += meta.outliers;
      stats_.spqr_params += static_cast<uint64_t>(q.rows * q.cols);
      stats_.spqr_bits += SpqrStoredBits(q);
      continue;
    }
    ASSIGN_OR_RETURN(const std::vector<uint16_t> h,
                     gptq_export_internal::DenseF16(t.tensor->data, t.tensor->numel(), t.name));
    out.push_back({t.name, DType::kF16, t.tensor->shape,
                   storage.emplace_back(Bytes(h.data(), h.size() * 2))});
    ++stats_.dense_tensors;
  }
  for (const TensorToWrite& t : out) stats_.file_bytes += t.bytes.size();
  RETURN_IF_ERROR(WriteSafetensors((fs::path(out_dir_) / SpqrBlockFile(block)).string(),
                                   std::move(out), metadata));
  ++next_block_;
  return absl::OkStatus();
}

absl::Status SpqrWriter::WriteDense(const std::string& name, uint64_t first, const float* data,
                                    size_t n) {
  ASSIGN_OR_RETURN(const std::vector<uint16_t> h, gptq_export_internal::DenseF16(data, n, name));
  stats_.file_bytes += h.size() * 2;
  return outside_->WritePart(name, first * sizeof(uint16_t), Bytes(h.data(), h.size() * 2));
}

absl::Status SpqrWriter::Finish() {
  if (next_block_ != config_.n_layers) {
    return absl::FailedPreconditionError(
        absl::StrCat("spqr output: ", next_block_, " of ", config_.n_layers, " blocks written"));
  }
  RETURN_IF_ERROR(outside_->Commit());
  json config = json::parse(HfLlamaConfigJson(config_, config_.tie_word_embeddings));
  config["quantization_config"] = {
      {"quant_method", kSpqrQuantMethod},
      {"format_version", kSpqrFormatVersion},
      {"blocks", "blocks/block-%05d.safetensors"},
      {"spqr_modules", stats_.spqr_tensors},
      {"outliers", stats_.outliers},
      {"bits_per_parameter",
       stats_.spqr_params > 0 ? static_cast<double>(stats_.spqr_bits) / stats_.spqr_params : 0.0}};
  return WriteFileAtomically((fs::path(out_dir_) / "config.json").string(), config.dump(2));
}

}  // namespace compressd::engine
