#include "client/commands/artifacts.h"

#include <grpcpp/client_context.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/commands/byte_progress.h"
#include "client/commands/describe.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::client {
namespace {

namespace fs = std::filesystem;
using Stub = v1::CompressionService::Stub;

constexpr int kMaxStreamRetries = 3;
constexpr std::chrono::milliseconds kRetryBackoff{500};

uint64_t FileSizeOrZero(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(size);
}

// One DownloadArtifact stream appending to `part` from its current size.
// Fills *info from the first message.
absl::Status DownloadStream(Connection& connection, const v1::Artifact& artifact,
                            const std::string& part, v1::Artifact* info,
                            const ByteProgressFn& progress) {
  const uint64_t offset = FileSizeOrZero(part);
  grpc::ClientContext rpc;  // no deadline: artifacts may be large
  v1::DownloadArtifactRequest request;
  request.set_artifact_id(artifact.id());
  request.set_offset(offset);
  auto reader = connection.stub().DownloadArtifact(&rpc, request);
  std::ofstream out(part, std::ios::binary | std::ios::app);
  if (!out) {
    rpc.TryCancel();
    reader->Finish();
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", part));
  }
  v1::DownloadArtifactResponse response;
  bool have_info = false;
  uint64_t written = offset;
  while (reader->Read(&response)) {
    if (response.has_info()) {
      *info = response.info();
      have_info = true;
      continue;
    }
    if (!have_info || written + response.chunk().size() > info->size()) {
      rpc.TryCancel();
      reader->Finish();
      return absl::DataLossError(
          absl::StrCat(artifact.path(), ": server sent ",
                       have_info ? "more bytes than announced" : "data before the info message"));
    }
    out.write(response.chunk().data(), static_cast<std::streamsize>(response.chunk().size()));
    if (!out) {
      rpc.TryCancel();
      reader->Finish();
      return absl::DataLossError(absl::StrCat("error writing ", part));
    }
    written += response.chunk().size();
    if (progress) progress(static_cast<int64_t>(written), static_cast<int64_t>(info->size()));
  }
  out.close();
  return FromGrpcStatus(reader->Finish());
}

// Checks `part` against `info`; on success renames it to `dest`.
absl::Status VerifyAndRename(const std::string& part, const std::string& dest,
                             const v1::Artifact& info) {
  const uint64_t size = FileSizeOrZero(part);
  if (size != info.size()) {
    return absl::DataLossError(
        absl::StrCat(info.path(), ": downloaded ", size, " bytes, expected ", info.size()));
  }
  ASSIGN_OR_RETURN(std::string sha, Sha256File(part));
  if (sha != info.sha256()) {
    return absl::DataLossError(absl::StrCat(info.path(), ": sha256 mismatch (got ", sha,
                                            ", expected ", info.sha256(), ")"));
  }
  std::error_code ec;
  fs::rename(part, dest, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", part, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DownloadResult> DownloadArtifactTo(Connection& connection,
                                                  const v1::Artifact& artifact,
                                                  const std::string& dest,
                                                  const ByteProgressFn& progress) {
  std::error_code ec;
  if (fs::exists(dest, ec)) {
    absl::StatusOr<std::string> sha = Sha256File(dest);
    if (sha.ok() && *sha == artifact.sha256()) return DownloadResult::kUpToDate;
  }
  const fs::path parent = fs::path(dest).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("mkdir ", parent.string(), ": ", ec.message()));

  const std::string part = dest + ".part";
  if (FileSizeOrZero(part) > artifact.size()) fs::remove(part, ec);  // stale: start over
  const bool resumed = FileSizeOrZero(part) > 0;
  v1::Artifact info = artifact;
  absl::Status stream;
  for (int attempt = 0; attempt <= kMaxStreamRetries; ++attempt) {
    stream = DownloadStream(connection, artifact, part, &info, progress);
    if (stream.code() != absl::StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(kRetryBackoff * (1 << attempt));
    connection.WaitForConnected(kConnectTimeout);
  }
  if (stream.code() == absl::StatusCode::kOutOfRange && resumed) {
    fs::remove(part, ec);  // the kept .part is longer than the file now: start over
    stream = DownloadStream(connection, artifact, part, &info, progress);
  }
  RETURN_IF_ERROR(stream);
  absl::Status verified = VerifyAndRename(part, dest, info);
  if (!verified.ok() && resumed) {
    // The kept .part may have been from a different file; retry from scratch once.
    fs::remove(part, ec);
    RETURN_IF_ERROR(DownloadStream(connection, artifact, part, &info, progress));
    verified = VerifyAndRename(part, dest, info);
  }
  if (!verified.ok()) {
    fs::remove(part, ec);
    return verified;
  }
  return DownloadResult::kDownloaded;
}

absl::Status ArtifactsList(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetJobRequest request;
  request.set_job_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Job job, Call<v1::Job>(*connection, &Stub::GetJob, request));
  if (context.json()) {
    for (const v1::Artifact& artifact : job.artifacts()) context.out() << ToJson(artifact) << "\n";
  } else {
    context.out() << ArtifactTable({job.artifacts().begin(), job.artifacts().end()});
  }
  return absl::OkStatus();
}

absl::Status ArtifactsDownload(CommandContext& context) {
  const std::string out_dir = context.invocation().Get("out");
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetJobRequest request;
  request.set_job_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Job job, Call<v1::Job>(*connection, &Stub::GetJob, request));
  if (job.state() != v1::SUCCEEDED && job.artifacts().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", v1::JobState_Name(job.state()),
                     "; artifacts are available once it has SUCCEEDED"));
  }
  for (const v1::Artifact& artifact : job.artifacts()) {
    RETURN_IF_ERROR(ValidateRelativePath(artifact.path(), "artifact.path"));
    const std::string dest = (fs::path(out_dir) / artifact.path()).string();
    ByteProgressBar bar(context);
    ASSIGN_OR_RETURN(DownloadResult result,
                     DownloadArtifactTo(*connection, artifact, dest, bar.Stage(artifact.path())));
    bar.Finish();
    if (context.json()) {
      context.out() << ToJson(artifact) << "\n";
    } else {
      context.out() << (result == DownloadResult::kUpToDate ? "up-to-date " : "downloaded ") << dest
                    << "\n";
    }
    context.out().flush();
  }
  return absl::OkStatus();
}

}  // namespace compressd::client
