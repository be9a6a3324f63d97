#include "workers/engine/runtime/checkpoint.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::engine {
namespace fs = std::filesystem;

absl::Status DirCheckpointStore::Put(const std::string& name, const std::string& bytes) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  // The old content or the whole new one, across crashes: the directory is
  // synced after the rename.
  return WriteFileAtomically((fs::path(dir_) / name).string(), bytes, /*sync_dir=*/true);
}

absl::StatusOr<std::string> DirCheckpointStore::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  const fs::path path = fs::path(dir_) / name;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found || fs::is_directory(status)) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", name, ": no file ", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InternalError(
        absl::StrCat(path.string(), ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path.string(), ": read failed"));
  return std::move(out).str();
}

}  // namespace compressd::engine
