// Opaque list-pagination tokens: the position (create_time_ms, id) of the last
// item returned, hex-encoded so clients treat it as opaque.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace compressd {

struct PagePosition {
  int64_t create_time_ms = 0;
  std::string id;
};

std::string EncodePageToken(const PagePosition& pos);
// INVALID_ARGUMENT "page_token: malformed" for anything EncodePageToken did not produce.
absl::StatusOr<PagePosition> DecodePageToken(const std::string& token);

// Page sizes: 0 means `default_size`; larger than `max_size` is clamped;
// negative is INVALID_ARGUMENT.
absl::StatusOr<int> NormalizePageSize(int page_size, int default_size = 50, int max_size = 1000);

}  // namespace compressd
