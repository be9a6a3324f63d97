// `compressctl admin ...`: tenants and quotas, API keys, the audit trail,
// whoami. Every command but whoami needs an admin key.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cli/context.h"

namespace compressd::client {

absl::Status AdminTenantsCreate(CommandContext& context);
absl::Status AdminTenantsList(CommandContext& context);
absl::Status AdminTenantsQuota(CommandContext& context);
absl::Status AdminKeysCreate(CommandContext& context);
absl::Status AdminKeysList(CommandContext& context);
absl::Status AdminKeysRevoke(CommandContext& context);
absl::Status AdminAuditList(CommandContext& context);
absl::Status AdminWhoAmI(CommandContext& context);

// "90s", "15m", "12h", "30d" -> seconds (> 0). INVALID_ARGUMENT naming `flag`.
absl::StatusOr<int64_t> ParseDurationSeconds(absl::string_view text, absl::string_view flag);

}  // namespace compressd::client
