// The planning half of WriteGgufLlama (gguf_export_plan.cc): which tensors a
// model has in GGUF order, and the ggml type each is written as. Internal;
// stateless and thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "common/atomic_file.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/export/gguf_writer.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine::gguf_export_internal {

struct TensorPlan {
  GgufTensorReport report;                 // names, types, bytes
  const engine::Tensor* tensor = nullptr;  // the model's tensor (null: `generated` or `read_rows`)
  std::vector<float> generated;            // rope_freqs.weight's values
  std::vector<int64_t> shape;              // HF shape ([out, in] or [n])
  engine::RowPermutation perm = engine::RowPermutation::kNone;
  const engine::QuantizedTensor* grid = nullptr;  // set when report.exact_from_grid
  // A 2-D tensor without `tensor`: rows [row, row + n) in float32 (HF order).
  std::function<absl::Status(int64_t row, int64_t n, float* out)> read_rows;
  // Several HF tensors as one GGUF tensor (an MoE layer's experts stacked,
  // engine::GgufMoeTensors): the first plan has the whole tensor's ggml dims
  // in `stack_ne` and the number of plans in `stack_size`; the next
  // stack_size - 1 plans have `continues_stack` and are written right after it
  // in the same type. stack_ne alone reshapes one tensor ([1, n] -> [n]).
  std::vector<int64_t> stack_ne;
  int stack_size = 1;
  bool continues_stack = false;
  bool keep_f32 = false;  // a router: F32 unless targeted or quantized, as llama.cpp keeps it
  float add = 0.0f;       // added to a vector's values (Gemma's norms: 1 + w)

  bool is_matrix() const { return shape.size() == 2; }
  int64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  int64_t row_len() const { return shape.back(); }
  // ggml dims: innermost first.
  std::vector<int64_t> ne() const { return std::vector<int64_t>(shape.rbegin(), shape.rend()); }
};

// Every tensor of a model of `config` in GGUF order (the LM head left out
// when `tied`), types not yet chosen; with `model`, pointing at its tensors,
// their shapes checked against the config (INVALID_ARGUMENT naming the
// tensor). UNIMPLEMENTED for rope scaling other than none or llama3.
absl::StatusOr<std::vector<TensorPlan>> ListTensors(const engine::LlamaConfig& config, bool tied,
                                                    const engine::LlamaModel* model);
absl::StatusOr<std::vector<TensorPlan>> ListTensors(const engine::LlamaModel& model);

// The checks of ChooseTypes on names: every target and quantized tensor is a
// 2-D weight among `plans`, each quantized tensor valid and of its shape.
absl::Status CheckNames(const GgufExportOptions& options,
                        const std::map<std::string, const engine::QuantizedTensor*>& quantized,
                        std::vector<TensorPlan>* plans);
// One plan's type and byte size; `q` its grid or null. A grid encoded
// exactly is checked against the plan's tensor (which must be set). `same_as`:
// the type of the stack the plan continues (re-quantized in it when its grid
// has no exact encoding of that type).
absl::Status ChooseType(const GgufExportOptions& options, const engine::QuantizedTensor* q,
                        TensorPlan* plan,
                        std::optional<engine::GgmlType> same_as = std::nullopt);

// Block `layer`'s MoE tensors (engine::GgufMoeTensors) pointing at `block`'s
// tensors (null: names and shapes only); INVALID_ARGUMENT if the block's
// expert count is not the config's.
absl::StatusOr<std::vector<engine::GgufMoeTensor>> MoeTensorsOf(const engine::LlamaConfig& config,
                                                                int layer,
                                                                const engine::BlockWeights* block);

// Each plan's tensor info (a stack's once) into `b`.
void AddTensorInfos(const std::vector<TensorPlan>& plans, GgufBuilder* b);

// Chooses each plan's type (see gguf_export.h) and byte size. INVALID_ARGUMENT
// for bad type names, targets or quantized names that are not 2-D weights of
// the model, and quantized tensors that do not match their weights.
absl::Status ChooseTypes(const GgufExportOptions& options,
                         const std::map<std::string, const engine::QuantizedTensor*>& quantized,
                         std::vector<TensorPlan>* plans);

// The metadata of the output (gguf_export.h) into `b`, general.file_type =
// `file_type`; returns the source keys that were not copied. INVALID_ARGUMENT
// for a source tokenizer whose size differs from the config's vocabulary.
absl::StatusOr<std::vector<std::string>> AddMetadata(const engine::LlamaConfig& config,
                                                     const engine::GgufFile& source,
                                                     const GgufExportOptions& options,
                                                     uint32_t file_type, GgufBuilder* b);

// One tensor's bytes (its chosen type; q/k rows in llama.cpp's rotary order),
// then, when `pad` (not when the next plan continues its stack), zero padding
// to the alignment. INTERNAL if the bytes written differ from report.bytes.
absl::Status WriteTensor(const TensorPlan& p, int64_t head_dim, AtomicFile* sink, bool pad);

// The llama_ftype (general.file_type) of the type holding the most 2-D weights.
uint32_t LlamaFileType(const std::vector<TensorPlan>& plans);

}  // namespace compressd::engine::gguf_export_internal
