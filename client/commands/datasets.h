// `compressctl datasets ...`: upload, list, get.
#pragma once

#include "absl/status/status.h"
#include "client/cli/context.h"

namespace compressd::client {

absl::Status DatasetsUpload(CommandContext& context);
absl::Status DatasetsList(CommandContext& context);
absl::Status DatasetsGet(CommandContext& context);
absl::Status DatasetsDelete(CommandContext& context);

}  // namespace compressd::client
