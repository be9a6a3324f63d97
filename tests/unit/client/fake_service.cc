#include "fake_service.h"

#include <algorithm>
#include <string>

#include "common/recipe.h"

namespace compressd::client::testing {

grpc::Status FakeService::GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                                 v1::Job* response) {
  if (request->job_id() != job.id()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job");
  *response = job;
  return grpc::Status::OK;
}

grpc::Status FakeService::SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* request,
                                    v1::Job* response) {
  absl::MutexLock lock(&mu_);
  submit_request_ids_.push_back(request->request_id());
  if (static_cast<int>(submit_request_ids_.size()) <= submit_unavailable) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
  }
  if (request->model_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "model_id: required");
  }
  // As the real server (server/jobs/job_service.cc): defaults, then validation.
  v1::Recipe recipe = request->recipe();
  ApplyRecipeDefaults(&recipe);
  if (!recipe.stages().empty() || recipe.has_evaluation()) {
    const absl::Status valid = ValidateRecipe(recipe);
    if (!valid.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string("recipe: ") + std::string(valid.message()));
    }
  }
  *response = job;
  return grpc::Status::OK;
}

grpc::Status FakeService::WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* request,
                                   grpc::ServerWriter<v1::JobEvent>* writer) {
  size_t call = 0;
  {
    absl::MutexLock lock(&mu_);
    call = watch_after_.size();
    watch_after_.push_back(request->after_sequence());
  }
  const int64_t stop = call < break_after.size() ? break_after[call] : -1;
  for (const v1::JobEvent& event : events) {
    const bool overlap = resend_last_on_reconnect && event.sequence() == request->after_sequence();
    if (event.sequence() <= request->after_sequence() && !overlap) continue;
    writer->Write(event);
    if (event.sequence() == stop) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  }
  return grpc::Status::OK;
}

grpc::Status FakeService::DownloadArtifact(
    grpc::ServerContext*, const v1::DownloadArtifactRequest* request,
    grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) {
  size_t call = 0;
  {
    absl::MutexLock lock(&mu_);
    call = download_offsets_.size();
    download_offsets_.push_back(request->offset());
  }
  if (request->offset() > artifact_content.size()) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "offset beyond the end");
  }
  v1::DownloadArtifactResponse info;
  info.mutable_info()->set_id(request->artifact_id());
  info.mutable_info()->set_path("model.safetensors");
  info.mutable_info()->set_size(artifact_content.size());
  info.mutable_info()->set_sha256(artifact_sha256);
  writer->Write(info);
  constexpr size_t kChunk = 256 * 1024;
  for (size_t pos = request->offset(); pos < artifact_content.size(); pos += kChunk) {
    if (call == 0 && download_break_at >= 0 && pos >= static_cast<size_t>(download_break_at)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
    }
    v1::DownloadArtifactResponse chunk;
    chunk.set_chunk(artifact_content.substr(pos, kChunk));
    writer->Write(chunk);
  }
  return grpc::Status::OK;
}

grpc::Status FakeService::UploadModel(grpc::ServerContext*,
                                      grpc::ServerReader<v1::UploadModelRequest>* reader,
                                      v1::Model* response) {
  v1::UploadModelRequest request;
  if (!reader->Read(&request) || !request.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "header first");
  }
  absl::MutexLock lock(&mu_);
  upload_header_ = request.header();
  upload_data_.assign(upload_header_.files_size(), "");
  while (reader->Read(&request)) {
    if (!request.has_chunk() || request.chunk().file_index() >= upload_data_.size()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad chunk");
    }
    upload_data_[request.chunk().file_index()] += request.chunk().data();
  }
  response->set_id("model-fake1");
  response->set_name(upload_header_.name());
  response->set_format(upload_header_.format());
  *response->mutable_files() = upload_header_.files();
  return grpc::Status::OK;
}

FakeServer::FakeServer() {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
}

}  // namespace compressd::client::testing
