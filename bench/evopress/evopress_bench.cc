// One EvoPress generation at the results-table settings (docs/results.md:
// 8 offspring, survivors [2, 1] on 1024 / 4096 tokens of 512-token windows)
// through the evaluator (workers/engine/evopress/evaluator.h) on a real model,
// before and after the step's dense logits are kept (exact), and with
// compute: bf16 before and after.
// Builds or reuses the sparsity levels database in --db; the parent is the
// uniform --target configuration, the offspring its mutations, and step 1's
// pool the parent and the first --keep offspring (standing in for step 0's
// survivors). Prints each variant's step times, generations per minute, the
// ratio to "before" (prefix reuse alone) and whether its values equal the
// first variant's.
//
//   evopress_bench --model SmolLM2-135M-Instruct.Q4_1.gguf
//       --calib shared/data/text/sotu --db /tmp/evodb [--target 0.6]
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/evopress/search.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/nn/bf16_gemm.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/eval_sets.h"
#include "workers/engine/runtime/checkpoint.h"

ABSL_FLAG(std::string, model, "", "GGUF model");
ABSL_FLAG(std::string, calib, "", "calibration text file or folder");
ABSL_FLAG(std::string, db, "", "levels database directory (built when missing)");
ABSL_FLAG(int, samples, 32, "calibration windows");
ABSL_FLAG(int, seq_len, 512, "calibration / fitness window length");
ABSL_FLAG(double, target, 0.6, "sparsity target");
ABSL_FLAG(int, offspring, 8, "offspring of the generation");
ABSL_FLAG(int64_t, tokens, 1024, "fitness tokens of the first selection step");
ABSL_FLAG(int64_t, tokens1, 4096, "fitness tokens of the second selection step");
ABSL_FLAG(int, threads, 0, "threads (0: all cores)");
ABSL_FLAG(int, keep, 2, "survivors of the first selection step");

namespace compressd::engine::evopress {
namespace {

class StderrSink : public EventSink {
 public:
  void Emit(const v1::JobEvent& e) override {
    if (e.has_log()) std::fprintf(stderr, "%s\n", e.log().message().c_str());
  }
};

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Step {
  std::vector<std::vector<int32_t>> windows;
  std::vector<Config> pool;
};

// Times one generation (`steps`) with each evaluator variant and prints a row each.
absl::Status TimeVariants(const engine::LlamaModel& model, const SearchSpace& space, LevelsDb& db,
                          const Config& parent, const std::vector<Step>& steps) {
  const int64_t kGiB = int64_t{1} << 30;
  engine::CpuBackend backend(engine::CpuBackendOptions{absl::GetFlag(FLAGS_threads), 128});
  engine::CpuBackendOptions bo{absl::GetFlag(FLAGS_threads), 128};
  bo.bf16_gemm = engine::Bf16GemmAvailable().ok();
  engine::CpuBackend bf16_backend(bo);
  CancelToken cancel;
  struct Variant {
    const char* name;
    bool reuse, bf16;
    int64_t logits;
  };
  const std::vector<Variant> variants = {{"no prefix reuse", false, false, 0},
                                         {"before (prefix reuse)", true, false, 0},
                                         {"after (+ dense logits kept)", true, false, kGiB},
                                         {"before, compute: bf16", true, true, 0},
                                         {"after, compute: bf16", true, true, kGiB}};
  std::vector<std::vector<double>> reference;
  double before_s = 0;
  for (const Variant& v : variants) {
    if (v.bf16 && !bo.bf16_gemm) continue;
    EvaluatorOptions o;
    o.prefix_reuse = v.reuse;
    o.dense_logits_bytes = v.logits;
    engine::Backend* be = v.bf16 ? &bf16_backend : &backend;
    ASSIGN_OR_RETURN(auto evaluator, CandidateEvaluator::Create(model, be, space, &db, o));
    if (reference.empty()) {  // warm the database cache: every variant times evaluation only
      RETURN_IF_ERROR(evaluator->SetWindows({steps[0].windows.front()}));
      RETURN_IF_ERROR(evaluator->Evaluate(steps[0].pool, nullptr, cancel).status());
    }
    double total = 0;
    std::string line;
    bool same = true;
    for (size_t k = 0; k < steps.size(); ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(evaluator->SetWindows(steps[k].windows));
      ASSIGN_OR_RETURN(std::vector<double> f, evaluator->Evaluate(steps[k].pool, &parent, cancel));
      const double sec = Seconds(t0);
      total += sec;
      absl::StrAppendFormat(&line, " step %d %6.2f s", static_cast<int>(k), sec);
      if (reference.size() <= k) reference.push_back(f);
      same = same && f == reference[k];  // BF16 changes the arithmetic: not compared
    }
    if (before_s == 0 && v.reuse) before_s = total;
    const EvaluatorStats& st = evaluator->stats();
    std::printf(
        "%-28s%s  generation %6.2f s = %5.2f / min (x%.2f of before)  block-tokens "
        "%lld  same values: %s\n",
        v.name, line.c_str(), total, 60.0 / total, before_s > 0 ? before_s / total : 0.0,
        static_cast<long long>(st.block_tokens),
        v.bf16 ? "(bf16)"
        : same ? "yes"
               : "NO");
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string path = absl::GetFlag(FLAGS_model);
  ASSIGN_OR_RETURN(engine::LlamaModel model, engine::LoadModel(path));
  ASSIGN_OR_RETURN(engine::Tokenizer tokenizer, LoadModelTokenizer(path, /*gguf=*/true));
  v1::Calibration c;
  c.set_path(absl::GetFlag(FLAGS_calib));
  c.set_samples(absl::GetFlag(FLAGS_samples));
  c.set_seq_len(absl::GetFlag(FLAGS_seq_len));
  ASSIGN_OR_RETURN(CalibrationSet calib, LoadCalibrationSet(c, tokenizer, RunOptions{}));
  v1::Stage stage;
  v1::EvoPressStage* e = stage.mutable_evopress();
  e->set_mode("sparsity");
  e->set_target(absl::GetFlag(FLAGS_target));
  ApplyStageDefaults(&stage);
  std::vector<std::string> modules;
  for (int b = 0; b < model.config.n_layers; ++b) {
    for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      modules.push_back(absl::StrCat("model.layers.", b, ".", p));
    }
  }
  ASSIGN_OR_RETURN(SearchSpace space, MakeSearchSpace(model, modules, *e, Mode::kSparsity));
  std::mt19937_64 rng(1);
  ASSIGN_OR_RETURN(Config parent, InitialConfig(space, e->target(), rng));
  engine::CpuBackend backend(engine::CpuBackendOptions{absl::GetFlag(FLAGS_threads), 128});
  DirCheckpointStore store(absl::GetFlag(FLAGS_db));
  LevelsDbSpec spec;
  spec.build = DbBuild::kDenseInputs;  // one dense pass: the bench times the evaluator
  LevelsDb db(&store, LevelsDbFingerprint(model, calib.sequences, spec, space), space, spec);
  StderrSink sink;
  CancelToken cancel;
  RETURN_IF_ERROR(
      BuildLevelsDb(model, backend, calib.sequences, {}, backend.num_threads(), db, sink, cancel)
          .status());
  std::vector<Config> offspring;
  while (static_cast<int>(offspring.size()) < absl::GetFlag(FLAGS_offspring)) {
    Config child = Mutate(space, parent, rng);
    if (child != parent) offspring.push_back(std::move(child));
  }
  // One generation at the results-table settings: step 0, the offspring on
  // --tokens tokens keeping --keep; step 1, the parent and the first --keep
  // offspring (standing in for step 0's survivors) on --tokens1, keeping 1.
  const int64_t window = absl::GetFlag(FLAGS_seq_len);
  const int keep = absl::GetFlag(FLAGS_keep);
  std::vector<Step> steps(2);
  steps[0] = {DrawWindows(calib.stream, window, absl::GetFlag(FLAGS_tokens), 0, 0, 0), offspring};
  steps[1].windows = DrawWindows(calib.stream, window, absl::GetFlag(FLAGS_tokens1), 0, 0, 1);
  steps[1].pool = {parent};
  for (int k = 0; k < keep && k < static_cast<int>(offspring.size()); ++k) {
    steps[1].pool.push_back(offspring[k]);
  }
  return TimeVariants(model, space, db, parent, steps);
}

}  // namespace
}  // namespace compressd::engine::evopress

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = compressd::engine::evopress::Run();
  if (!s.ok()) {
    std::fprintf(stderr, "evopress_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
