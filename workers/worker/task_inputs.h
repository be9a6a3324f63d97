// The inputs of a leased task or part, fetched into its task directory:
//   <task_dir>/model/<relative paths>                  the model's files
//   <task_dir>/datasets/<dataset_id>/<relative paths>  the dataset files the
//                                                      recipe names
// each a link to the verified blob in the worker's BlobCache
// (<cache_dir>/blobs). The same fetch serves the task flow and the part flow.
// Thread-safe (BlobCache and WorkerClient are).
#pragma once

#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/worker/blob_cache.h"
#include "workers/worker/server_client.h"
#include "workers/worker/worker_options.h"

namespace compressd {

// (dataset id, file or folder the recipe names) -> its local path.
using DatasetFiles = std::map<std::pair<std::string, std::string>, std::string>;

struct TaskInputs {
  std::string model_dir;  // <task_dir>/model
  DatasetFiles datasets;
};

class InputFetcher {
 public:
  // Blobs are cached under `blob_dir`.
  InputFetcher(WorkerClient& client, std::string blob_dir, BlobCacheOptions options);

  // Fetches the model, then the dataset files the recipe's calibration and
  // evaluation name (dataset_files.h: a file, or every file under a folder),
  // emitting "fetch" progress. INVALID_ARGUMENT naming the recipe field for
  // a dataset the task lacks or a file the dataset lacks; CANCELLED once
  // `cancel` is set; BlobCache's errors otherwise.
  absl::StatusOr<TaskInputs> Fetch(const v1::Task& task, const std::string& task_dir,
                                   engine::EventSink& events, const engine::CancelToken& cancel);

 private:
  absl::Status FetchModel(const v1::Task& task, const std::string& model_dir,
                          engine::EventSink& events, const engine::CancelToken& cancel);
  absl::StatusOr<DatasetFiles> FetchDatasets(const v1::Task& task, const std::string& datasets_dir,
                                             engine::EventSink& events,
                                             const engine::CancelToken& cancel);
  // Fetches what `name` selects of `dataset` into <datasets_dir>/<dataset id>/;
  // returns the local path of `name`. `field` is the recipe field naming it.
  absl::StatusOr<std::string> FetchDatasetFiles(const v1::Dataset& dataset, const std::string& name,
                                                const std::string& field,
                                                const std::string& datasets_dir,
                                                engine::EventSink& events,
                                                const engine::CancelToken& cancel);

  WorkerClient& client_;
  BlobCache blobs_;
  const BlobCache::FetchFn fetch_;
};

// The RunOptions of a leased task or part: the worker's threads and device,
// no worker-local paths, dataset files from `datasets` (which must outlive
// the options).
engine::RunOptions LeasedRunOptions(const WorkerOptions& options, const DatasetFiles& datasets);

}  // namespace compressd
