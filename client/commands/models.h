// `compressctl models ...`: upload, list, get, delete.
#pragma once

#include "absl/status/status.h"
#include "client/cli/context.h"

namespace compressd::client {

absl::Status ModelsUpload(CommandContext& context);
absl::Status ModelsList(CommandContext& context);
absl::Status ModelsGet(CommandContext& context);
absl::Status ModelsDelete(CommandContext& context);

}  // namespace compressd::client
