#include "workers/engine/pipeline/memory_estimate.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_w8a8.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/nn/bf16_weight_cache.h"

namespace compressd::engine {
namespace {

// The process before any model data: binary, libraries, OpenBLAS and backend
// thread pools, a GGUF's tokenizer (measured on evaluate-only jobs of the
// real model's GGUF: 42 MiB).
constexpr uint64_t kProcessBytes = 40ull << 20;
// Parsing an HF tokenizer.json costs about this many times its size (the
// real model's 3.4 MB file: 25 MiB more than its GGUF's tokenizer).
constexpr uint64_t kTokenizerJsonFactor = 8;

uint64_t TokenizerJsonBytes(const std::string& model_dir) {
  std::error_code ec;
  const uintmax_t n = std::filesystem::file_size(
      std::filesystem::path(model_dir) / "tokenizer.json", ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}
// BlockRunnerOptions::micro_batch_tokens' default (and evaluation's batch).
constexpr uint64_t kMicroBatchTokens = 4096;
// ForwardOptions::vocab_chunk's default.
constexpr uint64_t kVocabChunk = 4096;

uint64_t Numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

class Terms {
 public:
  void Add(const char* name, uint64_t bytes) {
    if (bytes == 0) return;
    total_ += bytes;
    absl::StrAppend(&text_, text_.empty() ? "" : " + ", name, " ", FormatBytes(bytes));
  }
  uint64_t total() const { return total_; }
  const std::string& text() const { return text_; }

 private:
  uint64_t total_ = 0;
  std::string text_;
};

// The largest group's Hessian-and-solve bytes for one block.
uint64_t SolveBytes(const LlamaConfig& c) {
  const uint64_t h = c.hidden, qd = uint64_t(c.n_heads) * c.head_dim, ff = c.intermediate;
  // (input dim, largest output dim) of the four groups: q/k/v, o, gate/up, down.
  const uint64_t groups[4][2] = {{h, qd}, {qd, h}, {h, ff}, {ff, h}};
  uint64_t worst = 0;
  for (const auto& g : groups) worst = std::max(worst, 12 * g[0] * g[0] + 16 * g[1] * g[0]);
  return worst;
}

// Floats per token of a forward pass's workspace (nn/forward.h BlockWorkspace):
// norm, o_proj output, residual; q and attention output; k, v; gate, up; with
// W8A8, a linear's quantized input (the widest: act_in).
uint64_t WorkspacePerToken(const LlamaConfig& c, bool w8a8) {
  const uint64_t qd = uint64_t(c.n_heads) * c.head_dim, kvd = uint64_t(c.n_kv_heads) * c.head_dim;
  uint64_t moe = 0;  // router logits and weights, one expert's gathered rows (nn/moe_forward.cc)
  if (c.n_experts > 0) {
    const uint64_t width = std::max(c.expert_intermediate, c.shared_expert_intermediate);
    moe = uint64_t(c.n_experts) + 2 * uint64_t(c.experts_per_token) + 2 * uint64_t(c.hidden) +
          3 * width;
  }
  const uint64_t act_in =
      w8a8 ? std::max({uint64_t(c.hidden), qd, uint64_t(c.intermediate),
                       uint64_t(std::max(c.expert_intermediate, c.shared_expert_intermediate))})
           : 0;
  return 3 * uint64_t(c.hidden) + 2 * qd + 2 * kvd + 2 * uint64_t(c.intermediate) + moe + act_in;
}

// Tokens of the largest evaluation batch (pipeline/eval_sets.cc: whole
// windows, up to 4096 tokens).
uint64_t EvalBatchTokens(const RecipeSpec& spec) {
  uint64_t most = 0;
  for (const v1::EvalDataset& set : spec.recipe.evaluation().perplexity()) {
    const uint64_t window = uint64_t(std::max(set.window(), 1));
    const uint64_t per = std::max<uint64_t>(1, std::min<uint64_t>(set.windows(), kMicroBatchTokens / window));
    most = std::max(most, per * window);
  }
  return most;
}

// The windows' residual streams (dense and compressed), one batch's
// final-normed copy and the LM head chunk with its logits
// (pipeline/eval_stream.h).
uint64_t StreamedEvaluationBytes(const JobPlan& plan, const RecipeSpec& spec, const LlamaConfig& c) {
  uint64_t tokens = 0;
  for (const v1::EvalDataset& set : spec.recipe.evaluation().perplexity()) {
    tokens += uint64_t(std::max(set.windows(), 0)) * std::max(set.window(), 0);
  }
  const uint64_t streams = (plan.evaluate_dense || plan.kl) ? 2 : 1;
  const uint64_t batch = std::min<uint64_t>(tokens, kMicroBatchTokens);
  return (streams * tokens + batch) * c.hidden * 4 + kVocabChunk * (c.hidden + 2 * batch) * 4;
}

}  // namespace

MemoryEstimate EstimateJobMemory(const JobPlan& plan, const RecipeSpec& spec, const LlamaConfig& c,
                                 uint64_t stored_weight_bytes, bool spill_activations) {
  MemoryEstimate out;
  uint64_t params = 0, block_params = 0;
  for (const NamedShape& t : ConfigShapes(c)) {
    params += Numel(t.shape);
    if (t.name.rfind("model.layers.0.", 0) == 0) block_params += Numel(t.shape);
  }
  Terms terms;
  terms.Add("process", kProcessBytes);
  if (plan.tokenizer && !plan.input.gguf) {
    terms.Add("tokenizer", kTokenizerJsonFactor * TokenizerJsonBytes(plan.input.path));
  }
  const bool calibrated =
      plan.compression == Compression::kCalibrated || plan.compression == Compression::kEvoPress;
  if (plan.path == JobPath::kBlockStream) {
    terms.Add("block", block_params * 4);
    // An uncalibrated stage's new weights beside the loaded ones, and their
    // codes (one byte a weight), until the block is written.
    if (plan.compression == Compression::kUncalibrated)
      terms.Add("compressed block (new weights and codes)", block_params * 5);
    if (plan.evaluate) terms.Add("evaluation", StreamedEvaluationBytes(plan, spec, c));
  } else if (plan.path == JobPath::kModel) {
    terms.Add("model", params * 4);
    if (plan.kl) terms.Add("dense copy for KL", block_params * uint64_t(c.n_layers) * 4);
  }
  if (calibrated) {
    const v1::Calibration& cal = spec.recipe.calibration();
    const uint64_t tokens = uint64_t(std::max(cal.samples(), 1)) * std::max(cal.seq_len(), 1);
    const uint64_t qd = uint64_t(c.n_heads) * c.head_dim;
    // The MLP's down inputs: the dense one, or an MoE layer's k experts' and
    // its shared expert's (nn/block_runner.h), whichever layers are larger.
    const bool dense_layers = c.n_experts == 0 || !c.moe_layers.empty();
    uint64_t down = dense_layers ? uint64_t(c.intermediate) : 0;
    if (c.n_experts > 0) {
      down = std::max<uint64_t>(down, uint64_t(c.experts_per_token) * c.expert_intermediate +
                                          c.shared_expert_intermediate);
    }
    const uint64_t per_token = (3 * uint64_t(c.hidden) + qd + down) * 4;
    if (spill_activations) {
      // One micro-batch of rows resident (nn/block_runner.h), the rest in files.
      terms.Add("activations (one micro-batch; the rest on disk)",
                std::min<uint64_t>(tokens, kMicroBatchTokens) * per_token);
      out.scratch_bytes = tokens * per_token;
    } else {
      terms.Add("activations", tokens * per_token);
    }
    terms.Add("solve", SolveBytes(c));
    if (plan.path == JobPath::kModel && spec.format != OutputFormat::kHfSafetensors) {
      terms.Add("codes", block_params * uint64_t(c.n_layers));
    }
  }
  // Forward workspaces: calibration's micro-batch (nn/block_runner.h) and
  // evaluation's batch; both alive at once on the block stream, one at a
  // time on the whole-model path.
  const uint64_t calib_ws =
      calibrated ? std::min<uint64_t>(uint64_t(std::max(spec.recipe.calibration().samples(), 1)) *
                                          std::max(spec.recipe.calibration().seq_len(), 1),
                                      kMicroBatchTokens)
                 : 0;
  const uint64_t eval_ws = plan.evaluate ? EvalBatchTokens(spec) : 0;
  const uint64_t ws_tokens = plan.path == JobPath::kBlockStream ? calib_ws + eval_ws
                                                                 : std::max(calib_ws, eval_ws);
  terms.Add("forward workspace",
            ws_tokens * WorkspacePerToken(c, ActivationStage(spec.recipe) >= 0) * 4);
  // compute: bf16: each backend's rounded and packed copy of the weights it
  // multiplied, up to its bound (nn/bf16_weight_cache.h); a calibrated job
  // holds two backends, calibration's and evaluation's.
  if (spec.recipe.compute() == "bf16") {
    terms.Add("bf16 packed weights",
              (calibrated ? 2 : 1) * std::min<uint64_t>(kBf16WeightCacheBytes, params * 4));
  }
  out.peak_bytes = terms.total();
  out.breakdown = terms.text();
  out.output_bytes = plan.compression == Compression::kNone ? 0
                     : spec.format == OutputFormat::kHfSafetensors
                         ? params * (spec.hf_dtype == "F32" ? 4 : 2)
                         : stored_weight_bytes;
  return out;
}

uint64_t EstimateDeviceBytes(const LlamaConfig& config, const SolverBackend& solver) {
  uint64_t need = 0;
  for (const NamedShape& t : ConfigShapes(config)) {
    // A block's projections, experts included (Mixtral's w1/w2/w3).
    const bool linear =
        t.shape.size() == 2 && absl::StartsWith(t.name, "model.layers.") &&
        (absl::EndsWith(t.name, "_proj.weight") || absl::EndsWith(t.name, ".w1.weight") ||
         absl::EndsWith(t.name, ".w2.weight") || absl::EndsWith(t.name, ".w3.weight"));
    if (linear) need = std::max(need, solver.DeviceBytes(t.shape[0], t.shape[1], 128));
  }
  return need;
}

}  // namespace compressd::engine
