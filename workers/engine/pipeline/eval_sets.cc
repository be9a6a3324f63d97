#include "workers/engine/pipeline/eval_sets.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/tokenizer/gguf_tokenizer.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatchTokens = 4096;  // tokens per forward pass
constexpr uintmax_t kMaxTextBytes = 1ull << 30;

// The local file behind a set's source.
absl::StatusOr<std::string> SourcePath(const v1::EvalDataset& set, const std::string& field,
                                       const RunOptions& options) {
  if (!set.path().empty()) {
    if (!options.allow_local_paths) {
      return absl::InvalidArgumentError(
          absl::StrCat(field,
                       ".path: local paths are only for compress-worker run; upload the text "
                       "(compressctl datasets upload) and name it with dataset_id + file"));
    }
    return set.path();
  }
  if (!options.dataset_file) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".dataset_id: datasets are only available to jobs run by the service; use path"));
  }
  absl::StatusOr<std::string> path = options.dataset_file(set.dataset_id(), set.file());
  if (!path.ok()) {
    return absl::Status(path.status().code(), absl::StrCat(field, ": ", path.status().message()));
  }
  return path;
}

int64_t BatchWindows(const EvalSet& set) {
  return std::max<int64_t>(1, std::min(set.windows.n_windows, kBatchTokens / set.windows.window));
}

// The tokens of windows [first, first + n) of the set.
std::vector<int32_t> WindowSlice(const EvalSet& set, int64_t first, int64_t n) {
  const int64_t w = set.windows.window;
  return std::vector<int32_t>(set.tokens.begin() + first * w, set.tokens.begin() + (first + n) * w);
}

void Step(EvalProgress* progress, EventSink& events, const std::string& message) {
  EmitProgress(events, progress->stage, ++progress->done, progress->total, message);
}

}  // namespace

absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& field) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(field, ": ", path, ": no such file"));
  }
  if (fs::file_size(path, ec) > kMaxTextBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, ": ", path, ": larger than ", kMaxTextBytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof())
    return absl::InternalError(absl::StrCat(field, ": ", path, ": read failed"));
  return text.str();
}

absl::StatusOr<engine::Tokenizer> LoadModelTokenizer(const std::string& model_path, bool gguf) {
  if (gguf) return engine::LoadTokenizerFromGguf(model_path);
  const std::string path = (fs::path(model_path) / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": missing; evaluation tokenizes its text with the model's tokenizer, which an HF "
        "model directory must provide as tokenizer.json"));
  }
  return engine::Tokenizer::FromHfJsonFile(path);
}

absl::StatusOr<std::vector<EvalSet>> LoadEvalSets(const v1::Evaluation& evaluation,
                                                  const engine::Tokenizer& tokenizer,
                                                  const RunOptions& options) {
  std::vector<EvalSet> sets;
  for (int i = 0; i < evaluation.perplexity_size(); ++i) {
    const v1::EvalDataset& spec = evaluation.perplexity(i);
    const std::string field = absl::StrCat("evaluation.perplexity[", i, "]");
    ASSIGN_OR_RETURN(std::string path, SourcePath(spec, field, options));
    ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, field));
    EvalSet set;
    set.name = spec.name();
    set.source = spec.path().empty() ? absl::StrCat(spec.dataset_id(), "/", spec.file()) : path;
    set.windows.window = spec.window();
    set.windows.n_windows = spec.windows();
    set.tokens = tokenizer.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    set.text_tokens = static_cast<int64_t>(set.tokens.size());
    const int64_t needed = set.windows.window * set.windows.n_windows;
    if (set.text_tokens < needed) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " (", set.name, "): ", set.source, " has ", set.text_tokens,
                       " tokens, fewer than ", spec.windows(), " windows of ", spec.window(), " (",
                       needed, ")"));
    }
    set.tokens.resize(needed);
    set.windows.batch_windows = BatchWindows(set);
    sets.push_back(std::move(set));
  }
  return sets;
}

int EvalBatches(const EvalSet& set) {
  const int64_t b = BatchWindows(set);
  return static_cast<int>((set.windows.n_windows + b - 1) / b);
}

absl::StatusOr<EvalBatch> SetBatch(const EvalSet& set, int index) {
  const int64_t per = BatchWindows(set);
  EvalBatch b;
  b.first = index * per;
  b.n = std::min(per, set.windows.n_windows - b.first);
  ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> windows,
                   engine::CutWindows(WindowSlice(set, b.first, b.n), {set.windows.window, b.n, b.n}));
  ASSIGN_OR_RETURN(b.batch, engine::SequenceBatch::Pack(windows));
  return b;
}

void PerplexitySum::Add(const engine::PerplexityResult& r) {
  nll_sum_ += r.mean_nll * static_cast<double>(r.n_predicted);
  total_.n_windows += r.n_windows;
  total_.n_predicted += r.n_predicted;
}

engine::PerplexityResult PerplexitySum::Result() const {
  engine::PerplexityResult out = total_;
  out.mean_nll = out.n_predicted ? nll_sum_ / static_cast<double>(out.n_predicted) : 0;
  out.perplexity = std::exp(out.mean_nll);
  return out;
}

void CompareSum::Add(const engine::CompareResult& r) {
  kl_sum_ += r.mean_kl * static_cast<double>(r.n_positions);
  agree_sum_ += r.top1_agreement * static_cast<double>(r.n_positions);
  total_.n_positions += r.n_positions;
}

engine::CompareResult CompareSum::Result() const {
  engine::CompareResult out = total_;
  if (out.n_positions > 0) {
    out.mean_kl = kl_sum_ / static_cast<double>(out.n_positions);
    out.top1_agreement = agree_sum_ / static_cast<double>(out.n_positions);
  }
  return out;
}

std::string BatchMessage(const EvalSet& set, const EvalBatch& b, bool kl) {
  return absl::StrCat(set.name, kl ? ": KL windows " : ": windows ", b.first + b.n, "/",
                      set.windows.n_windows);
}

absl::StatusOr<engine::PerplexityResult> EvaluateSet(const engine::LlamaForward& forward,
                                                     const EvalSet& set, EvalProgress* progress,
                                                     EventSink& events, const CancelToken& cancel) {
  PerplexitySum sum;
  for (int i = 0; i < EvalBatches(set); ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    ASSIGN_OR_RETURN(EvalBatch b, SetBatch(set, i));
    ASSIGN_OR_RETURN(std::vector<double> nll, engine::NextTokenNll(forward, b.batch));
    sum.Add(engine::BatchPerplexity(nll, b.n));
    Step(progress, events, BatchMessage(set, b, false));
  }
  return sum.Result();
}

absl::StatusOr<engine::CompareResult> CompareOnSet(const engine::LlamaForward& dense,
                                                   const engine::LlamaForward& other,
                                                   const EvalSet& set, EvalProgress* progress,
                                                   EventSink& events, const CancelToken& cancel) {
  CompareSum sum;
  for (int i = 0; i < EvalBatches(set); ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    ASSIGN_OR_RETURN(EvalBatch b, SetBatch(set, i));
    ASSIGN_OR_RETURN(engine::CompareResult r, engine::CompareModels(dense, other, WindowSlice(set, b.first, b.n), {set.windows.window, b.n, b.n}));
    sum.Add(r);
    Step(progress, events, BatchMessage(set, b, true));
  }
  return sum.Result();
}

}  // namespace compressd::engine
