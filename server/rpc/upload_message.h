// The message order every client-streaming upload follows: a request is
// `oneof kind { Header header = 1; Chunk chunk = 2; }` (chunk: bytes, or a
// message), the header comes first and once, then the chunks. Shared by
// UploadReactor (models, datasets) and BlobUploadReactor (artifacts, checkpoints).
#pragma once

#include "absl/status/status.h"

namespace compressd {

// Hands `request` to on_header(header) or on_chunk(chunk); INVALID_ARGUMENT
// for a second header, a chunk before the header, or an empty message.
// `seen_header` is the stream's state, set here.
template <typename Request, typename OnHeader, typename OnChunk>
absl::Status RouteUploadMessage(const Request& request, bool& seen_header, OnHeader on_header,
                                OnChunk on_chunk) {
  switch (request.kind_case()) {
    case Request::kHeader:
      if (seen_header) return absl::InvalidArgumentError("header: sent twice");
      seen_header = true;
      return on_header(request.header());
    case Request::kChunk:
      if (!seen_header) {
        return absl::InvalidArgumentError(
            "chunk: received before the header (the header must be the first message)");
      }
      return on_chunk(request.chunk());
    default:
      return absl::InvalidArgumentError("request: neither header nor chunk is set");
  }
}

}  // namespace compressd
