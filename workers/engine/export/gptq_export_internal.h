// The pieces of WriteGptqLlama (gptq_export.cc) that the block-at-a-time
// writer (gptq_stream_writer.h) shares. Internal; stateless, thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/gptq_export.h"
#include "workers/engine/export/safetensors_writer.h"

namespace compressd::engine::gptq_export_internal {

// Splits "model.layers.N.<projection>.weight" into N and the projection;
// false for anything that is not a decoder-block projection.
bool ParseBlockProjection(const std::string& name, int64_t* layer, std::string* projection);
bool SameGrid(const QuantGrid& a, const QuantGrid& b);
// Writes `value` (< 2^bits) as element `index` of a little-endian bit stream
// of `bits`-bit fields held in 32-bit words words[0], words[stride], ...; a
// field that crosses a word boundary continues in the next word's low bits.
void PutBits(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t value);
// Every row's codes of q as `bits`-bit fields: row r's stream starts at
// words + r * row_step, its words `stride` apart (PutBits). INVALID_ARGUMENT
// naming `name` and the position of a code above 2^bits - 1.
absl::Status PackCodes(const QuantizedTensor& q, int bits, uint32_t* words, int64_t row_step,
                       int64_t stride, absl::string_view name);
// Scale (r, g) of q as float16; INVALID_ARGUMENT naming `name`, the row and
// the group when it is not finite or overflows/underflows float16.
absl::StatusOr<uint16_t> ScaleToHalf(const QuantizedTensor& q, int64_t r, int64_t g,
                                     absl::string_view name);
std::string GridText(const QuantGrid& g);
// modules_in_block_to_quantize: the projections any block quantizes
// (per_block[b]), in GPTQ's sequential groups. INVALID_ARGUMENT naming the
// module when a block has one of them (present[b]) but does not quantize it.
absl::StatusOr<nlohmann::json> BlockModules(const std::vector<std::set<std::string>>& per_block,
                                            const std::vector<std::set<std::string>>& present);
// config.json with its quantization_config.
std::string GptqConfigJson(const LlamaConfig& model_config, bool tied, const QuantGrid& grid,
                           bool desc_act, const nlohmann::json& modules,
                           const GptqExportOptions& options);
// max |float16(scale) * (code - zero) - w| over one layer, its float16
// scales [rows, groups], or [groups, rows] when `transposed` (GPTQ's).
double MaxAbsDiff(const QuantizedTensor& q, const uint16_t* half_scales, bool transposed,
                  const float* w);
// n floats as float16; INVALID_ARGUMENT naming `name` and the element for a
// finite value that overflows.
absl::StatusOr<std::vector<uint16_t>> DenseF16(const float* data, size_t n,
                                               absl::string_view name);
// The four tensors of packed layer `module` ("model.layers.0.self_attn.q_proj"):
// qweight, qzeros, scales, g_idx, viewing p's bytes.
std::vector<TensorToWrite> PackedTensors(const std::string& module, const GptqPackedTensor& p);

}  // namespace compressd::engine::gptq_export_internal
