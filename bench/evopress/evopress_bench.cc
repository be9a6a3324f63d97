// Prefix reuse in EvoPress fitness evaluation (workers/engine/evopress/
// evaluator.h) on a real model: builds or reuses the sparsity levels database
// in --db, draws the windows of generation 0's first selection step, makes
// --offspring mutations of the uniform configuration and evaluates them (the
// parent first) with prefix reuse on and off. Prints both wall times, the
// block-token counts and whether every fitness value is bit-identical.
//
//   evopress_bench --model SmolLM2-135M-Instruct.Q4_1.gguf
//       --calib shared/data/text/sotu --db /tmp/evodb [--target 0.6 --tokens 2048]
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/evopress/evaluator.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/evopress/search.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/pipeline/eval_sets.h"
#include "workers/engine/nn/cpu_backend.h"

ABSL_FLAG(std::string, model, "", "GGUF model");
ABSL_FLAG(std::string, calib, "", "calibration text file or folder");
ABSL_FLAG(std::string, db, "", "levels database directory (built when missing)");
ABSL_FLAG(int, samples, 32, "calibration windows");
ABSL_FLAG(int, seq_len, 512, "calibration / fitness window length");
ABSL_FLAG(double, target, 0.6, "sparsity target");
ABSL_FLAG(int, offspring, 16, "candidates evaluated");
ABSL_FLAG(int64_t, tokens, 2048, "fitness tokens");
ABSL_FLAG(int, threads, 0, "threads (0: all cores)");

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
  const auto windows = DrawWindows(calib.stream, absl::GetFlag(FLAGS_seq_len),
                                   absl::GetFlag(FLAGS_tokens), 0, 0, 0);
  std::vector<double> fitness[2];
  for (int reuse = 1; reuse >= 0; --reuse) {
    EvaluatorOptions o;
    o.prefix_reuse = reuse == 1;
    ASSIGN_OR_RETURN(auto evaluator, CandidateEvaluator::Create(model, &backend, space, &db, o));
    RETURN_IF_ERROR(evaluator->SetWindows(windows));
    // Warm the database cache so both runs time evaluation only.
    RETURN_IF_ERROR(evaluator->Evaluate(offspring, nullptr, cancel).status());
    const EvaluatorStats before = evaluator->stats();
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(fitness[reuse], evaluator->Evaluate(offspring, &parent, cancel));
    const double s = Seconds(t0);
    std::printf("prefix_reuse=%d: %.2f s for %zu candidates + parent, block-tokens %lld "
                "(saved %lld)\n",
                reuse, s, offspring.size(),
                static_cast<long long>(evaluator->stats().block_tokens - before.block_tokens),
                static_cast<long long>(evaluator->stats().block_tokens_saved -
                                       before.block_tokens_saved));
  }
  std::printf("fitness bit-identical: %s\n", fitness[0] == fitness[1] ? "yes" : "NO");
  return absl::OkStatus();
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
