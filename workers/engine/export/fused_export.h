// A model's tensors as its family's checkpoint stores them, for the
// exporters: Phi-3 (config.fused_projections) keeps q/k/v and gate/up apart
// in memory but stores each group as one tensor, its parts' rows one after
// another (StoredPlaceOf in llama_names.h). FuseForExport concatenates the
// parts (values, and quantized codes/scales/zeros when the parts are
// quantized, SpQR's parts too) so that every writer handles a fused tensor
// like any other.
// Other families pass through unchanged. Not thread-safe (one per export).
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

struct StoredTensors {
  std::vector<NamedTensor> tensors;  // stored names, in the input's order
  std::map<std::string, const QuantizedTensor*> quantized;  // by stored name
  std::deque<Tensor> fused;                                 // the concatenated values
  std::deque<QuantizedTensor> fused_quantized;              // and codes
};

// `tensors` (all parts of every fused group they touch) and the quantized
// codes of some of them, as stored. INVALID_ARGUMENT when a group is partly
// present, or partly quantized, or its parts' grids or act-order group
// indices differ (one stored tensor has one layout), or SpQR parts differ in
// sweep order or statistics or have rows that are not a multiple of their
// stat_group: the message names the parts and says to target all of them or
// none.
absl::StatusOr<StoredTensors> FuseForExport(
    const LlamaConfig& config, const std::vector<NamedTensor>& tensors,
    const std::map<std::string, const QuantizedTensor*>& quantized);

}  // namespace compressd::engine
