// `compressctl artifacts ...`: list a job's output files and download them,
// resuming partial downloads and verifying each file's sha256.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/connection.h"
#include "client/cli/context.h"
#include "client/commands/upload.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

enum class DownloadResult { kDownloaded, kUpToDate };

// Downloads `artifact` to `dest` through `dest`.part, resuming from the
// .part file's size; verifies size and sha256 against the server's info
// message and renames at the end. A `dest` that already has the artifact's
// sha256 is left alone (kUpToDate). DATA_LOSS on a checksum mismatch.
absl::StatusOr<DownloadResult> DownloadArtifactTo(Connection& connection,
                                                  const v1::Artifact& artifact,
                                                  const std::string& dest,
                                                  const ByteProgressFn& progress);

absl::Status ArtifactsList(CommandContext& context);
absl::Status ArtifactsDownload(CommandContext& context);

}  // namespace compressd::client
