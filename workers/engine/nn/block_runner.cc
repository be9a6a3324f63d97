#include "workers/engine/nn/block_runner.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {

absl::StatusOr<std::unique_ptr<BlockRunner>> BlockRunner::Create(
    LlamaModel* model, Backend* backend, const std::vector<std::vector<int32_t>>& sequences,
    BlockRunnerOptions options) {
  if (options.micro_batch_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_tokens must be > 0, got ", options.micro_batch_tokens));
  }
  ForwardOptions forward_options;
  forward_options.blocks_on_demand = options.embed != nullptr;
  ASSIGN_OR_RETURN(LlamaForward forward, LlamaForward::Create(model, backend, forward_options));
  ASSIGN_OR_RETURN(SequenceBatch batch, SequenceBatch::Pack(sequences));
  std::vector<SequenceBatch> micro;
  std::vector<int64_t> micro_row;
  int64_t row = 0;
  for (size_t s = 0; s < sequences.size();) {
    std::vector<std::vector<int32_t>> part;
    int64_t n = 0;
    while (s < sequences.size() && (part.empty() || n + static_cast<int64_t>(sequences[s].size()) <=
                                                        options.micro_batch_tokens)) {
      n += static_cast<int64_t>(sequences[s].size());
      part.push_back(sequences[s++]);
    }
    ASSIGN_OR_RETURN(SequenceBatch mb, SequenceBatch::Pack(part));
    micro.push_back(std::move(mb));
    micro_row.push_back(row);
    row += n;
  }
  auto runner = std::unique_ptr<BlockRunner>(new BlockRunner(
      model, std::move(forward), std::move(batch), std::move(micro), std::move(micro_row)));
  runner->spill_dir_ = options.spill_dir;
  const int64_t hidden = model->config.hidden;
  ASSIGN_OR_RETURN(runner->hidden_,
                   runner->NewBuffer(runner->batch_.tokens() * hidden, "residual stream"));
  // Micro-batch by micro-batch (row copies: the same as the whole batch at
  // once), so a spilled stream is never resident all at once.
  for (size_t m = 0; m < runner->micro_.size(); ++m) {
    const int64_t r = runner->micro_row_[m];
    float* rows = runner->hidden_.data() + r * hidden;
    if (options.embed) {
      RETURN_IF_ERROR(options.embed(runner->micro_[m], rows));
    } else {
      RETURN_IF_ERROR(runner->forward_.Embed(runner->micro_[m], rows));
    }
    runner->hidden_.Release(r * hidden, (r + runner->micro_[m].tokens()) * hidden);
  }
  return runner;
}

absl::StatusOr<ActivationBuffer> BlockRunner::NewBuffer(int64_t floats, const char* what) const {
  if (spill_dir_.empty()) return ActivationBuffer::InMemory(static_cast<size_t>(floats));
  return ActivationBuffer::InFile(spill_dir_, static_cast<size_t>(floats),
                                  absl::StrCat("calibration ", what));
}

absl::Status BlockRunner::RunNextBlock(const BlockHook& hook) {
  if (done()) return absl::FailedPreconditionError("BlockRunner: every block has already run");
  const int i = next_block_;
  const LlamaConfig& c = forward_.config();
  const int64_t hidden = c.hidden, qd = int64_t{c.n_heads} * c.head_dim;
  const int64_t t = batch_.tokens();
  const bool moe = LayerIsMoe(c, model_->blocks[i].layer >= 0 ? model_->blocks[i].layer : i);
  const int k = moe ? c.experts_per_token : 0;
  // Floats per token of each linear input (0: none in this layer): attn_in,
  // o_in, mlp_in, down_in, the experts' down inputs, the shared expert's.
  const int64_t width[6] = {hidden,
                            qd,
                            hidden,
                            moe ? 0 : c.intermediate,
                            moe ? int64_t{k} * c.expert_intermediate : 0,
                            moe ? int64_t{c.shared_expert_intermediate} : 0};
  auto release = [this, &width](int which, int64_t t0, int64_t t1) {
    inputs_[which].Release(t0 * width[which], t1 * width[which]);
  };
  if (hook) {
    static constexpr const char* kWhat[6] = {"attention inputs", "o_proj inputs",
                                             "MLP inputs",       "down_proj inputs",
                                             "expert down_proj inputs",
                                             "shared expert down_proj inputs"};
    for (int b = 0; b < 6; ++b) {
      if (width[b] > 0 && inputs_[b].size() != static_cast<size_t>(t * width[b])) {
        ASSIGN_OR_RETURN(inputs_[b], NewBuffer(t * width[b], kWhat[b]));
      }
    }
    routes_.assign(static_cast<size_t>(t * k), 0);
    auto at = [&](int b, int64_t row) {
      return width[b] > 0 ? inputs_[b].data() + row * width[b] : nullptr;
    };
    auto compute = [&]() -> absl::Status {
      RETURN_IF_ERROR(CheckBlockShapes(c, model_->blocks[i], i));
      for (size_t m = 0; m < micro_.size(); ++m) {
        const int64_t r = micro_row_[m], end = r + micro_[m].tokens();
        BlockTaps taps{at(0, r), at(1, r), at(2, r), at(3, r)};
        if (moe) {
          taps.routes = routes_.data() + r * k;
          taps.expert_down_in = at(4, r);
          taps.shared_down_in = at(5, r);
        }
        RETURN_IF_ERROR(forward_.BlockLinearInputs(model_->blocks[i], micro_[m],
                                                   hidden_.data() + r * hidden, taps, &ws_));
        hidden_.Release(r * hidden, end * hidden);
        for (int b = 0; b < 6; ++b) release(b, r, end);
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(compute());
    LinearInputs inputs{t, at(0, 0), at(1, 0), at(2, 0), at(3, 0), compute, release};
    if (moe) {
      inputs.experts_per_token = k;
      inputs.routes = routes_.data();
      inputs.expert_down_in = at(4, 0);
      inputs.shared_down_in = at(5, 0);
    }
    RETURN_IF_ERROR(hook(i, inputs, &model_->blocks[i]));
    // In memory the buffers are freed between blocks (the next block's
    // weights are read then); scratch files are reused.
    if (spill_dir_.empty()) {
      for (ActivationBuffer& b : inputs_) b = ActivationBuffer();
    }
  }
  RETURN_IF_ERROR(CheckBlockShapes(c, model_->blocks[i], i));
  for (size_t m = 0; m < micro_.size(); ++m) {
    const int64_t r = micro_row_[m];
    RETURN_IF_ERROR(
        forward_.RunBlock(model_->blocks[i], micro_[m], hidden_.data() + r * hidden, &ws_));
    hidden_.Release(r * hidden, (r + micro_[m].tokens()) * hidden);
  }
  ++next_block_;
  return absl::OkStatus();
}

absl::Status BlockRunner::RunAll(const BlockHook& hook) {
  while (!done()) RETURN_IF_ERROR(RunNextBlock(hook));
  return absl::OkStatus();
}

}  // namespace compressd::engine
