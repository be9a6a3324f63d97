#include "server/models/model_registry.h"

#include <utility>

#include "common/status_macros.h"
#include "server/models/upload_session.h"

namespace compressd {

ModelRegistry::ModelRegistry(Store& store, BlobStore& blobs, ServerMetrics& metrics,
                             UploadLimits limits)
    : store_(store), blobs_(blobs), metrics_(metrics), limits_(limits) {}

std::unique_ptr<UploadSession> ModelRegistry::StartUpload() {
  return std::make_unique<VerifiedUpload>(store_, blobs_, metrics_, limits_);
}

absl::StatusOr<v1::Model> ModelRegistry::GetModel(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("model_id: required");
  return store_.GetModel(id);
}

absl::StatusOr<v1::ListModelsResponse> ModelRegistry::ListModels(
    const v1::ListModelsRequest& req) {
  ASSIGN_OR_RETURN(Page<v1::Model> page, store_.ListModels(req.page_size(), req.page_token()));
  v1::ListModelsResponse resp;
  for (v1::Model& model : page.items) *resp.add_models() = std::move(model);
  resp.set_next_page_token(page.next_page_token);
  return resp;
}

absl::Status ModelRegistry::DeleteModel(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("model_id: required");
  return store_.DeleteModel(id);
}

absl::Status ModelRegistry::DeleteDataset(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  return store_.DeleteDataset(id);
}

absl::StatusOr<v1::Dataset> ModelRegistry::GetDataset(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  return store_.GetDataset(id);
}

absl::StatusOr<v1::ListDatasetsResponse> ModelRegistry::ListDatasets(
    const v1::ListDatasetsRequest& req) {
  ASSIGN_OR_RETURN(Page<v1::Dataset> page,
                   store_.ListDatasets(req.page_size(), req.page_token()));
  v1::ListDatasetsResponse resp;
  for (v1::Dataset& dataset : page.items) *resp.add_datasets() = std::move(dataset);
  resp.set_next_page_token(page.next_page_token);
  return resp;
}

}  // namespace compressd
