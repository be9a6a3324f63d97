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
  runner->hidden_.resize(runner->batch_.tokens() * model->config.hidden);
  if (options.embed) {
    RETURN_IF_ERROR(options.embed(runner->batch_, runner->hidden_.data()));
  } else {
    RETURN_IF_ERROR(runner->forward_.Embed(runner->batch_, runner->hidden_.data()));
  }
  return runner;
}

absl::Status BlockRunner::RunNextBlock(const BlockHook& hook) {
  if (done()) return absl::FailedPreconditionError("BlockRunner: every block has already run");
  const int i = next_block_;
  const LlamaConfig& c = forward_.config();
  const int64_t hidden = c.hidden, qd = int64_t{c.n_heads} * c.head_dim;
  if (hook) {
    const int64_t t = batch_.tokens();
    std::vector<float> attn_in(t * hidden), o_in(t * qd), mlp_in(t * hidden);
    std::vector<float> down_in(t * c.intermediate);
    auto compute = [&]() -> absl::Status {
      RETURN_IF_ERROR(CheckBlockShapes(c, model_->blocks[i], i));
      for (size_t m = 0; m < micro_.size(); ++m) {
        const int64_t r = micro_row_[m];
        const BlockTaps taps{&attn_in[r * hidden], &o_in[r * qd], &mlp_in[r * hidden],
                             &down_in[r * c.intermediate]};
        RETURN_IF_ERROR(forward_.BlockLinearInputs(model_->blocks[i], micro_[m],
                                                   &hidden_[r * hidden], taps, &ws_));
      }
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(compute());
    const LinearInputs inputs{t,      attn_in.data(), o_in.data(), mlp_in.data(), down_in.data(),
                              compute};
    RETURN_IF_ERROR(hook(i, inputs, &model_->blocks[i]));
  }
  RETURN_IF_ERROR(CheckBlockShapes(c, model_->blocks[i], i));
  for (size_t m = 0; m < micro_.size(); ++m) {
    RETURN_IF_ERROR(
        forward_.RunBlock(model_->blocks[i], micro_[m], &hidden_[micro_row_[m] * hidden], &ws_));
  }
  ++next_block_;
  return absl::OkStatus();
}

absl::Status BlockRunner::RunAll(const BlockHook& hook) {
  while (!done()) RETURN_IF_ERROR(RunNextBlock(hook));
  return absl::OkStatus();
}

}  // namespace compressd::engine
