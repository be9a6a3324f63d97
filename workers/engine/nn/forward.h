// The Llama decoder forward pass on a Backend: token embedding, per block
// x += o_proj(Attn(RoPE(q_proj(n)), RoPE(k_proj(n)), v_proj(n))) with
// n = RMSNorm(x), then x += down_proj(silu(gate_proj(n')) * up_proj(n')) with
// n' = RMSNorm(x), a final RMSNorm and the LM head. Matches transformers'
// LlamaForCausalLM (and Qwen2's q/k/v biases) in float32.
//
// Batches are several sequences packed row-wise (SequenceBatch), each
// starting at position 0. The caller drives the blocks (Embed, RunBlock, ...)
// so that calibration can stop between blocks (block_runner.h) and evaluation
// can stream the LM head over vocabulary chunks (LmHeadChunks) without ever
// holding [T, vocab] logits. Cost per token: 2 * (params of the blocks + LM
// head) flops plus attention, 4 * T * hd * n_heads per layer on average.
//
// LlamaForward keeps pointers to the model and the backend, which must outlive
// it; the model's weights may be replaced between calls. Not thread-safe (the
// backend is not).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"
#include "workers/engine/nn/rope.h"

namespace compressd::engine {

// Sequences packed row-wise: sequence s is rows [seq_start[s], seq_start[s+1]).
struct SequenceBatch {
  std::vector<int32_t> ids;
  std::vector<int64_t> seq_start;  // n_seqs + 1 offsets, seq_start[0] == 0
  std::vector<int32_t> positions;  // per row, from 0 within its sequence
  int64_t max_len = 0;

  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
  int64_t n_seqs() const { return static_cast<int64_t>(seq_start.size()) - 1; }
  // INVALID_ARGUMENT for no sequences or an empty one.
  static absl::StatusOr<SequenceBatch> Pack(const std::vector<std::vector<int32_t>>& seqs);
};

// Where a block pass writes the inputs of its linear layers, each [T, dim].
struct BlockTaps {
  float* attn_in = nullptr;  // RMSNorm(x): input of q/k/v_proj     [T, hidden]
  float* o_in = nullptr;     // attention output: input of o_proj   [T, n_heads*hd]
  float* mlp_in = nullptr;   // RMSNorm(x'): input of gate/up_proj, the router and experts [T, hidden]
  float* down_in = nullptr;  // silu(gate) * up: input of down_proj [T, intermediate] (dense layers)
  // MoE layers: the experts each token went to [T, k] (k = experts_per_token),
  // and for each (token, j) the input of that expert's down_proj, row t*k + j
  // of [T*k, expert_intermediate]; the shared expert's [T, shared width].
  int32_t* routes = nullptr;
  float* expert_down_in = nullptr;
  float* shared_down_in = nullptr;
};

// Scratch buffers for one block over T tokens, reused across blocks.
struct BlockWorkspace {
  std::vector<float> norm, q, k, v, attn, proj, gate, up, resid;
  // MoE layers: router logits, the routing and one expert's rows.
  std::vector<float> router, route_weights, expert_x, expert_gate, expert_up, expert_act, expert_y;
  std::vector<int32_t> route_ids;
  std::vector<float> act_in;  // W8A8: a linear's input quantized per token (grown on use)
  void Reserve(const LlamaConfig& config, int64_t tokens, bool with_resid);
  size_t bytes() const;
};

// Top-k routing as transformers does it: per token, softmax over the
// n_experts logits [T, n_experts] in float32, the k most probable experts
// (highest first) into ids [T, k] and their probabilities into weights
// [T, k], divided by their sum if `renormalize`.
void RouteTokens(const float* logits, int64_t t, int n_experts, int k, bool renormalize,
                 int32_t* ids, float* weights);

// Gemma: hidden [T, hidden] *= sqrt(hidden) after the embedding lookup
// (config.scale_embeddings; otherwise nothing).
void ScaleEmbeddings(const LlamaConfig& config, int64_t t, float* hidden);

// INVALID_ARGUMENT naming the tensor ("blocks.<index>.q_proj", ...) when a
// weight of block `index` is missing or not the shape the config implies.
absl::Status CheckBlockShapes(const LlamaConfig& config, const BlockWeights& w, int index);

// Which halves of a block RunBlockParts applies (EvoPress drop mode): a
// skipped half adds nothing to the residual stream (x += 0), exactly as if its
// output projection (o_proj / down_proj) were all zeros.
struct BlockParts {
  bool attention = true;
  bool mlp = true;
};

struct ForwardOptions {
  int64_t vocab_chunk = 4096;  // LM head rows per chunk
  // Block-at-a-time jobs on models larger than memory: the model holds only
  // its config and the blocks at hand, so Create checks the config alone and
  // each RunBlock's caller checks its block (CheckBlockShapes); Embed and the
  // LM head are not available.
  bool blocks_on_demand = false;
  // With blocks_on_demand: where the LM head's rows come from (read and
  // converted from the mapped file chunk by chunk, so the head is never
  // whole in memory): fills rows [v0, v0 + n) of [vocab, hidden] in float32.
  // The model's final_norm must be set; Embed is still not available.
  std::function<absl::Status(int64_t v0, int64_t n, float* rows)> lm_head_rows = nullptr;
};

class LlamaForward {
 public:
  // Checks every tensor's shape against the config: INVALID_ARGUMENT naming
  // the tensor. `model` and `backend` must outlive the returned object.
  static absl::StatusOr<LlamaForward> Create(const LlamaModel* model, Backend* backend,
                                             ForwardOptions options = {});

  const LlamaConfig& config() const { return model_->config; }
  const LlamaModel& model() const { return *model_; }
  Backend& backend() const { return *backend_; }
  int64_t vocab_chunk() const { return options_.vocab_chunk; }

  // hidden [T, hidden] = embedding rows. INVALID_ARGUMENT for an id outside [0, vocab).
  absl::Status Embed(const SequenceBatch& batch, float* hidden) const;
  // `w` must pass CheckBlockShapes (the model's blocks do, after Create).
  // Applies one block with weights `w` to hidden [T, hidden] in place.
  absl::Status RunBlock(const BlockWeights& w, const SequenceBatch& batch, float* hidden,
                        BlockWorkspace* ws) const;
  // RunBlock with only the halves `parts` selects; both: same as RunBlock.
  absl::Status RunBlockParts(const BlockWeights& w, const BlockParts& parts,
                             const SequenceBatch& batch, float* hidden, BlockWorkspace* ws) const;
  // Computes the linear-layer inputs of block `w` on hidden (unchanged): the
  // four dense ones, or for an MoE layer attn_in, o_in, mlp_in and the MoE taps.
  absl::Status BlockLinearInputs(const BlockWeights& w, const SequenceBatch& batch,
                                 const float* hidden, const BlockTaps& taps,
                                 BlockWorkspace* ws) const;
  // out [T, hidden] = final RMSNorm of hidden.
  void FinalNorm(const float* hidden, int64_t t, float* out) const;
  // logits[T, n] for vocabulary ids [v0, v0 + n); fails only when
  // ForwardOptions::lm_head_rows does.
  absl::Status LmHeadChunk(const float* normed, int64_t t, int64_t v0, int64_t n,
                           float* logits) const;
  // For each vocabulary chunk [v0, v0 + n) calls fn(v0, n, logits[T, n]).
  // Stops at and returns the first error fn returns.
  absl::Status LmHeadChunks(
      const float* normed, int64_t t,
      const std::function<absl::Status(int64_t v0, int64_t n, const float* logits)>& fn) const;

  // Embedding, every block and the final norm: normed hidden [T, hidden].
  absl::StatusOr<std::vector<float>> FinalHidden(const SequenceBatch& batch) const;
  // Full logits [T, vocab] (for tests and small batches).
  absl::StatusOr<std::vector<float>> Logits(const SequenceBatch& batch) const;

 private:
  LlamaForward(const LlamaModel* model, Backend* backend, ForwardOptions options)
      : model_(model), backend_(backend), options_(options) {}
  absl::Status EnsureRope(int64_t n_positions) const;
  // x_out = x + o_proj(attention(RMSNorm(x))); writes the norm and attention
  // output to `norm` and `attn`. x and x_out may alias.
  void AttentionHalf(const BlockWeights& w, const SequenceBatch& batch, const float* x, float* norm,
                     float* attn, float* x_out, BlockWorkspace* ws) const;
  // norm = RMSNorm(x); act = silu(gate_proj(norm)) * up_proj(norm); if x_out,
  // x_out = x + down_proj(act) (x_out may alias x).
  void MlpHalf(const BlockWeights& w, int64_t t, const float* x, float* norm, float* act,
               float* x_out, BlockWorkspace* ws, const BlockTaps* taps = nullptr) const;
  // An MoE layer's MLP on norm [T, hidden]: out [T, hidden] = the routed
  // experts' outputs weighted by the router (plus the gated shared expert);
  // fills the MoE taps when given (moe_forward.cc).
  void MoeMlp(const BlockWeights& w, int64_t t, const float* norm, float* out,
              const BlockTaps* taps, BlockWorkspace* ws) const;
  // y [n, hidden] = down(act) with act [n, width] = silu(gate(x)) * up(x);
  // the linears' inputs quantized per token (W8A8) where w.act_quant has `which`.
  void ExpertMlp(const ExpertWeights& e, int64_t n, int64_t width, const float* x, float* act,
                 float* y, BlockWorkspace* ws, const BlockWeights& w, uint32_t which) const;
  // A linear's input: x itself, or where w.act_quant has any of `which` (W8A8,
  // BlockWeights::act_quant) x quantized per token (int8, or fp8 with
  // w.act_fp8) into ws->act_in.
  const float* LinearIn(const BlockWeights& w, uint32_t which, const float* x, int64_t t,
                        int64_t dim, BlockWorkspace* ws) const;

  const LlamaModel* model_;
  Backend* backend_;
  ForwardOptions options_;
  mutable RopeTable rope_;  // grown on demand
  mutable RopeTable local_rope_;  // Gemma 3's windowed layers (config.local_rope_theta)
  mutable std::vector<float> lm_rows_;  // the LM head chunk read through lm_head_rows
};

}  // namespace compressd::engine
