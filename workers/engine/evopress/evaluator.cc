#include "workers/engine/evopress/evaluator.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine::evopress {
namespace {

using engine::LlamaForward;
using engine::SequenceBatch;

// Whole windows, at most `budget` tokens per micro-batch (at least one window).
absl::Status Pack(const std::vector<std::vector<int32_t>>& windows, int64_t budget,
                  std::vector<SequenceBatch>* micro, std::vector<int64_t>* micro_row) {
  micro->clear();
  micro_row->clear();
  int64_t row = 0;
  for (size_t w = 0; w < windows.size();) {
    std::vector<std::vector<int32_t>> part;
    int64_t n = 0;
    while (w < windows.size() &&
           (part.empty() || n + static_cast<int64_t>(windows[w].size()) <= budget)) {
      n += static_cast<int64_t>(windows[w].size());
      part.push_back(windows[w++]);
    }
    ASSIGN_OR_RETURN(SequenceBatch mb, SequenceBatch::Pack(part));
    micro->push_back(std::move(mb));
    micro_row->push_back(row);
    row += n;
  }
  return absl::OkStatus();
}

engine::Tensor Zeros(const engine::Tensor& like) {
  return engine::Tensor::Owned(like.shape, std::vector<float>(like.numel(), 0.0f));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CandidateEvaluator>> CandidateEvaluator::Create(
    const engine::LlamaModel& dense, engine::Backend* backend, const SearchSpace& space,
    LevelsDb* db, EvaluatorOptions options) {
  if (options.micro_batch_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_tokens must be >= 1, got ", options.micro_batch_tokens));
  }
  if (space.mode != Mode::kDrop && db == nullptr) {
    return absl::InvalidArgumentError("evopress: sparsity and bits modes need a levels database");
  }
  std::unique_ptr<CandidateEvaluator> e(new CandidateEvaluator(dense, space, db, options));
  ASSIGN_OR_RETURN(LlamaForward d, LlamaForward::Create(&e->dense_, backend));
  ASSIGN_OR_RETURN(LlamaForward w, LlamaForward::Create(&e->work_, backend));
  e->dense_fwd_ = std::make_unique<LlamaForward>(std::move(d));
  e->work_fwd_ = std::make_unique<LlamaForward>(std::move(w));
  return e;
}

absl::Status CandidateEvaluator::SetWindows(const std::vector<std::vector<int32_t>>& windows) {
  RETURN_IF_ERROR(Pack(windows, options_.micro_batch_tokens, &micro_, &micro_row_));
  targets_.clear();
  tokens_ = 0;
  const int64_t logit_bytes = sizeof(float) * dense_.config.vocab;
  int64_t kept_bytes = 0;
  for (const SequenceBatch& mb : micro_) {
    ASSIGN_OR_RETURN(std::vector<float> normed, dense_fwd_->FinalHidden(mb));
    const bool keep = kept_bytes + mb.tokens() * logit_bytes <= options_.dense_logits_bytes;
    if (keep) kept_bytes += mb.tokens() * logit_bytes;
    ASSIGN_OR_RETURN(DenseTargets t,
                     MakeDenseTargets(*dense_fwd_, mb, std::move(normed), options_.fitness, keep));
    targets_.push_back(std::move(t));
    tokens_ += mb.tokens();
  }
  return absl::OkStatus();
}

int64_t CandidateEvaluator::tokens() const { return tokens_; }

absl::Status CandidateEvaluator::Apply(const Config& config) {
  for (size_t u = 0; u < space_.units.size(); ++u) {
    if (!work_config_.empty() && work_config_[u] == config[u]) continue;
    const Unit& unit = space_.units[u];
    if (space_.mode == Mode::kDrop) {
      engine::BlockParts& p = parts_[unit.block];
      (unit.attention ? p.attention : p.mlp) = config[u] == 0;
      continue;
    }
    ASSIGN_OR_RETURN(std::shared_ptr<const LevelWeight> w, db_->Load(u, config[u]));
    UnitWeight(work_.blocks[unit.block], unit) = w->weight;
  }
  work_config_ = config;
  return absl::OkStatus();
}

int CandidateEvaluator::FirstChangedBlock(const Config& a, const Config& b) const {
  int first = dense_.config.n_layers;
  for (size_t u = 0; u < space_.units.size(); ++u) {
    if (a[u] != b[u]) first = std::min(first, space_.units[u].block);
  }
  return first;
}

absl::StatusOr<double> CandidateEvaluator::Run(const RunPlan& plan) {
  const int n = dense_.config.n_layers;
  const int64_t hidden = dense_.config.hidden;
  const int first = plan.first;
  const int stop = plan.score || plan.capture == nullptr || plan.capture->empty()
                       ? n
                       : plan.capture->rbegin()->first;
  FitnessSums total;
  engine::BlockWorkspace ws;
  for (size_t m = 0; m < micro_.size(); ++m) {
    const SequenceBatch& mb = micro_[m];
    const int64_t t = mb.tokens(), row = micro_row_[m];
    std::vector<float> h(t * hidden);
    if (first == 0) {
      RETURN_IF_ERROR(work_fwd_->Embed(mb, h.data()));
    } else {
      std::memcpy(h.data(), plan.from->at(first).data() + row * hidden, sizeof(float) * t * hidden);
    }
    for (int i = first; i < n; ++i) {
      if (plan.capture != nullptr && plan.capture->count(i)) {
        std::memcpy((*plan.capture)[i].data() + row * hidden, h.data(), sizeof(float) * t * hidden);
      }
      if (i == stop) break;
      RETURN_IF_ERROR(work_fwd_->RunBlockParts(work_.blocks[i], parts_[i], mb, h.data(), &ws));
    }
    if (!plan.score) continue;
    std::vector<float> normed(t * hidden);
    work_fwd_->FinalNorm(h.data(), t, normed.data());
    RETURN_IF_ERROR(ScoreBatch(*dense_fwd_, *work_fwd_, mb, normed.data(), targets_[m],
                               options_.fitness, &total));
  }
  if (plan.score) {
    ++stats_.candidates;
    stats_.tokens += tokens_;
  }
  stats_.block_tokens += int64_t{stop - first} * tokens_;
  stats_.block_tokens_saved += int64_t{first} * tokens_;
  return plan.score ? FitnessValue(options_.fitness, total) : 0.0;
}

absl::StatusOr<std::vector<double>> CandidateEvaluator::Evaluate(const std::vector<Config>& configs,
                                                                 const Config* base,
                                                                 const CancelToken& cancel,
                                                                 double* base_fitness) {
  if (micro_.empty()) return absl::FailedPreconditionError("evopress: SetWindows first");
  for (const Config& c : configs) {
    if (c.size() != space_.units.size()) {
      return absl::InvalidArgumentError(absl::StrCat("evopress: a configuration has ", c.size(),
                                                     " levels for ", space_.units.size(),
                                                     " units"));
    }
  }
  std::vector<double> out(configs.size());
  const int n = dense_.config.n_layers;
  const bool reuse = base != nullptr && options_.prefix_reuse;
  std::vector<int> first(configs.size(), 0);
  BlockCache cache;
  bool base_scored = base_fitness != nullptr;
  for (size_t i = 0; reuse && i < configs.size(); ++i) {
    first[i] = FirstChangedBlock(*base, configs[i]);
    if (first[i] > 0 && first[i] < n) cache[first[i]].resize(tokens_ * dense_.config.hidden);
    base_scored = base_scored || first[i] == n;
  }
  double base_value = 0;
  if (base != nullptr && (base_scored || !cache.empty())) {
    RETURN_IF_ERROR(Apply(*base));
    RunPlan plan;
    plan.capture = reuse ? &cache : nullptr;
    plan.score = base_scored;
    ASSIGN_OR_RETURN(base_value, Run(plan));
    if (base_fitness != nullptr) *base_fitness = base_value;
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    if (reuse && first[i] == n) {  // the base itself
      out[i] = base_value;
    } else {
      RETURN_IF_ERROR(Apply(configs[i]));
      RunPlan plan;
      plan.first = first[i];
      plan.from = &cache;
      ASSIGN_OR_RETURN(out[i], Run(plan));
    }
  }
  return out;
}

absl::StatusOr<engine::LlamaModel> StitchModel(
    const engine::LlamaModel& dense, const SearchSpace& space, LevelsDb* db, const Config& config,
    std::map<std::string, engine::QuantizedTensor>* quantized) {
  engine::LlamaModel model = dense;
  for (size_t u = 0; u < space.units.size(); ++u) {
    const Unit& unit = space.units[u];
    engine::BlockWeights& b = model.blocks[unit.block];
    if (space.mode == Mode::kDrop) {
      if (config[u] == 0) continue;
      if (unit.attention) {
        b.o_proj = Zeros(b.o_proj);
      } else if (b.experts.empty()) {
        b.down_proj = Zeros(b.down_proj);
      } else {  // an MoE layer's MLP adds nothing once every expert's output is zero
        for (engine::ExpertWeights& e : b.experts) e.down_proj = Zeros(e.down_proj);
        if (!b.shared_expert.down_proj.empty()) {
          b.shared_expert.down_proj = Zeros(b.shared_expert.down_proj);
        }
      }
      continue;
    }
    if (db == nullptr) return absl::InvalidArgumentError("evopress: no levels database");
    ASSIGN_OR_RETURN(std::shared_ptr<const LevelWeight> w, db->Load(u, config[u]));
    UnitWeight(b, unit) = w->weight;
    if (quantized != nullptr && w->quantized) (*quantized)[unit.name + ".weight"] = *w->quantized;
  }
  return model;
}

}  // namespace compressd::engine::evopress
