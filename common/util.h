// Small shared helpers: clock, random ids, relative-path validation.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compressd {

// Milliseconds since the Unix epoch (wall clock).
int64_t NowMs();

// Seconds of the steady clock since `start` (phase timings).
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The whole content of the file at `path`; NOT_FOUND "<path>: cannot open"
// when it cannot be opened.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// `bytes` bytes from the kernel's CSPRNG (getrandom) as lowercase hex.
std::string RandomHex(size_t bytes);
// A random id: `prefix` + 16 lowercase hex characters from the CSPRNG, e.g.
// "job-3f2a...". Unpredictable: ids of other tenants cannot be guessed.
std::string NewId(std::string_view prefix);

// "1.23 GiB" from 1 GiB up, else "456 MiB" (rounded).
std::string FormatBytes(uint64_t bytes);

// Bounds on a user-supplied relative path (upload file paths, dataset files,
// artifact and checkpoint names).
inline constexpr size_t kMaxRelativePathBytes = 1024;
inline constexpr int kMaxRelativePathDepth = 32;

// A user-supplied relative path is safe if it is non-empty, valid UTF-8, at
// most kMaxRelativePathBytes long with at most kMaxRelativePathDepth
// components, relative, has no "..", "." or empty component, no backslash and
// no NUL. `field` names the
// request field for the error message (INVALID_ARGUMENT).
absl::Status ValidateRelativePath(std::string_view path, std::string_view field);

// ValidateRelativePath, and every character one of [A-Za-z0-9._/-], so the
// path means the same file on any file system (checkpoint names).
absl::Status ValidatePortableRelativePath(std::string_view path, std::string_view field);

}  // namespace compressd
