// File-system helpers for one task's working directory:
//   <cache>/tasks/<task_id>.a<attempt>.p<pid>/model/<relative paths>  links to cached blobs
//   <cache>/tasks/<task_id>.a<attempt>.p<pid>/out/                     the job's output
// Stateless; thread-safe for distinct directories.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace compressd {

// Creates `dir`/<path> for each (relative path, blob path) as a hard link to
// the blob, or a symlink where hard links are impossible. Paths are checked
// with ValidateRelativePath (INVALID_ARGUMENT naming the file).
absl::Status LinkFiles(const std::vector<std::pair<std::string, std::string>>& files,
                       const std::string& dir);

// Regular files under `dir`, as sorted relative paths ("a/b.json").
absl::StatusOr<std::vector<std::string>> ListFilesRecursive(const std::string& dir);

// rm -rf; errors are ignored (best effort cleanup).
void RemoveTree(const std::string& dir);

}  // namespace compressd
