#include "client/commands/datasets.h"

#include <string>
#include <vector>

#include "client/commands/describe.h"
#include "client/commands/upload_stream.h"
#include "common/status_macros.h"

namespace compressd::client {

using Stub = v1::CompressionService::Stub;

absl::Status DatasetsUpload(CommandContext& context) {
  const Invocation& inv = context.invocation();
  ASSIGN_OR_RETURN(std::vector<LocalFile> files, ListDatasetFiles(inv.args));
  const std::string name = inv.Get("name");
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::Dataset dataset;
  RETURN_IF_ERROR((RunUpload<v1::UploadDatasetRequest>(
      context, &files,
      [connection](grpc::ClientContext* rpc, v1::Dataset* response) {
        return connection->stub().UploadDataset(rpc, response);
      },
      [&](const std::vector<LocalFile>& hashed) {
        v1::UploadDatasetRequest request;
        v1::UploadDatasetHeader* header = request.mutable_header();
        header->set_name(name);
        for (const LocalFile& file : hashed) *header->add_files() = file.entry;
        return request;
      },
      &dataset)));
  context.out() << (context.json() ? ToJson(dataset) : dataset.id()) << "\n";
  return absl::OkStatus();
}

absl::Status DatasetsList(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::ListDatasetsResponse all;
  v1::ListDatasetsRequest request;
  do {
    ASSIGN_OR_RETURN(v1::ListDatasetsResponse page,
                     Call<v1::ListDatasetsResponse>(*connection, &Stub::ListDatasets, request));
    for (v1::Dataset& dataset : *page.mutable_datasets()) *all.add_datasets() = std::move(dataset);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (context.json()) {
    context.out() << ToJson(all) << "\n";
  } else {
    context.out() << DatasetTable({all.datasets().begin(), all.datasets().end()});
  }
  return absl::OkStatus();
}

absl::Status DatasetsGet(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetDatasetRequest request;
  request.set_dataset_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Dataset dataset, Call<v1::Dataset>(*connection, &Stub::GetDataset, request));
  context.out() << (context.json() ? ToJson(dataset) + "\n" : DescribeDataset(dataset));
  return absl::OkStatus();
}

absl::Status DatasetsDelete(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::DeleteDatasetRequest request;
  request.set_dataset_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::DeleteDatasetResponse response,
                   Call<v1::DeleteDatasetResponse>(*connection, &Stub::DeleteDataset, request));
  context.out() << (context.json() ? ToJson(response) : "deleted " + request.dataset_id()) << "\n";
  return absl::OkStatus();
}

}  // namespace compressd::client
