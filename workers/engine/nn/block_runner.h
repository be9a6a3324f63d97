// Block-by-block execution for calibration-based compression (SparseGPT,
// GPTQ, ...): run a calibration batch up to block i, show a consumer the input
// of every linear layer of block i, let it replace block i's weights, then
// compute block i's output with the new weights and move on.
//
// Per block, RunNextBlock does two passes over the batch in micro-batches:
//  1. with the current weights, the four linear inputs (LinearInputs) of
//     every token are written to full-batch buffers;
//  2. after the hook returned, the block's output is computed with the
//     (possibly replaced) weights, in place over the residual stream.
// Memory: the residual stream [T, hidden], the four input buffers
// [T, 2*hidden + n_heads*hd + intermediate] (an MoE layer: the experts' down
// inputs [T, k*expert_intermediate] in place of the dense one, and the shared
// expert's), and one micro-batch workspace;
// only block i's activations are ever held. With BlockRunnerOptions::
// spill_dir the stream and the input buffers are scratch files instead
// (activation_buffer.h), each micro-batch's rows released after every pass
// over them: resident memory is then the workspace and the part being read.
//
// Holds a pointer to the model, which it mutates through the hook; the model
// and the backend must outlive it. With BlockRunnerOptions::embed, only the
// block about to run must be in the model. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/activation_buffer.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine {

// The inputs of block i's linear layers over all T calibration tokens, rows in
// batch order; valid during the hook call only.
struct LinearInputs {
  int64_t tokens = 0;
  const float* attn_in = nullptr;  // [T, hidden]: shared input of q_proj, k_proj, v_proj
  const float* o_in = nullptr;     // [T, n_heads*hd]: input of o_proj
  const float* mlp_in = nullptr;   // [T, hidden]: shared input of gate_proj, up_proj
  const float* down_in = nullptr;  // [T, intermediate]: input of down_proj (dense layers)
  // Recomputes all four buffers in place from the block's current weights
  // (those the hook has replaced so far): "true sequential" compression, where
  // o_proj sees the compressed q/k/v, and so on. One more pass over the batch.
  std::function<absl::Status()> refresh;
  // Tokens [t0, t1) of input `which` will not be read again until the next
  // refresh: their pages may leave memory (spilled buffers; see Release).
  std::function<void(int which, int64_t t0, int64_t t1)> release;
  // MoE layers (BlockTaps): the experts of each token [T, k], each (token,
  // j)'s expert down_proj input [T*k, expert_intermediate] and the shared
  // expert's [T, shared width]; input(4) and input(5).
  int experts_per_token = 0;
  const int32_t* routes = nullptr;
  const float* expert_down_in = nullptr;
  const float* shared_down_in = nullptr;

  // The buffer by input index: 0 attn_in, 1 o_in, 2 mlp_in, 3 down_in,
  // 4 expert_down_in, 5 shared_down_in.
  const float* input(int which) const {
    switch (which) {
      case 0:
        return attn_in;
      case 1:
        return o_in;
      case 2:
        return mlp_in;
      case 3:
        return down_in;
      case 4:
        return expert_down_in;
      default:
        return shared_down_in;
    }
  }
};

// Called once per block; may replace tensors of *weights (same shapes). A
// non-OK status stops the run and is returned by RunNextBlock.
using BlockHook =
    std::function<absl::Status(int block, const LinearInputs& inputs, BlockWeights* weights)>;

struct BlockRunnerOptions {
  int64_t micro_batch_tokens = 4096;  // tokens per pass through the backend (whole sequences)
  // Block-at-a-time over a model larger than memory: the model holds only its
  // config and the block at hand (the caller fills model->blocks[i] before
  // block i runs and may free it after), and `embed` fills hidden [T, hidden]
  // with the batch's embedding rows (read from the mapped file).
  std::function<absl::Status(const SequenceBatch& batch, float* hidden)> embed;
  // Non-empty: the residual stream and the linear inputs live in scratch
  // files in this directory (calibration sets larger than the memory budget).
  std::string spill_dir;
};

class BlockRunner {
 public:
  // Embeds `sequences` (each starting at position 0). INVALID_ARGUMENT for a
  // bad model (see LlamaForward::Create), an empty batch or a bad token id.
  static absl::StatusOr<std::unique_ptr<BlockRunner>> Create(
      LlamaModel* model, Backend* backend, const std::vector<std::vector<int32_t>>& sequences,
      BlockRunnerOptions options = {});

  int next_block() const { return next_block_; }
  bool done() const { return next_block_ >= forward_.config().n_layers; }
  int64_t tokens() const { return batch_.tokens(); }
  // The residual stream entering block next_block(), [T, hidden].
  const float* hidden() const { return hidden_.data(); }

  // Runs block next_block() as described above; a null hook just runs it.
  // FAILED_PRECONDITION when all blocks have run; INVALID_ARGUMENT naming the
  // tensor when the hook left a weight of the wrong shape.
  absl::Status RunNextBlock(const BlockHook& hook);
  // RunNextBlock until done().
  absl::Status RunAll(const BlockHook& hook);

 private:
  BlockRunner(LlamaModel* model, LlamaForward forward, SequenceBatch batch,
              std::vector<SequenceBatch> micro, std::vector<int64_t> micro_row)
      : model_(model),
        forward_(std::move(forward)),
        batch_(std::move(batch)),
        micro_(std::move(micro)),
        micro_row_(std::move(micro_row)) {}

  LlamaModel* model_;
  LlamaForward forward_;
  SequenceBatch batch_;
  std::vector<SequenceBatch> micro_;  // the batch cut into micro-batches
  std::vector<int64_t> micro_row_;    // first row of each micro-batch in batch_
  // Buffers for the residual stream and the four linear inputs.
  absl::StatusOr<ActivationBuffer> NewBuffer(int64_t floats, const char* what) const;

  std::string spill_dir_;
  ActivationBuffer hidden_;
  // attn_in, o_in, mlp_in, down_in, expert_down_in, shared_down_in (kept
  // across blocks when spilled); an MoE layer's routes.
  ActivationBuffer inputs_[6];
  std::vector<int32_t> routes_;
  BlockWorkspace ws_;
  int next_block_ = 0;
};

}  // namespace compressd::engine
