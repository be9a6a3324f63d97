#include "client/commands/models.h"

#include <string>
#include <vector>

#include "client/commands/describe.h"
#include "client/commands/upload_stream.h"
#include "common/status_macros.h"

namespace compressd::client {

using Stub = v1::CompressionService::Stub;

absl::Status ModelsUpload(CommandContext& context) {
  const Invocation& inv = context.invocation();
  ASSIGN_OR_RETURN(ModelFiles local, ListModelFiles(inv.args[0]));
  const std::string name = inv.Get("name", local.default_name);
  // Connect before hashing so an unreachable server fails fast.
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::Model model;
  RETURN_IF_ERROR((RunUpload<v1::UploadModelRequest>(
      context, &local.files,
      [connection](grpc::ClientContext* rpc, v1::Model* response) {
        return connection->stub().UploadModel(rpc, response);
      },
      [&](const std::vector<LocalFile>& files) {
        v1::UploadModelRequest request;
        v1::UploadModelHeader* header = request.mutable_header();
        header->set_name(name);
        header->set_format(local.format);
        for (const LocalFile& file : files) *header->add_files() = file.entry;
        return request;
      },
      &model)));
  context.out() << (context.json() ? ToJson(model) : model.id()) << "\n";
  return absl::OkStatus();
}

absl::Status ModelsList(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::ListModelsResponse all;
  v1::ListModelsRequest request;
  do {
    ASSIGN_OR_RETURN(v1::ListModelsResponse page,
                     Call<v1::ListModelsResponse>(*connection, &Stub::ListModels, request));
    for (v1::Model& model : *page.mutable_models()) *all.add_models() = std::move(model);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (context.json()) {
    context.out() << ToJson(all) << "\n";
  } else {
    context.out() << ModelTable({all.models().begin(), all.models().end()});
  }
  return absl::OkStatus();
}

absl::Status ModelsGet(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetModelRequest request;
  request.set_model_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Model model, Call<v1::Model>(*connection, &Stub::GetModel, request));
  context.out() << (context.json() ? ToJson(model) + "\n" : DescribeModel(model));
  return absl::OkStatus();
}

absl::Status ModelsDelete(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::DeleteModelRequest request;
  request.set_model_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::DeleteModelResponse response,
                   Call<v1::DeleteModelResponse>(*connection, &Stub::DeleteModel, request));
  context.out() << (context.json() ? ToJson(response) : "deleted " + request.model_id()) << "\n";
  return absl::OkStatus();
}

}  // namespace compressd::client
