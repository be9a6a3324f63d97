#include "workers/worker/task_inputs.h"

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dataset_files.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/worker/task_files.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

// A dataset file or folder the recipe names: (dataset id, file or folder,
// the recipe field naming it).
using WantedFile = std::tuple<std::string, std::string, std::string>;

// The evaluation sets', then the calibration's.
std::vector<WantedFile> WantedDatasetFiles(const v1::Recipe& recipe) {
  std::vector<WantedFile> wanted;
  const auto& sets = recipe.evaluation().perplexity();
  for (int i = 0; i < sets.size(); ++i) {
    wanted.emplace_back(sets[i].dataset_id(), sets[i].file(),
                        absl::StrCat("recipe.evaluation.perplexity[", i, "]"));
  }
  const v1::Calibration& calib = recipe.calibration();
  wanted.emplace_back(calib.dataset_id(), calib.file(), "recipe.calibration");
  return wanted;
}

}  // namespace

InputFetcher::InputFetcher(WorkerClient& client, std::string blob_dir, BlobCacheOptions options)
    : client_(client),
      blobs_(std::move(blob_dir), options),
      fetch_([this](const std::string& sha, uint64_t offset, const BlobCache::ChunkFn& fn) {
        return client_.FetchBlob(sha, offset, fn);
      }) {}

absl::StatusOr<TaskInputs> InputFetcher::Fetch(const v1::Task& task, const std::string& task_dir,
                                               engine::EventSink& events,
                                               const engine::CancelToken& cancel) {
  TaskInputs inputs;
  inputs.model_dir = (fs::path(task_dir) / "model").string();
  RETURN_IF_ERROR(FetchModel(task, inputs.model_dir, events, cancel));
  ASSIGN_OR_RETURN(inputs.datasets,
                   FetchDatasets(task, (fs::path(task_dir) / "datasets").string(), events, cancel));
  return inputs;
}

absl::Status InputFetcher::FetchModel(const v1::Task& task, const std::string& model_dir,
                                      engine::EventSink& events,
                                      const engine::CancelToken& cancel) {
  const auto& files = task.model().files();
  std::vector<std::pair<std::string, std::string>> links;
  for (int i = 0; i < files.size(); ++i) {
    engine::EmitProgress(events, "fetch", i, files.size(), files[i].path());
    ASSIGN_OR_RETURN(std::string blob, blobs_.Get(files[i], fetch_, cancel));
    links.emplace_back(files[i].path(), blob);
  }
  engine::EmitProgress(events, "fetch", files.size(), files.size(), task.model().id());
  return LinkFiles(links, model_dir);
}

absl::StatusOr<DatasetFiles> InputFetcher::FetchDatasets(const v1::Task& task,
                                                         const std::string& datasets_dir,
                                                         engine::EventSink& events,
                                                         const engine::CancelToken& cancel) {
  DatasetFiles local;
  for (const auto& [id, name, field] : WantedDatasetFiles(task.recipe())) {
    if (id.empty() || local.count({id, name})) continue;
    auto dataset = std::find_if(task.datasets().begin(), task.datasets().end(),
                                [&id = id](const v1::Dataset& d) { return d.id() == id; });
    if (dataset == task.datasets().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".dataset_id: \"", id, "\" is not a dataset of this job"));
    }
    ASSIGN_OR_RETURN(std::string path,
                     FetchDatasetFiles(*dataset, name, field, datasets_dir, events, cancel));
    local[{id, name}] = std::move(path);
  }
  return local;
}

absl::StatusOr<std::string> InputFetcher::FetchDatasetFiles(
    const v1::Dataset& dataset, const std::string& name, const std::string& field,
    const std::string& datasets_dir, engine::EventSink& events, const engine::CancelToken& cancel) {
  const std::vector<const v1::FileEntry*> files = FilesUnder(dataset, name);
  if (files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".file: dataset ", dataset.id(),
                                                   " has no file or folder \"", name, "\""));
  }
  RETURN_IF_ERROR(ValidateRelativePath(dataset.id(), field + ".dataset_id"));
  const std::string dir = (fs::path(datasets_dir) / dataset.id()).string();
  const int total = static_cast<int>(files.size());
  std::vector<std::pair<std::string, std::string>> links;
  for (int k = 0; k < total; ++k) {
    engine::EmitProgress(events, "fetch", k, total,
                         absl::StrCat(dataset.id(), "/", files[k]->path()));
    ASSIGN_OR_RETURN(std::string blob, blobs_.Get(*files[k], fetch_, cancel));
    links.emplace_back(files[k]->path(), blob);
  }
  RETURN_IF_ERROR(LinkFiles(links, dir));
  engine::EmitProgress(events, "fetch", total, total, absl::StrCat(dataset.id(), "/", name));
  return (fs::path(dir) / name).string();
}

engine::RunOptions LeasedRunOptions(const WorkerOptions& options, const DatasetFiles& datasets) {
  engine::RunOptions run;
  run.threads = options.threads;
  // The forward pass runs on the CPU backend on every worker; the device of
  // a GPU worker runs the layer solves (the CUDA forward backend,
  // workers/cuda/cuda_backend.h, is not in the block runner yet).
  run.device = "cpu";
  run.solver = options.solver;
  run.allow_local_paths = false;
  run.memory_budget_bytes =
      options.memory_bytes > 0 ? options.memory_bytes : engine::DefaultMemoryBudgetBytes();
  run.dataset_file = [&datasets](const std::string& id,
                                 const std::string& file) -> absl::StatusOr<std::string> {
    auto it = datasets.find({id, file});
    if (it == datasets.end()) {
      return absl::NotFoundError(absl::StrCat("dataset ", id, " file ", file, " was not fetched"));
    }
    return it->second;
  };
  return run;
}

}  // namespace compressd
