#include "workers/worker/server_client.h"

#include <chrono>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

// Reads a server stream of BlobChunk into `on_chunk`; an error from it
// cancels the call and is returned.
absl::Status ReadChunks(grpc::ClientContext& ctx, grpc::ClientReader<v1::BlobChunk>& reader,
                        const WorkerClient::ChunkFn& on_chunk) {
  v1::BlobChunk chunk;
  absl::Status callback_status;
  while (reader.Read(&chunk)) {
    callback_status = on_chunk(chunk.data());
    if (!callback_status.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  absl::Status st = FromGrpcStatus(reader.Finish());
  return callback_status.ok() ? st : callback_status;
}

// Writes `header`, then the chunks `next_chunk` yields until an empty one,
// as an upload stream (oneof kind { header = 1; chunk = 2; }). An error from
// `next_chunk` cancels the call and is returned; otherwise the call's status.
template <typename Request, typename Header, typename NextChunk>
absl::Status WriteChunks(grpc::ClientContext& ctx, grpc::ClientWriter<Request>& writer,
                         const Header& header, NextChunk next_chunk) {
  Request msg;
  *msg.mutable_header() = header;
  bool open = writer.Write(msg);
  while (open) {
    absl::string_view chunk;
    absl::Status read = next_chunk(&chunk);
    if (!read.ok()) {
      ctx.TryCancel();
      writer.Finish();
      return read;
    }
    if (chunk.empty()) break;
    msg.set_chunk(chunk.data(), chunk.size());
    open = writer.Write(msg);
  }
  writer.WritesDone();
  return FromGrpcStatus(writer.Finish());
}

}  // namespace

WorkerClient::WorkerClient(std::shared_ptr<grpc::Channel> channel, int64_t rpc_timeout_ms,
                           int64_t stream_timeout_ms)
    : stub_(v1::WorkerService::NewStub(channel)),
      rpc_timeout_ms_(rpc_timeout_ms),
      stream_timeout_ms_(stream_timeout_ms) {}

void WorkerClient::SetDeadline(grpc::ClientContext* ctx, int64_t ms) const {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerClient::RegisterWorker(
    const v1::RegisterWorkerRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::RegisterWorkerResponse resp;
  absl::Status st = FromGrpcStatus(stub_->RegisterWorker(&ctx, req, &resp));
  if (!st.ok()) return st;
  return resp;
}

absl::StatusOr<v1::LeaseTaskResponse> WorkerClient::LeaseTask(const v1::LeaseTaskRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, req.wait_ms() + rpc_timeout_ms_);
  {
    absl::MutexLock lock(&mu_);
    if (lease_cancelled_) return absl::CancelledError("LeaseTask: worker is shutting down");
    lease_ctx_ = &ctx;
  }
  v1::LeaseTaskResponse resp;
  absl::Status st = FromGrpcStatus(stub_->LeaseTask(&ctx, req, &resp));
  {
    absl::MutexLock lock(&mu_);
    lease_ctx_ = nullptr;
  }
  if (!st.ok()) return st;
  return resp;
}

void WorkerClient::CancelLeaseTask() {
  absl::MutexLock lock(&mu_);
  lease_cancelled_ = true;
  if (lease_ctx_ != nullptr) lease_ctx_->TryCancel();
}

absl::StatusOr<v1::HeartbeatResponse> WorkerClient::Heartbeat(const v1::HeartbeatRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::HeartbeatResponse resp;
  absl::Status st = FromGrpcStatus(stub_->Heartbeat(&ctx, req, &resp));
  if (!st.ok()) return st;
  return resp;
}

absl::Status WorkerClient::ReportEvents(const v1::ReportEventsRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::ReportEventsResponse resp;
  return FromGrpcStatus(stub_->ReportEvents(&ctx, req, &resp));
}

absl::Status WorkerClient::CompleteTask(const v1::CompleteTaskRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::CompleteTaskResponse resp;
  return FromGrpcStatus(stub_->CompleteTask(&ctx, req, &resp));
}

absl::Status WorkerClient::FailTask(const v1::FailTaskRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::FailTaskResponse resp;
  return FromGrpcStatus(stub_->FailTask(&ctx, req, &resp));
}

absl::StatusOr<v1::SubmitPartsResponse> WorkerClient::SubmitParts(
    const v1::SubmitPartsRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::SubmitPartsResponse resp;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->SubmitParts(&ctx, req, &resp)));
  return resp;
}

absl::StatusOr<v1::ClaimPartResponse> WorkerClient::ClaimPart(const v1::ClaimPartRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::ClaimPartResponse resp;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->ClaimPart(&ctx, req, &resp)));
  return resp;
}

absl::StatusOr<v1::GetPartsResponse> WorkerClient::GetParts(const v1::GetPartsRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, rpc_timeout_ms_);
  v1::GetPartsResponse resp;
  RETURN_IF_ERROR(FromGrpcStatus(stub_->GetParts(&ctx, req, &resp)));
  return resp;
}

absl::Status WorkerClient::FetchBlob(const std::string& sha256, uint64_t offset,
                                     const ChunkFn& on_chunk) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, stream_timeout_ms_);
  v1::FetchBlobRequest req;
  req.set_sha256(sha256);
  req.set_offset(offset);
  return ReadChunks(ctx, *stub_->FetchBlob(&ctx, req), on_chunk);
}

absl::Status WorkerClient::GetCheckpoint(const v1::GetCheckpointRequest& req,
                                         const ChunkFn& on_chunk) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, stream_timeout_ms_);
  return ReadChunks(ctx, *stub_->GetCheckpoint(&ctx, req), on_chunk);
}

absl::StatusOr<v1::Artifact> WorkerClient::UploadArtifact(const v1::UploadArtifactHeader& header,
                                                          const std::string& local_path) {
  std::ifstream in(local_path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat(local_path, ": cannot open for upload"));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, stream_timeout_ms_);
  v1::Artifact artifact;
  std::string buf(kUploadChunkBytes, '\0');
  auto next_chunk = [&](absl::string_view* chunk) -> absl::Status {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.bad()) {
      return absl::InternalError(absl::StrCat(local_path, ": read failed during upload"));
    }
    *chunk = absl::string_view(buf.data(), static_cast<size_t>(in.gcount()));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(WriteChunks(ctx, *stub_->UploadArtifact(&ctx, &artifact), header, next_chunk));
  return artifact;
}

absl::StatusOr<v1::PutCheckpointResponse> WorkerClient::PutCheckpoint(
    const v1::PutCheckpointHeader& header, absl::string_view bytes) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, stream_timeout_ms_);
  v1::PutCheckpointResponse response;
  auto next_chunk = [&](absl::string_view* chunk) -> absl::Status {
    *chunk = bytes.substr(0, kUploadChunkBytes);
    bytes.remove_prefix(chunk->size());
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(WriteChunks(ctx, *stub_->PutCheckpoint(&ctx, &response), header, next_chunk));
  return response;
}

}  // namespace compressd
