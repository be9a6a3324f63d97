#include "workers/engine/calib/layer_stages.h"

#include <chrono>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/recipe_grid.h"
#include "common/recipe_spec.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/algorithms/spqr.h"
#include "workers/engine/algorithms/wanda.h"

namespace compressd::engine {
namespace {

using Clock = std::chrono::steady_clock;
using engine::LayerSolveResult;

engine::SpqrOptions SpqrOptionsOf(const v1::SpqrStage& s, int threads) {
  engine::SpqrOptions o;
  o.bits = s.bits();
  o.group_size = s.group_size();
  o.stat_bits = s.stat_bits();
  o.stat_group = s.stat_group();
  o.outlier_threshold =
      s.outliers() ? s.outlier_threshold() : std::numeric_limits<double>::infinity();
  o.act_order = s.act_order();
  o.block_size = s.block_size();
  o.percdamp = s.percdamp();
  o.threads = threads;
  return o;
}

// One stage on w; sets out->quantized when it quantizes.
absl::Status ApplyStage(const LayerStage& layer_stage, const std::string& tensor, float* w,
                        int64_t rows, int64_t cols, const float* h, int threads,
                        SolverBackend* solver, LayerOutcome* out) {
  const v1::Stage& stage = layer_stage.stage;
  const NMPattern& pattern = layer_stage.pattern;
  if (StageNeedsCalibration(stage) && h == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(tensor, ": stage ", StageKindName(stage), " needs calibration inputs"));
  }
  switch (stage.kind_case()) {
    case v1::Stage::kMagnitude:
      return ApplyMagnitude(stage.magnitude().sparsity(), pattern, w, rows, cols, tensor);
    case v1::Stage::kWanda: {
      engine::WandaOptions o{stage.wanda().sparsity(), pattern.n, pattern.m};
      const std::vector<float> norms = engine::InputNormsFromHessian(h, cols);
      return engine::PruneWanda(w, rows, cols, norms.data(), o, tensor);
    }
    case v1::Stage::kSparsegpt: {
      const v1::SparseGptStage& s = stage.sparsegpt();
      engine::SparseGptOptions o;
      o.sparsity = s.sparsity();
      o.nm_n = pattern.n;
      o.nm_m = pattern.m;
      o.mask_scope = s.row_masks() ? engine::MaskScope::kRow : engine::MaskScope::kBlock;
      o.block_size = s.block_size();
      o.percdamp = s.percdamp();
      if (s.has_quantize()) o.grid = GridOf(s.quantize());
      o.report_error = false;
      o.threads = threads;
      o.solver = solver;
      ASSIGN_OR_RETURN(LayerSolveResult r, engine::SparseGpt(w, rows, cols, h, o, tensor));
      out->dead_inputs = r.dead_inputs;
      if (r.quantized) out->quantized = std::move(r.quantized);
      return absl::OkStatus();
    }
    case v1::Stage::kGptq: {
      const v1::GptqStage& s = stage.gptq();
      engine::GptqOptions o;
      o.grid = GridOf(s.grid());
      o.act_order = s.act_order();
      o.static_groups = s.static_groups();
      o.massive_fallback = s.massive_fallback();
      o.block_size = s.block_size();
      o.percdamp = s.percdamp();
      o.report_error = false;
      o.threads = threads;
      o.solver = solver;
      ASSIGN_OR_RETURN(LayerSolveResult r, engine::Gptq(w, rows, cols, h, o, tensor));
      out->dead_inputs = r.dead_inputs;
      out->quantized = std::move(r.quantized);
      out->act_order_check = r.act_order_check;
      return absl::OkStatus();
    }
    case v1::Stage::kRtn: {
      ASSIGN_OR_RETURN(engine::QuantizedTensor q,
                       engine::QuantizeRtn(w, rows, cols, GridOf(stage.rtn().grid()), tensor));
      out->quantized = std::move(q);
      return absl::OkStatus();
    }
    case v1::Stage::kSpqr: {
      ASSIGN_OR_RETURN(
          LayerSolveResult r,
          engine::Spqr(w, rows, cols, h, SpqrOptionsOf(stage.spqr(), threads), tensor));
      out->dead_inputs = r.dead_inputs;
      out->quantized = std::move(r.quantized);
      return absl::OkStatus();
    }
    case v1::Stage::kEvopress:
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": evopress is a search over the whole model, not a layer stage"));
    case v1::Stage::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(tensor, ": a stage has no kind"));
}

}  // namespace

engine::QuantGrid GridOf(const v1::QuantGridSpec& spec) {
  return engine::QuantGrid{spec.bits(), spec.group_size(), !spec.asymmetric(), spec.scale_bits(),
                           GridIsFp8(spec)};
}

double BitsPerParameter(const std::optional<engine::QuantizedTensor>& q) {
  if (!q) return 16.0;
  if (q->spqr) {  // exactly what the spqr output stores
    return static_cast<double>(engine::SpqrStoredBits(*q)) / static_cast<double>(q->rows * q->cols);
  }
  const double group = q->grid.group_size > 0 ? static_cast<double>(q->grid.group_size)
                                              : static_cast<double>(q->cols);
  const double per_group = 16.0 + (q->grid.symmetric ? 0.0 : q->grid.bits);
  return q->grid.bits + per_group / group;
}

absl::StatusOr<LayerOutcome> CompressLayer(const v1::Recipe& recipe, const std::string& module,
                                           const std::string& tensor, float* w, int64_t rows,
                                           int64_t cols, const float* h, int threads,
                                           const float* original, SolverBackend* solver) {
  LayerOutcome out;
  std::vector<float> copy;
  if (h != nullptr && original == nullptr) {
    copy.assign(w, w + rows * cols);
    original = copy.data();
  }
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < recipe.stages_size(); ++i) {
    bool skip = false;
    ASSIGN_OR_RETURN(LayerStage stage, EffectiveLayerStage(recipe, i, module, &skip));
    if (skip) continue;
    RETURN_IF_ERROR(ApplyStage(stage, tensor, w, rows, cols, h, threads, solver, &out));
    ++out.stages_applied;
  }
  out.solve_seconds = SecondsSince(start);
  out.zeros = CountZeros(w, static_cast<size_t>(rows * cols));
  if (h != nullptr) {
    const Clock::time_point t = Clock::now();
    SolverBackend& s = solver != nullptr ? *solver : DefaultCpuSolver();
    ASSIGN_OR_RETURN(out.relative_error, s.RelativeError(original, w, h, rows, cols, threads));
    out.error_seconds = SecondsSince(t);
  }
  return out;
}

}  // namespace compressd::engine
