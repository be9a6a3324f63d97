// The sequential calibration pipeline (Frantar & Alistarh's SparseGPT/GPTQ
// procedure): the calibration windows run through the model one block at a
// time (nn/block_runner.h). At block i:
//   1. the inputs of the block's linear layers over every calibration token
//      (computed with the blocks before it already compressed);
//   2. per distinct input one Hessian H = 2 X X^T / n: q/k/v share the
//      attention input, gate/up the MLP input; o and down have their own;
//   3. each targeted linear compressed by the recipe's stages
//      (layer_stages.h), in the order q, k, v, o, gate, up, down; with
//      calibration.true_sequential, the inputs are recomputed after q/k/v,
//      after o and after gate/up so each layer sees its predecessors'
//      compression;
//   4. the block's output recomputed with the compressed weights: the input
//      of block i + 1.
// With an OWL stage (calib/owl.h), a dense pass over the calibration set
// first sets each block's sparsity. With AWQ on the first stage
// (calib/awq.h), each block is first rescaled from its dense inputs, which
// are then recomputed.
// After each block its result is stored in the CheckpointStore (when one is
// given) as "calib/block-NNNN"; a later run with the same fingerprint loads
// the stored blocks, recomputes their outputs (no solves) and continues, with
// a result bit-identical to an uninterrupted run (same thread count).
//
// Memory: the model (with a BlockStream: one block), the residual stream [T, hidden] and the four
// input buffers of one block (block_runner.h), the Hessians of one block and one layer's weight
// copies. Events: Progress "calibrate" (block i of N), MetricPoint per layer:
// "reconstruction_error", "sparsity", "bits", "seconds"; a log line per block.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

struct CompressionResult {
  nlohmann::json layers = nlohmann::json::array();           // one summary entry per target
  std::map<std::string, engine::QuantizedTensor> quantized;  // HF tensor name -> codes
  uint64_t targeted_parameters = 0;
  uint64_t zeros = 0;
  double bits_sum = 0;  // sum over targets of bits per parameter * numel
  // Seconds by phase: forward (calibration passes), hessian, solve, error
  // (reconstruction errors), checkpoint (encode + store).
  double forward_s = 0, hessian_s = 0, solve_s = 0, error_s = 0, checkpoint_s = 0;
  int resumed_blocks = 0;
  nlohmann::json owl;  // OWL's per-block allocation (calib/owl.h); null without OWL
  nlohmann::json awq = nlohmann::json::array();  // AWQ's per-group scales (calib/awq.h)
  double awq_s = 0;                              // AWQ's searches (its refresh: forward_s)
  nlohmann::json smoothquant = nlohmann::json::array();  // per-group (calib/smoothquant.h)
};

// The fingerprint stored with each block checkpoint.
std::string CalibrationFingerprint(const engine::LlamaModel& model, const v1::Recipe& recipe,
                                   const CalibrationSet& calibration, int threads);

// Where a block-at-a-time run over a model larger than memory gets each
// block and puts it when done (pipeline/streaming_job.h). Without one, every
// block is in the model already and stays there.
class BlockStream {
 public:
  virtual ~BlockStream() = default;
  // hidden [T, hidden] = the embedding rows of `batch`.
  virtual absl::Status Embed(const SequenceBatch& batch, float* hidden) = 0;
  // Fills *w (model.blocks[block]) before the block runs.
  virtual absl::Status Load(int block, BlockWeights* w) = 0;
  // Fills *w with block `block` as stored and has no other effect: a
  // read-only pass before the run (OWL's, calib/owl.h); Load follows later.
  // Streams whose Load does more override it.
  virtual absl::Status Peek(int block, BlockWeights* w) { return Load(block, w); }
  // Block `block` has run with its final weights *w (compressed, or restored
  // from its checkpoint): write it out and free it.
  virtual absl::Status Done(int block, BlockWeights* w) = 0;
};

// Compresses every target of `model` in place with the calibration set; with
// a `stream`, the model holds only its config and the block at hand; with a
// `spill_dir`, the calibration activations are scratch files there
// (nn/activation_buffer.h) instead of memory, with identical results.
// INVALID_ARGUMENT naming the tensor for a target outside the decoder blocks
// (calibrated stages apply to block linears only), and whatever the solvers
// return; CANCELLED when `cancel` is set (checked between layers).
absl::Status CompressCalibrated(engine::LlamaModel& model, engine::Backend& backend,
                                const v1::Recipe& recipe, const std::vector<ModelTarget>& targets,
                                const CalibrationSet& calibration, int threads,
                                CheckpointStore* checkpoints, EventSink& events,
                                const CancelToken& cancel, CompressionResult* result,
                                BlockStream* stream = nullptr,
                                const std::string& spill_dir = "",
                                SolverBackend* solver = nullptr);

// Without calibration (magnitude / rtn only): each target in turn, no H.
absl::Status CompressUncalibrated(engine::LlamaModel& model, const v1::Recipe& recipe,
                                  const std::vector<ModelTarget>& targets, EventSink& events,
                                  const CancelToken& cancel, CompressionResult* result);
// The same block by block: each block of `config` loaded from `stream`, its
// targets compressed, handed back (Done). The same results as the whole
// model's, in the same order; INVALID_ARGUMENT naming a target outside the
// decoder blocks (the whole-model path takes those).
absl::Status CompressUncalibrated(const engine::LlamaConfig& config, const v1::Recipe& recipe,
                                  const std::vector<ModelTarget>& targets, EventSink& events,
                                  const CancelToken& cancel, CompressionResult* result,
                                  BlockStream& stream);

}  // namespace compressd::engine
