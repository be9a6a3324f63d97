// GPTQ checkpoint writer; see gptq_export.h for the layout.
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/gptq_export_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <regex>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/fused_export.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/packed_layer.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

namespace {

using gptq_export_internal::PackCodes;
using gptq_export_internal::PutBits;
using gptq_export_internal::ScaleToHalf;
namespace fs = std::filesystem;
using engine::QuantGrid;
using engine::QuantizedTensor;
using nlohmann::json;

// The projections of a decoder block, relative to "model.layers.N.", grouped
// in the order GPTQ quantizes them sequentially (q/k/v, o, gate/up, down).
const std::vector<std::vector<std::string>>& BlockProjections() {
  static const auto* kGroups = new std::vector<std::vector<std::string>>{
      {"self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj", "self_attn.qkv_proj"},
      {"self_attn.o_proj"},
      {"mlp.up_proj", "mlp.gate_proj", "mlp.gate_up_proj"},
      {"mlp.down_proj"}};
  return *kGroups;
}

// Which group of BlockProjections a projection belongs to, experts included
// (an expert's gate/up with gate/up, its down with down, as GPTQModel orders
// them); -1 when it is not a block projection.
int ProjectionGroup(const std::string& projection) {
  const auto& groups = BlockProjections();
  for (size_t g = 0; g < groups.size(); ++g) {
    if (std::find(groups[g].begin(), groups[g].end(), projection) != groups[g].end()) {
      return static_cast<int>(g);
    }
  }
  static const std::regex* kExpert = new std::regex(
      R"(((mlp|block_sparse_moe)\.experts\.\d+|mlp\.shared_expert)\.(gate_proj|up_proj|down_proj|w1|w2|w3))");
  std::smatch m;
  if (!std::regex_match(projection, m, *kExpert)) return -1;
  return m[3] == "down_proj" || m[3] == "w2" ? 3 : 2;
}

absl::Status Invalid(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

absl::Status CheckSizes(const QuantizedTensor& q, absl::string_view name) {
  RETURN_IF_ERROR(engine::ValidateGrid(q.grid, name));
  const int bits = q.grid.bits;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    return Invalid(name, absl::StrCat("gptq output supports bits 2, 3, 4, 8, got ", bits));
  }
  if (q.rows <= 0 || q.cols <= 0) {
    return Invalid(name, absl::StrCat("empty shape [", q.rows, ", ", q.cols, "]"));
  }
  if (q.groups != engine::GroupCount(q.grid, q.cols)) {
    return Invalid(
        name, absl::StrCat("groups ", q.groups, " != ", engine::GroupCount(q.grid, q.cols), " for ",
                           q.cols, " inputs and group_size ", q.grid.group_size));
  }
  const size_t n = static_cast<size_t>(q.rows * q.cols);
  const size_t ng = static_cast<size_t>(q.rows * q.groups);
  if (q.codes.size() != n || q.scales.size() != ng || q.zeros.size() != ng ||
      q.group_index.size() != static_cast<size_t>(q.cols)) {
    return Invalid(name, absl::StrCat("codes/scales/zeros/group_index sizes ", q.codes.size(), "/",
                                      q.scales.size(), "/", q.zeros.size(), "/",
                                      q.group_index.size(), " do not match [", q.rows, ", ", q.cols,
                                      "] with ", q.groups, " groups"));
  }
  if (q.grid.group_size > 0 && q.cols % q.grid.group_size != 0) {
    return Invalid(name, absl::StrCat("in_features ", q.cols, " is not a multiple of group_size ",
                                      q.grid.group_size,
                                      ": GPTQ kernels (vLLM, GPTQModel's CPU "
                                      "and CUDA kernels, ExLlama, Marlin) require whole groups"));
  }
  if ((q.cols * bits) % 32 != 0 || (q.rows * bits) % 32 != 0) {
    return Invalid(
        name, absl::StrCat("in_features ", q.cols, " and out_features ", q.rows, " times ", bits,
                           " bits must be multiples of 32 (whole "
                           "int32 words)"));
  }
  return absl::OkStatus();
}

// The stored zero point of (row, group) as an integer, after the checks the
// format needs.
absl::StatusOr<uint32_t> StoredZero(const QuantizedTensor& q, int64_t r, int64_t g,
                                    GptqCheckpointFormat format, absl::string_view name) {
  const float z = q.zeros[r * q.groups + g];
  const int maxq = engine::MaxQ(q.grid.bits);
  const auto where = [&] { return absl::StrCat("zero point at row ", r, ", group ", g, " = "); };
  if (!(z >= 0.0f && z <= static_cast<float>(maxq)) || z != std::nearbyint(z)) {
    return Invalid(name, absl::StrCat(where(), z, " is not an integer in [0, ", maxq, "]"));
  }
  const auto zi = static_cast<uint32_t>(z);
  if (q.grid.symmetric && zi != (1u << (q.grid.bits - 1))) {
    return Invalid(name, absl::StrCat(where(), zi, ", but a symmetric grid (sym=true) has zero ",
                                      1u << (q.grid.bits - 1)));
  }
  if (format == GptqCheckpointFormat::kGptq) {
    if (zi == 0) {
      return Invalid(name, absl::StrCat(where(),
                                        "0, which checkpoint_format \"gptq\" (v1, "
                                        "stores zero - 1) cannot represent; use gptq_v2"));
    }
    return zi - 1;
  }
  return zi;
}

// Scales as float16, transposed to [groups, out].
absl::Status PackScales(const QuantizedTensor& q, absl::string_view name, GptqPackedTensor* p) {
  p->scales.assign(static_cast<size_t>(q.groups * q.rows), 0);
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t g = 0; g < q.groups; ++g) {
      ASSIGN_OR_RETURN(p->scales[g * q.rows + r], ScaleToHalf(q, r, g, name));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace gptq_export_internal {

// Splits "model.layers.N.<projection>.weight" into N and the projection.
bool ParseBlockProjection(const std::string& name, int64_t* layer, std::string* projection) {
  constexpr absl::string_view kPrefix = "model.layers.";
  constexpr absl::string_view kSuffix = ".weight";
  if (!absl::StartsWith(name, kPrefix) || !absl::EndsWith(name, kSuffix)) {
    return false;
  }
  const std::string rest =
      name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || !absl::SimpleAtoi(rest.substr(0, dot), layer)) {
    return false;
  }
  *projection = rest.substr(dot + 1);
  return ProjectionGroup(*projection) >= 0;
}

bool SameGrid(const QuantGrid& a, const QuantGrid& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.symmetric == b.symmetric;
}

std::string GridText(const QuantGrid& g) {
  return absl::StrCat("bits ", g.bits, ", group_size ", g.group_size, ", ",
                      g.symmetric ? "symmetric" : "asymmetric");
}

// INVALID_ARGUMENT unless every block quantizes the same projections as
// block 0; returns that set in modules_in_block_to_quantize's shape.
absl::StatusOr<json> BlockModules(const std::vector<std::set<std::string>>& per_block,
                                  const std::vector<std::set<std::string>>& present) {
  // A module named in modules_in_block_to_quantize is looked up in every
  // block: where a block has it, it must be quantized there. A block without
  // it (Qwen-MoE's dense layers have no experts, its MoE layers no
  // mlp.gate_proj) is fine.
  std::set<std::string> all;
  for (const auto& b : per_block) all.insert(b.begin(), b.end());
  for (size_t b = 0; b < present.size(); ++b) {
    for (const std::string& m : present[b]) {
      const bool quantized = b < per_block.size() && per_block[b].count(m) > 0;
      if (quantized == (all.count(m) > 0)) {
        continue;
      }
      std::string other;
      for (size_t o = 0; o < per_block.size() && other.empty(); ++o) {
        if (per_block[o].count(m)) other = absl::StrCat("model.layers.", o, ".", m);
      }
      return absl::InvalidArgumentError(
          absl::StrCat("model.layers.", b, ".", m, " is not quantized but ", other,
                       " is: GPTQ's modules_in_block_to_quantize applies to every "
                       "block, so all blocks must quantize the same projections"));
    }
  }
  // Each group: its fixed names in BlockProjections' order, then experts.
  json modules = json::array();
  const auto& groups = BlockProjections();
  for (size_t g = 0; g < groups.size(); ++g) {
    json step = json::array();
    for (const std::string& m : groups[g]) {
      if (all.count(m) > 0) {
        step.push_back(m);
      }
    }
    for (const std::string& m : all) {
      const bool fixed = std::find(groups[g].begin(), groups[g].end(), m) != groups[g].end();
      if (!fixed && ProjectionGroup(m) == static_cast<int>(g)) step.push_back(m);
    }
    if (!step.empty()) {
      modules.push_back(std::move(step));
    }
  }
  return modules;
}

std::string GptqConfigJson(const LlamaConfig& model_config, bool tied, const QuantGrid& grid,
                           bool desc_act, const json& modules, const GptqExportOptions& options) {
  json config = json::parse(HfLlamaConfigJson(model_config, tied));
  config["torch_dtype"] = "float16";
  const char* format = options.format == GptqCheckpointFormat::kGptq ? "gptq" : "gptq_v2";
  config["quantization_config"] = {
      {"quant_method", "gptq"},
      {"bits", grid.bits},
      {"group_size", grid.group_size},
      {"desc_act", desc_act},
      {"sym", grid.symmetric},
      {"checkpoint_format", format},
      {"format", format},
      {"true_sequential", options.true_sequential},
      {"damp_percent", options.damp_percent},
      {"static_groups", false},
      {"lm_head", false},
      {"pack_dtype", "int32"},
      {"modules_in_block_to_quantize", modules},
  };
  return config.dump(2) + "\n";
}

double MaxAbsDiff(const QuantizedTensor& q, const uint16_t* half_scales, bool transposed,
                  const float* w) {
  double worst = 0.0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t g = q.group_index[c];
      const double s =
          HalfToFloatRef(half_scales[transposed ? g * q.rows + r : r * q.groups + g]);
      const uint8_t code = q.codes[r * q.cols + c];
      const double v = q.grid.fp8 ? s * Fp8E4m3Value(code)
                                  : s * (static_cast<double>(code) - q.zeros[r * q.groups + g]);
      worst = std::max(worst, std::fabs(v - static_cast<double>(w[r * q.cols + c])));
    }
  }
  return worst;
}

absl::StatusOr<std::vector<uint16_t>> DenseF16(const float* data, size_t n,
                                               absl::string_view name) {
  std::vector<uint16_t> h(n);
  FloatToHalf(data, h.data(), n);
  for (size_t i = 0; i < n; ++i) {
    if ((h[i] & 0x7C00u) == 0x7C00u && std::isfinite(data[i])) {
      return Invalid(name, absl::StrCat("value ", data[i], " at element ", i, " overflows float16"));
    }
  }
  return h;
}

std::vector<TensorToWrite> PackedTensors(const std::string& module, const GptqPackedTensor& k) {
  auto bytes = [](const auto& v) {
    return absl::string_view(reinterpret_cast<const char*>(v.data()),
                             v.size() * sizeof(v.front()));
  };
  return {{module + ".qweight", DType::kI32, {k.in * k.bits / 32, k.out}, bytes(k.qweight)},
          {module + ".qzeros", DType::kI32, {k.groups, k.out * k.bits / 32}, bytes(k.qzeros)},
          {module + ".scales", DType::kF16, {k.groups, k.out}, bytes(k.scales)},
          {module + ".g_idx", DType::kI32, {k.in}, bytes(k.g_idx)}};
}

}  // namespace gptq_export_internal

namespace {

using namespace gptq_export_internal;  // NOLINT: this file's own helpers

template <typename T>
absl::string_view BytesOf(const std::vector<T>& v) {
  return absl::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace

absl::StatusOr<GptqPackedTensor> PackGptqTensor(const QuantizedTensor& q,
                                                GptqCheckpointFormat format,
                                                absl::string_view name) {
  RETURN_IF_ERROR(CheckSizes(q, name));
  GptqPackedTensor p;
  p.in = q.cols;
  p.out = q.rows;
  p.groups = q.groups;
  p.bits = q.grid.bits;
  const int bits = p.bits;
  const int64_t group_size = q.grid.group_size > 0 ? q.grid.group_size : q.cols;

  p.g_idx.assign(q.group_index.begin(), q.group_index.end());
  for (int64_t c = 0; c < q.cols; ++c) {
    const int32_t g = q.group_index[c];
    if (g < 0 || g >= q.groups) {
      return Invalid(name,
                     absl::StrCat("group_index[", c, "] = ", g, " is outside [0, ", q.groups, ")"));
    }
    if (g != c / group_size) {
      p.act_order = true;
    }
  }

  std::vector<uint32_t> qweight(static_cast<size_t>(q.cols * bits / 32 * q.rows), 0);
  RETURN_IF_ERROR(PackCodes(q, bits, qweight.data(), 1, q.rows, name));

  const int64_t zero_words = q.rows * bits / 32;
  std::vector<uint32_t> qzeros(static_cast<size_t>(q.groups * zero_words), 0);
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t g = 0; g < q.groups; ++g) {
      ASSIGN_OR_RETURN(const uint32_t z, StoredZero(q, r, g, format, name));
      PutBits(qzeros.data() + g * zero_words, 1, r, bits, z);
    }
  }
  RETURN_IF_ERROR(PackScales(q, name, &p));

  // The words are bit patterns; int32 is how the checkpoint types them.
  p.qweight.assign(qweight.size(), 0);
  std::memcpy(p.qweight.data(), qweight.data(), qweight.size() * sizeof(uint32_t));
  p.qzeros.assign(qzeros.size(), 0);
  std::memcpy(p.qzeros.data(), qzeros.data(), qzeros.size() * sizeof(uint32_t));
  return p;
}

namespace {

// Names, shapes and one grid, checked in the model's tensor order: the
// projections each block quantizes, and the grid they share.
struct QuantizedLayout {
  std::vector<std::set<std::string>> per_block;
  std::vector<std::set<std::string>> present;  // every projection of each block
  const QuantizedTensor* first = nullptr;
};

absl::StatusOr<QuantizedLayout> CheckQuantized(
    const engine::LlamaModel& model, const std::vector<engine::NamedTensor>& named,
    const std::map<std::string, const QuantizedTensor*>& quantized, PackedLayout packed) {
  QuantizedLayout layout;
  layout.per_block.resize(model.blocks.size());
  layout.present.resize(model.blocks.size());
  std::string first_name;
  std::set<std::string> names;
  for (const engine::NamedTensor& t : named) {
    names.insert(t.name);
    int64_t layer = 0;
    std::string projection;
    const bool is_projection = ParseBlockProjection(t.name, &layer, &projection);
    if (is_projection && layer >= 0 && layer < static_cast<int64_t>(model.blocks.size())) {
      layout.present[static_cast<size_t>(layer)].insert(projection);
    }
    auto it = quantized.find(t.name);
    if (it == quantized.end()) continue;
    const QuantizedTensor& q = *it->second;
    if (!is_projection) {
      return Invalid(t.name, absl::StrCat(LayoutName(packed),
                                          " output quantizes only decoder-block projections "
                                          "(model.layers.N.self_attn.{q,k,v,o}_proj, "
                                          "mlp.{gate,up,down}_proj)"));
    }
    if (q.rows != t.tensor->rows() || q.cols != t.tensor->cols() || t.tensor->shape.size() != 2) {
      return Invalid(t.name, absl::StrCat("quantized shape [", q.rows, ", ", q.cols,
                                          "] differs from the model's [",
                                          absl::StrJoin(t.tensor->shape, ", "), "]"));
    }
    if (layout.first == nullptr) {
      layout.first = &q;
      first_name = t.name;
    } else if (!SameGrid(q.grid, layout.first->grid)) {
      return Invalid(t.name, absl::StrCat("grid (", GridText(q.grid), ") differs from ",
                                          first_name, " (", GridText(layout.first->grid),
                                          "): the checkpoint has one quantization_config"));
    }
    layout.per_block[static_cast<size_t>(layer)].insert(projection);
  }
  for (const auto& [name, q] : quantized) {
    if (names.count(name) == 0) {
      return Invalid(name, "not a weight of the model (or lm_head tied to the embedding)");
    }
  }
  return layout;
}

// The tensors of the checkpoint: packed quantized projections and the rest in
// float16; `packed` and `dense_f16` keep their bytes alive for the write.
absl::StatusOr<std::vector<TensorToWrite>> PackTensors(
    const std::vector<engine::NamedTensor>& named,
    const std::map<std::string, const QuantizedTensor*>& quantized,
    const GptqExportOptions& options, std::deque<PackedLayer>* packed,
    std::deque<std::vector<uint16_t>>* dense_f16, GptqExportStats* stats) {
  std::vector<TensorToWrite> tensors;
  for (const engine::NamedTensor& t : named) {
    auto it = quantized.find(t.name);
    if (it == quantized.end()) {
      ASSIGN_OR_RETURN(std::vector<uint16_t> f16,
                       DenseF16(t.tensor->data, static_cast<size_t>(t.tensor->numel()), t.name));
      const std::vector<uint16_t>& h = dense_f16->emplace_back(std::move(f16));
      tensors.push_back({t.name, DType::kF16, t.tensor->shape, BytesOf(h)});
      ++stats->dense_tensors;
      continue;
    }
    const QuantizedTensor& q = *it->second;
    ASSIGN_OR_RETURN(PackedLayer p, PackLayer(q, options, t.name));
    stats->desc_act = stats->desc_act || p.act_order();
    stats->max_abs_diff = std::max(stats->max_abs_diff, LayerMaxAbsDiff(q, p, t.tensor->data));
    ++stats->quantized_tensors;
    const PackedLayer& k = packed->emplace_back(std::move(p));
    const std::string m = t.name.substr(0, t.name.size() - std::string(".weight").size());
    for (TensorToWrite& part : k.Tensors(m)) tensors.push_back(std::move(part));
  }
  return tensors;
}

}  // namespace

absl::StatusOr<GptqExportStats> WriteGptqLlama(
    engine::LlamaModel& model, const std::map<std::string, const QuantizedTensor*>& model_quantized,
    const std::string& out_dir, const GptqExportOptions& options) {
  if (model_quantized.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(LayoutName(options.layout), " output: no quantized tensors to write"));
  }
  RETURN_IF_ERROR(CheckHfExportable(model.config));
  // As the checkpoint stores them (Phi-3's fused projections).
  ASSIGN_OR_RETURN(const StoredTensors stored,
                   FuseForExport(model.config, engine::NamedTensors(&model), model_quantized));
  const std::vector<engine::NamedTensor>& named = stored.tensors;
  const std::map<std::string, const QuantizedTensor*>& quantized = stored.quantized;
  ASSIGN_OR_RETURN(const QuantizedLayout layout,
                   CheckQuantized(model, named, quantized, options.layout));
  RETURN_IF_ERROR(CheckPackable(model.config, options.layout, layout.first->grid.symmetric));
  GptqExportStats stats;
  std::deque<PackedLayer> packed;
  std::deque<std::vector<uint16_t>> dense_f16;
  ASSIGN_OR_RETURN(std::vector<TensorToWrite> tensors,
                   PackTensors(named, quantized, options, &packed, &dense_f16, &stats));
  ASSIGN_OR_RETURN(const std::string config,
                   PackedConfigJson(model.config, engine::LmHeadIsTied(model), layout.first->grid,
                                    stats.desc_act, layout.per_block, layout.present, options));
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(out_dir, ": mkdir: ", ec.message()));
  }
  RETURN_IF_ERROR(WriteSafetensors((fs::path(out_dir) / "model.safetensors").string(),
                                   std::move(tensors), {{"format", "pt"}}));
  RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "config.json").string(), config));
  return stats;
}

}  // namespace compressd::engine
