// Text from outside the process (file names and keys inside a malformed model
// file, an exception's what()) carried in protobuf string fields, which gRPC
// refuses to serialize unless they are valid UTF-8: a worker's "malformed
// file at offset N" error must reach the server, not be lost with its RPC.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace compressd {

// The most bytes of error text a job or part failure keeps (worker.proto
// FailTaskRequest.error, Job.error).
inline constexpr size_t kMaxErrorTextBytes = 8192;
// The most bytes of one event's text (a log line, a progress message).
inline constexpr size_t kMaxEventTextBytes = 4096;

bool IsValidUtf8(std::string_view text);

// `text` with each maximal invalid UTF-8 sequence (a stray byte, a truncated
// or overlong sequence, a surrogate) replaced by U+FFFD, then cut to at most
// `max_bytes` bytes on a character boundary (with "..." when cut).
std::string ToValidUtf8(std::string_view text, size_t max_bytes = std::string::npos);

}  // namespace compressd
