#include "server/models/model_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/models/upload_session.h"

namespace compressd {

ModelRegistry::ModelRegistry(Store& store, BlobStore& blobs, ServerMetrics& metrics,
                             UploadLimits limits)
    : store_(store), blobs_(blobs), metrics_(metrics), limits_(limits) {}

namespace {

// `record` if `scope` may see it, else NOT_FOUND as for a missing one.
template <typename T>
absl::StatusOr<T> InScope(absl::StatusOr<T> record, const Scope& scope, const char* noun,
                          const std::string& id) {
  if (record.ok() && !scope.Allows(record->tenant())) {
    return absl::NotFoundError(absl::StrCat(noun, " ", id, " not found"));
  }
  return record;
}

}  // namespace

std::unique_ptr<UploadSession> ModelRegistry::StartUpload(const std::string& tenant) {
  return std::make_unique<VerifiedUpload>(store_, blobs_, metrics_, limits_, tenant);
}

absl::StatusOr<v1::Model> ModelRegistry::GetModel(const std::string& id, const Scope& scope) {
  if (id.empty()) return absl::InvalidArgumentError("model_id: required");
  return InScope(store_.GetModel(id), scope, "model", id);
}

absl::StatusOr<v1::ListModelsResponse> ModelRegistry::ListModels(const v1::ListModelsRequest& req,
                                                                 const Scope& scope) {
  ASSIGN_OR_RETURN(Page<v1::Model> page,
                   store_.ListModels(req.page_size(), req.page_token(), scope.tenant));
  v1::ListModelsResponse resp;
  for (v1::Model& model : page.items) *resp.add_models() = std::move(model);
  resp.set_next_page_token(page.next_page_token);
  return resp;
}

absl::Status ModelRegistry::DeleteModel(const std::string& id, const Scope& scope) {
  RETURN_IF_ERROR(GetModel(id, scope).status());
  return store_.DeleteModel(id);
}

absl::Status ModelRegistry::DeleteDataset(const std::string& id, const Scope& scope) {
  RETURN_IF_ERROR(GetDataset(id, scope).status());
  return store_.DeleteDataset(id);
}

absl::StatusOr<v1::Dataset> ModelRegistry::GetDataset(const std::string& id, const Scope& scope) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  return InScope(store_.GetDataset(id), scope, "dataset", id);
}

absl::StatusOr<v1::ListDatasetsResponse> ModelRegistry::ListDatasets(
    const v1::ListDatasetsRequest& req, const Scope& scope) {
  ASSIGN_OR_RETURN(Page<v1::Dataset> page,
                   store_.ListDatasets(req.page_size(), req.page_token(), scope.tenant));
  v1::ListDatasetsResponse resp;
  for (v1::Dataset& dataset : page.items) *resp.add_datasets() = std::move(dataset);
  resp.set_next_page_token(page.next_page_token);
  return resp;
}

}  // namespace compressd
