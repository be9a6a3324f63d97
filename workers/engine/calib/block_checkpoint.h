// One block's result of the calibration pipeline, as the bytes stored in a
// CheckpointStore ("calib/block-0007"): the block's compressed weights
// (float32, exactly as computed), the quantized form of those that were
// quantized (codes, scales, zeros, group index), the per-layer summary
// entries and the block's phase timings, plus a fingerprint of everything the
// result depends on (model, recipe, calibration tokens, threads): a
// checkpoint whose fingerprint differs is ignored.
//
// Layout: 8-byte little-endian length of a JSON header, the header (arrays:
// name, kind f32 | u8 | i32, byte offset and element count into the data
// section), then the data section. Stateless.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine {

struct BlockCheckpoint {
  std::string fingerprint;
  int block = 0;
  std::map<std::string, engine::Tensor> weights;               // HF tensor name -> compressed
  std::map<std::string, engine::QuantizedTensor> quantized;    // HF tensor name -> codes
  nlohmann::json layers = nlohmann::json::array();             // summary entries
  nlohmann::json timings = nlohmann::json::object();           // seconds by phase
  nlohmann::json awq = nlohmann::json::array();                // AWQ's entries (calib/awq.h)
  nlohmann::json smoothquant = nlohmann::json::array();        // calib/smoothquant.h's
};

std::string EncodeBlockCheckpoint(const BlockCheckpoint& checkpoint);
// DATA_LOSS naming `name` for truncated or inconsistent bytes.
absl::StatusOr<BlockCheckpoint> DecodeBlockCheckpoint(const std::string& bytes,
                                                      const std::string& name);

}  // namespace compressd::engine
