// Per-input-channel rescaling of a block's linears, folded exactly into the
// op that produces their input: the groups of linears sharing an input and
// the folds that AWQ (awq.h) and SmoothQuant (smoothquant.h) both use.
//
// Scaling the input channels of a group's linears by s (W <- W diag(s)) is
// exact when the input is divided by s where it is made: the RMSNorm before
// q/k/v or gate/up (g <- g / s; Gemma's 1 + w likewise), v_proj's rows (and
// bias) before o_proj (only without grouped-query attention), up_proj's rows
// before down_proj (an expert's, or the shared expert's).
#pragma once

#include <string>
#include <vector>

#include "workers/engine/calib/block_linears.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

// The linears reading input `input` (of expert `expert` for input 4, else
// -1) and the op whose output that input is.
struct ScaleGroup {
  int input = 0;
  int expert = -1;
  std::vector<const BlockLinear*> linears;
  Tensor* norm = nullptr;  // a norm before it, or
  Tensor* rows = nullptr;  // a linear whose rows produce it
  Tensor* bias = nullptr;  // that linear's bias, if any
};

// The block's groups in input order; a group with no op to fold into (o_proj
// under grouped-query attention) is left out.
std::vector<ScaleGroup> ScaleGroups(const LlamaConfig& config, BlockWeights* w,
                                    const std::vector<BlockLinear>& linears);

// Each tensor rewritten as a new owned one:
void ScaleColumns(Tensor* t, const std::vector<float>& s);  // column j times s[j]
void DivideRows(Tensor* t, const std::vector<float>& s);    // row r (1-D: entry r) / s[r]
void DivideNorm(Tensor* t, const std::vector<float>& s, bool offset);  // g / s (offset: 1 + w)

// W <- W diag(s) for every linear of g and the input divided by s where it is
// made; every tensor it rewrote is appended to `changed` once.
void FoldScales(const LlamaConfig& config, const ScaleGroup& g, const std::vector<float>& s,
                std::vector<Tensor*>* changed);

// f(row) for each row [dim] of input `which`: every row, or with `rows` (an
// expert's, ExpertRows), those only.
template <typename F>
void ForEachInputRow(const LinearInputs& in, int which, int64_t dim,
                     const std::vector<int64_t>* rows, F f) {
  const float* x = in.input(which);
  const int64_t n = rows != nullptr ? static_cast<int64_t>(rows->size())
                    : which == 4    ? in.tokens * in.experts_per_token
                                    : in.tokens;
  for (int64_t i = 0; i < n; ++i) {
    f(x + (rows != nullptr ? (*rows)[static_cast<size_t>(i)] : i) * dim);
  }
}

// Max |x| per input channel over the rows of input `which` [rows, dim] (all,
// or `rows`).
std::vector<float> InputMaxAbs(const LinearInputs& in, int which, int64_t dim,
                               const std::vector<int64_t>* rows = nullptr);

// The module name of `t` in `named` ("model.layers.3.input_layernorm"), "?" if absent.
std::string NameOf(const std::vector<NamedTensor>& named, const Tensor* t);

}  // namespace compressd::engine
