// Models and datasets: verified uploads into the blob store, metadata in the
// Store. Thread-safe; an UploadSession is one stream's state and is not.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/compressd.pb.h"
#include "server/core/scope.h"
#include "server/metrics/server_metrics.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

struct UploadLimits {
  uint64_t max_file_bytes = 64ull << 30;   // RESOURCE_EXHAUSTED above
  uint64_t max_total_bytes = 256ull << 30;
  int max_files = 10000;
};

// Receives one upload stream: the header, then chunks in order. Any error is
// final for the session; nothing becomes visible unless Finish succeeds.
class UploadSession {
 public:
  virtual ~UploadSession() = default;
  // Validates names, paths (ValidateRelativePath), sizes, sha256 hex, duplicate
  // paths and the format's required files (HF_SAFETENSORS: config.json and at
  // least one *.safetensors; GGUF: exactly one *.gguf). INVALID_ARGUMENT
  // naming the field, e.g. "header.files[2].path".
  virtual absl::Status OnModelHeader(const v1::UploadModelHeader& header) = 0;
  virtual absl::Status OnDatasetHeader(const v1::UploadDatasetHeader& header) = 0;
  // INVALID_ARGUMENT for a chunk before the header, out of order, or past the
  // declared size; a file's sha256 is verified when its last byte arrives.
  virtual absl::Status OnChunk(const v1::FileChunk& chunk) = 0;
  // INVALID_ARGUMENT if the stream ended before every file was complete
  // ("truncated upload: file X has N of M bytes"); otherwise persists and
  // returns the model / dataset.
  virtual absl::StatusOr<v1::Model> FinishModel() = 0;
  virtual absl::StatusOr<v1::Dataset> FinishDataset() = 0;
};

class ModelRegistry {
 public:
  ModelRegistry(Store& store, BlobStore& blobs, ServerMetrics& metrics, UploadLimits limits = {});

  // The upload will belong to `tenant` (empty: the default tenant).
  std::unique_ptr<UploadSession> StartUpload(const std::string& tenant = "");

  // Every method: an object outside `scope` is NOT_FOUND like a missing one.
  absl::StatusOr<v1::Model> GetModel(const std::string& id, const Scope& scope = Scope::All());
  absl::StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& req,
                                                    const Scope& scope = Scope::All());
  absl::Status DeleteModel(const std::string& id, const Scope& scope = Scope::All());
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id, const Scope& scope = Scope::All());
  // FAILED_PRECONDITION while a QUEUED or RUNNING job uses it; NOT_FOUND.
  absl::Status DeleteDataset(const std::string& id, const Scope& scope = Scope::All());
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets(const v1::ListDatasetsRequest& req,
                                                        const Scope& scope = Scope::All());

 private:
  Store& store_;
  BlobStore& blobs_;
  ServerMetrics& metrics_;
  UploadLimits limits_;
};

}  // namespace compressd
