#include "workers/engine/calib/calibrated_compress.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_awq.h"
#include "common/recipe_stages.h"
#include "common/recipe_w8a8.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/calib/awq.h"
#include "workers/engine/calib/block_checkpoint.h"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/calib/compress_tensor.h"
#include "workers/engine/calib/layer_stages.h"
#include "workers/engine/calib/owl.h"
#include "workers/engine/calib/smoothquant.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/nn/block_runner.h"

namespace compressd::engine {
namespace {

using Clock = std::chrono::steady_clock;
using engine::BlockWeights;
using engine::Tensor;
using nlohmann::json;

std::string CheckpointName(int block) { return absl::StrFormat("calib/block-%04d", block); }

// Checks that every target is a linear of a decoder block.
absl::Status CheckBlockTargets(const engine::LlamaModel& model,
                               const std::vector<ModelTarget>& targets) {
  std::set<std::string> linears;
  for (int b = 0; b < model.config.n_layers; ++b) {
    for (const BlockLinear& l : BlockLinearsOf(model.config, b, nullptr)) linears.insert(l.module);
  }
  for (const ModelTarget& t : targets) {
    if (!linears.count(t.module)) {
      return absl::InvalidArgumentError(
          absl::StrCat("targets: \"", t.module,
                       "\" is not a linear layer of a decoder block; calibrated "
                       "stages (wanda, sparsegpt, gptq) apply to block linears only (add it to "
                       "targets.ignore)"));
    }
  }
  return absl::OkStatus();
}

// One block's hook: Hessians and solves, group by group.
class BlockCompressor {
 public:
  BlockCompressor(const engine::LlamaConfig& config, const v1::Recipe& recipe,
                  const std::set<std::string>& targets, int threads, SolverBackend& solver,
                  EventSink& events, const CancelToken& cancel, CompressionResult* result,
                  std::vector<v1::Recipe> block_recipes)
      : config_(config),
        recipe_(recipe),
        block_recipes_(std::move(block_recipes)),
        targets_(targets),
        threads_(threads),
        solver_(solver),
        events_(events),
        cancel_(cancel),
        result_(result),
        true_sequential_(recipe.calibration().true_sequential()),
        min_expert_tokens_(recipe.calibration().min_expert_tokens()) {}

  absl::Status Run(int block, const engine::LinearInputs& in, BlockWeights* w,
                   BlockCheckpoint* checkpoint) {
    std::vector<BlockLinear> linears = BlockLinearsOf(config_, w->layer >= 0 ? w->layer : block, w);
    std::vector<int64_t> tokens;  // per expert, in an MoE layer
    if (in.routes != nullptr) {
      tokens = ExpertTokenCounts(in, config_.n_experts);
      ReportPooled(block, tokens);
    }
    const v1::Recipe& recipe =
        static_cast<size_t>(block) < block_recipes_.size() ? block_recipes_[block] : recipe_;
    const v1::QuantGridSpec* awq_grid = nullptr;
    if (const v1::AwqSpec* awq = RecipeAwq(recipe, &awq_grid)) {
      RETURN_IF_ERROR(RunAwq(block, in, w, *awq, *awq_grid, checkpoint));
    }
    if (const v1::SmoothQuantSpec* sq = RecipeSmoothQuant(recipe)) {
      RETURN_IF_ERROR(RunSmoothQuant(block, in, w, *sq, checkpoint));
    }
    bool changed = false;
    for (int step = 0; step < 4; ++step) {
      std::vector<const BlockLinear*> group;
      for (const BlockLinear& l : linears) {
        if (l.step == step && targets_.count(l.module)) group.push_back(&l);
      }
      if (group.empty()) continue;
      if (true_sequential_ && changed) {
        const Clock::time_point t = Clock::now();
        RETURN_IF_ERROR(in.refresh());
        result_->forward_s += SecondsSince(t);
      }
      // Linears sharing an input and an expert share a Hessian, computed once.
      std::stable_sort(group.begin(), group.end(), [](const BlockLinear* a, const BlockLinear* b) {
        return std::make_pair(a->input, a->expert) < std::make_pair(b->input, b->expert);
      });
      std::map<int, std::vector<float>> pooled;  // by input, for experts with too few tokens
      for (size_t i = 0; i < group.size();) {
        const BlockLinear& first = *group[i];
        const int64_t dim = first.tensor->cols();
        json extra = json::object();
        const Clock::time_point t = Clock::now();
        std::vector<float> h;
        if (first.expert < 0) {
          ASSIGN_OR_RETURN(h, InputHessian(in, first.input, dim, nullptr, solver_, threads_));
        } else {
          const int64_t n = tokens[static_cast<size_t>(first.expert)];
          const bool own = n >= std::max(min_expert_tokens_, 1);
          extra = {{"expert", first.expert},
                   {"expert_tokens", n},
                   {"calibration", own ? "routed" : "pooled"}};
          if (own) {
            const std::vector<int64_t> rows = ExpertRows(in, first.input, first.expert);
            ASSIGN_OR_RETURN(h, InputHessian(in, first.input, dim, &rows, solver_, threads_));
          } else {
            if (!pooled.count(first.input)) {
              ASSIGN_OR_RETURN(pooled[first.input],
                               InputHessian(in, first.input, dim, nullptr, solver_, threads_));
            }
            h = pooled[first.input];
          }
        }
        result_->hessian_s += SecondsSince(t);
        for (;
             i < group.size() && group[i]->input == first.input && group[i]->expert == first.expert;
             ++i) {
          if (cancel_.cancelled()) return absl::CancelledError("job cancelled");
          RETURN_IF_ERROR(CompressTensor(recipe, group[i]->module, group[i]->tensor, h.data(),
                                         threads_, &solver_, events_, result_, checkpoint, extra));
        }
      }
      changed = true;
    }
    return MarkW8A8(recipe, targets_, config_, w->layer >= 0 ? w->layer : block, w);
  }

 private:
  // After per-channel scales were folded into `changed`: the block's inputs
  // recomputed, and the changed tensors kept in the block's checkpoint.
  absl::Status AfterRescale(int layer, const engine::LinearInputs& in, BlockWeights* w,
                            const std::vector<Tensor*>& changed, BlockCheckpoint* checkpoint) {
    if (changed.empty()) return absl::OkStatus();
    const Clock::time_point f = Clock::now();
    RETURN_IF_ERROR(in.refresh());
    result_->forward_s += SecondsSince(f);
    if (checkpoint == nullptr) return absl::OkStatus();
    for (const engine::NamedTensor& n : engine::BlockTensors(config_, layer, w)) {
      if (std::find(changed.begin(), changed.end(), n.tensor) != changed.end()) {
        checkpoint->weights[n.name] = *n.tensor;
      }
    }
    return absl::OkStatus();
  }

  // SmoothQuant's scales for the block, folded in; the inputs recomputed after.
  absl::Status RunSmoothQuant(int block, const engine::LinearInputs& in, BlockWeights* w,
                              const v1::SmoothQuantSpec& spec, BlockCheckpoint* checkpoint) {
    const int layer = w->layer >= 0 ? w->layer : block;
    std::vector<Tensor*> changed;
    json entries = SmoothQuantBlock(config_, layer, w, in, spec, targets_, &changed);
    RETURN_IF_ERROR(AfterRescale(layer, in, w, changed, checkpoint));
    if (checkpoint != nullptr) checkpoint->smoothquant = entries;
    for (const json& e : entries) result_->smoothquant.push_back(e);
    if (!entries.empty()) EmitLog(events_, "info", SmoothQuantLogLine(entries));
    return absl::OkStatus();
  }

  // AWQ's scales for the block, folded in; the inputs recomputed after.
  absl::Status RunAwq(int block, const engine::LinearInputs& in, BlockWeights* w,
                      const v1::AwqSpec& spec, const v1::QuantGridSpec& grid,
                      BlockCheckpoint* checkpoint) {
    const Clock::time_point t = Clock::now();
    const AwqOptions options{GridOf(grid),
                             spec.grid_points(),
                             spec.duo_scaling(),
                             /*unscaled_candidate=*/true,
                             threads_,
                             spec.clip()};
    const int layer = w->layer >= 0 ? w->layer : block;
    std::vector<Tensor*> changed;
    ASSIGN_OR_RETURN(json entries,
                     AwqBlock(config_, layer, w, in, options, targets_, solver_, &changed));
    result_->awq_s += SecondsSince(t);
    RETURN_IF_ERROR(AfterRescale(layer, in, w, changed, checkpoint));
    if (checkpoint != nullptr) checkpoint->awq = entries;
    for (const json& e : entries) result_->awq.push_back(e);
    if (!entries.empty()) EmitLog(events_, "info", AwqLogLine(entries));
    return absl::OkStatus();
  }

  // Says which experts of layer `block` fall back to the pooled Hessian.
  void ReportPooled(int block, const std::vector<int64_t>& tokens) const {
    std::string few;
    for (size_t e = 0; e < tokens.size(); ++e) {
      if (tokens[e] >= std::max(min_expert_tokens_, 1)) continue;
      absl::StrAppend(&few, few.empty() ? "" : ", ", e, " (", tokens[e], ")");
    }
    if (few.empty()) return;
    EmitLog(events_, "warning",
            absl::StrCat("model.layers.", block, ": experts routed fewer than ",
                         std::max(min_expert_tokens_, 1),
                         " calibration tokens (calibration.min_expert_tokens) are calibrated "
                         "with the layer's pooled Hessian: ",
                         few));
  }

  const engine::LlamaConfig& config_;
  const v1::Recipe& recipe_;
  const std::vector<v1::Recipe> block_recipes_;  // per block with OWL; else empty
  const std::set<std::string>& targets_;
  const int threads_;
  SolverBackend& solver_;
  EventSink& events_;
  const CancelToken& cancel_;
  CompressionResult* result_;
  const bool true_sequential_;
  const int min_expert_tokens_;
};

// Restores block `block` from its checkpoint into model.blocks[block] (which
// must hold the block) when one with `fingerprint` is stored; whether it did.
absl::StatusOr<bool> RestoreBlock(engine::LlamaModel& model, int block, CheckpointStore& store,
                                  const std::string& fingerprint, EventSink& events,
                                  CompressionResult* result) {
  absl::StatusOr<std::string> bytes = store.Get(CheckpointName(block));
  if (absl::IsNotFound(bytes.status())) return false;
  RETURN_IF_ERROR(bytes.status());
  ASSIGN_OR_RETURN(BlockCheckpoint c, DecodeBlockCheckpoint(*bytes, CheckpointName(block)));
  if (c.fingerprint != fingerprint || c.block != block) {
    EmitLog(events, "warning",
            absl::StrCat(CheckpointName(block),
                         ": from a different model, recipe or calibration "
                         "set; recomputing from block ",
                         block));
    return false;
  }
  std::map<std::string, Tensor*> by_name;
  for (const engine::NamedTensor& t : engine::NamedTensors(&model)) by_name[t.name] = t.tensor;
  for (auto& [name, tensor] : c.weights) {
    auto it = by_name.find(name);
    if (it == by_name.end() || it->second->shape != tensor.shape) {
      return absl::DataLossError(
          absl::StrCat(CheckpointName(block), ": tensor ", name, " does not fit the model"));
    }
    *it->second = tensor;
  }
  for (const json& entry : c.layers) {
    AddTotals(entry, result);
    EmitLayerMetrics(entry, events);
  }
  for (auto& [name, q] : c.quantized) result->quantized[name] = std::move(q);
  for (const json& e : c.awq) result->awq.push_back(e);
  for (const json& e : c.smoothquant) result->smoothquant.push_back(e);
  return true;
}

// Block-at-a-time (embedding rows from the stream) and spilled activations.
engine::BlockRunnerOptions RunnerOptions(BlockStream* stream, const std::string& spill_dir,
                                         EventSink& events) {
  engine::BlockRunnerOptions options;
  options.spill_dir = spill_dir;
  if (!spill_dir.empty()) {
    EmitLog(events, "info",
            absl::StrCat("calibration activations in scratch files under ", spill_dir,
                         " (they do not fit the memory budget)"));
  }
  if (stream != nullptr) {
    options.embed = [stream](const engine::SequenceBatch& batch, float* hidden) {
      return stream->Embed(batch, hidden);
    };
  }
  return options;
}

}  // namespace

std::string CalibrationFingerprint(const engine::LlamaModel& model, const v1::Recipe& recipe,
                                   const CalibrationSet& calibration, int threads) {
  std::string key;
  recipe.stages().size() > 0 ? key += "v1" : key += "v0";
  for (const v1::Stage& s : recipe.stages()) key += s.SerializeAsString();
  for (const v1::LayerOverride& o : recipe.overrides()) key += o.SerializeAsString();
  key += recipe.targets().SerializeAsString() + recipe.calibration().SerializeAsString();
  if (recipe.compute() == "bf16") key += "|compute bf16";
  const engine::LlamaConfig& c = model.config;
  key += absl::StrCat("|", c.model_type, "|", c.n_layers, "|", c.hidden, "|", c.intermediate, "|",
                      c.vocab, "|", threads, "|");
  if (!model.blocks.empty()) {
    const Tensor& q = model.blocks.front().q_proj;
    key += Sha256Hex(std::string_view(reinterpret_cast<const char*>(q.data), q.numel() * 4));
  }
  for (const auto& seq : calibration.sequences) {
    key.append(reinterpret_cast<const char*>(seq.data()), seq.size() * sizeof(int32_t));
  }
  return Sha256Hex(key);
}

absl::Status CompressCalibrated(engine::LlamaModel& model, engine::Backend& backend,
                                const v1::Recipe& recipe, const std::vector<ModelTarget>& targets,
                                const CalibrationSet& calibration, int threads,
                                CheckpointStore* checkpoints, EventSink& events,
                                const CancelToken& cancel, CompressionResult* result,
                                BlockStream* stream, const std::string& spill_dir,
                                SolverBackend* solver) {
  RETURN_IF_ERROR(CheckBlockTargets(model, targets));
  const std::set<std::string> target_modules = TargetModules(targets);
  const int n = model.config.n_layers;
  if (stream != nullptr) RETURN_IF_ERROR(stream->Load(0, &model.blocks[0]));  // the fingerprint's
  const std::string fingerprint = CalibrationFingerprint(model, recipe, calibration, threads);
  Clock::time_point t = Clock::now();
  const engine::BlockRunnerOptions runner_options = RunnerOptions(stream, spill_dir, events);
  ASSIGN_OR_RETURN(std::vector<v1::Recipe> block_recipes,
                   OwlBlockRecipes(model, backend, recipe, target_modules, calibration, stream,
                                   runner_options, events, cancel, &result->owl));
  ASSIGN_OR_RETURN(
      std::unique_ptr<engine::BlockRunner> runner,
      engine::BlockRunner::Create(&model, &backend, calibration.sequences, runner_options));
  result->forward_s += SecondsSince(t);
  SolverBackend& layer_solver = solver != nullptr ? *solver : engine::DefaultCpuSolver();
  BlockCompressor compressor(model.config, recipe, target_modules, threads, layer_solver, events,
                             cancel, result, std::move(block_recipes));
  // Blocks with a stored checkpoint run with its weights (no solves) until
  // the first one without.
  bool resuming = checkpoints != nullptr;
  while (!runner->done()) {
    const int block = runner->next_block();
    if (stream != nullptr && block > 0) RETURN_IF_ERROR(stream->Load(block, &model.blocks[block]));
    if (resuming) {
      ASSIGN_OR_RETURN(resuming,
                       RestoreBlock(model, block, *checkpoints, fingerprint, events, result));
      if (resuming) {
        RETURN_IF_ERROR(
            MarkW8A8(recipe, target_modules, model.config, block, &model.blocks[block]));
        t = Clock::now();
        RETURN_IF_ERROR(runner->RunNextBlock(nullptr));
        result->forward_s += SecondsSince(t);
        ++result->resumed_blocks;
        if (stream != nullptr) RETURN_IF_ERROR(stream->Done(block, &model.blocks[block]));
        continue;
      }
      if (result->resumed_blocks > 0) {
        EmitLog(events, "info",
                absl::StrCat("resumed from checkpoints: blocks 0-", result->resumed_blocks - 1,
                             " of ", n, " already done"));
      }
    }
    EmitProgress(events, "calibrate", block, n, absl::StrCat("block ", block));
    BlockCheckpoint checkpoint;
    double in_hook = 0;
    t = Clock::now();
    RETURN_IF_ERROR(runner->RunNextBlock(
        [&](int i, const engine::LinearInputs& in, BlockWeights* w) -> absl::Status {
          const Clock::time_point h = Clock::now();
          absl::Status s = compressor.Run(i, in, w, &checkpoint);
          in_hook = SecondsSince(h);
          return s;
        }));
    // Forward time: the block's passes minus the hook (whose own refresh
    // passes the compressor already counted).
    result->forward_s += SecondsSince(t) - in_hook;
    if (checkpoints != nullptr) {
      const Clock::time_point c = Clock::now();
      checkpoint.fingerprint = fingerprint;
      checkpoint.block = block;
      RETURN_IF_ERROR(checkpoints->Put(CheckpointName(block), EncodeBlockCheckpoint(checkpoint)));
      result->checkpoint_s += SecondsSince(c);
    }
    if (stream != nullptr) RETURN_IF_ERROR(stream->Done(block, &model.blocks[block]));
    EmitLog(events, "info",
            absl::StrFormat("block %d of %d compressed (%d layers so far)", block + 1, n,
                            result->layers.size()));
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
  }
  EmitProgress(events, "calibrate", n, n, "done");
  return absl::OkStatus();
}

}  // namespace compressd::engine
