// The planning half of WriteGgufLlama (gguf_export_plan.cc): which tensors a
// model has in GGUF order, and the ggml type each is written as. Internal;
// stateless and thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine::gguf_export_internal {

struct TensorPlan {
  GgufTensorReport report;                 // names, types, bytes
  const engine::Tensor* tensor = nullptr;  // the model's tensor (null: `generated`)
  std::vector<float> generated;            // rope_freqs.weight's values
  std::vector<int64_t> shape;              // HF shape ([out, in] or [n])
  engine::RowPermutation perm = engine::RowPermutation::kNone;
  const engine::QuantizedTensor* grid = nullptr;  // set when report.exact_from_grid

  bool is_matrix() const { return shape.size() == 2; }
  int64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  int64_t row_len() const { return shape.back(); }
  // ggml dims: innermost first.
  std::vector<int64_t> ne() const { return std::vector<int64_t>(shape.rbegin(), shape.rend()); }
};

// Every tensor of `model` in GGUF order, shapes checked against its config
// (INVALID_ARGUMENT naming the tensor), types not yet chosen.
// UNIMPLEMENTED for rope scaling other than none or llama3.
absl::StatusOr<std::vector<TensorPlan>> ListTensors(const engine::LlamaModel& model);

// Chooses each plan's type (see gguf_export.h) and byte size. INVALID_ARGUMENT
// for bad type names, targets or quantized names that are not 2-D weights of
// the model, and quantized tensors that do not match their weights.
absl::Status ChooseTypes(const GgufExportOptions& options,
                         const std::map<std::string, const engine::QuantizedTensor*>& quantized,
                         std::vector<TensorPlan>* plans);

// The llama_ftype (general.file_type) of the type holding the most 2-D weights.
uint32_t LlamaFileType(const std::vector<TensorPlan>& plans);

}  // namespace compressd::engine::gguf_export_internal
