#include "workers/worker/task_files.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {

namespace fs = std::filesystem;

absl::Status LinkFiles(const std::vector<std::pair<std::string, std::string>>& files,
                       const std::string& dir) {
  std::error_code dir_ec;
  fs::create_directories(dir, dir_ec);  // even for no files: an empty model is the engine's call
  if (dir_ec) return absl::InternalError(absl::StrCat(dir, ": mkdir: ", dir_ec.message()));
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& [rel, blob] = files[i];
    RETURN_IF_ERROR(ValidateRelativePath(rel, absl::StrCat("model.files[", i, "].path")));
    const fs::path dest = fs::path(dir) / rel;
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    if (ec) return absl::InternalError(absl::StrCat(dest.string(), ": mkdir: ", ec.message()));
    fs::remove(dest, ec);
    if (::link(blob.c_str(), dest.c_str()) == 0) continue;
    if (::symlink(fs::absolute(blob).c_str(), dest.c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat(dest.string(), ": cannot link to ", blob, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListFilesRecursive(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) out.push_back(fs::relative(it->path(), dir, ec).string());
  }
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot list: ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace compressd
