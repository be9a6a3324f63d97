// The client side of an upload stream (UploadModel / UploadDataset): hash the
// files, send the header, then the chunks, with a progress bar on a terminal.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/context.h"
#include "client/commands/byte_progress.h"
#include "client/commands/upload.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace compressd::client {

// `start_call(context, response)` opens the stream; `header` is the first
// request. Hashes `files` (filling their entries) before calling
// `make_header`, which builds the header request from them.
template <typename Request, typename Response, typename StartCall, typename MakeHeader>
absl::Status RunUpload(CommandContext& context, std::vector<LocalFile>* files, StartCall start_call,
                       MakeHeader make_header, Response* response) {
  ByteProgressBar progress(context);
  RETURN_IF_ERROR(HashFiles(files, progress.Stage("hash")));
  progress.Finish();

  grpc::ClientContext rpc;  // no deadline: uploads may be large
  std::unique_ptr<grpc::ClientWriter<Request>> writer = start_call(&rpc, response);
  bool stream_ok = writer->Write(make_header(*files));
  absl::Status local = absl::OkStatus();
  if (stream_ok) {
    local = SendFileChunks(
        *files,
        [&writer](v1::FileChunk* chunk) {
          Request request;
          request.mutable_chunk()->Swap(chunk);
          return writer->Write(request);
        },
        progress.Stage("upload"), &stream_ok);
    progress.Finish();
  }
  if (!local.ok()) {
    rpc.TryCancel();
    writer->Finish();
    return local;
  }
  if (stream_ok) writer->WritesDone();
  return FromGrpcStatus(writer->Finish());
}

}  // namespace compressd::client
