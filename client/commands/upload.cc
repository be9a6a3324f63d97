#include "client/commands/upload.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace compressd::client {
namespace {

namespace fs = std::filesystem;

bool IsHidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string Basename(const std::string& path) {
  fs::path p(path);
  if (!p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
  return p.filename().string();
}

// Every non-hidden regular file below `root` (following symlinks to files,
// not to directories), with '/'-separated relative paths, sorted.
absl::StatusOr<std::vector<LocalFile>> ListDirectory(const fs::path& root) {
  std::vector<LocalFile> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(root.string(), ": ", ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(root.string(), ": ", ec.message()));
    if (IsHidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;  // directories, sockets, dangling links
    LocalFile file;
    file.local_path = it->path().string();
    file.entry.set_path(it->path().lexically_relative(root).generic_string());
    files.push_back(std::move(file));
  }
  if (ec) return absl::InternalError(absl::StrCat(root.string(), ": ", ec.message()));
  std::sort(files.begin(), files.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.entry.path() < b.entry.path(); });
  return files;
}

bool HasFile(const std::vector<LocalFile>& files,
             const std::function<bool(const std::string&)>& pred) {
  return std::any_of(files.begin(), files.end(),
                     [&](const LocalFile& f) { return pred(f.entry.path()); });
}

}  // namespace

absl::StatusOr<ModelFiles> ListModelFiles(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  }
  ModelFiles model;
  model.default_name = Basename(path);
  if (fs::is_regular_file(status)) {
    if (!absl::EndsWith(absl::AsciiStrToLower(path), ".gguf")) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected an HF safetensors model directory or a .gguf file"));
    }
    model.format = v1::GGUF;
    LocalFile file;
    file.local_path = path;
    file.entry.set_path(Basename(path));
    model.files.push_back(std::move(file));
    return model;
  }
  if (!fs::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file or directory"));
  }
  model.format = v1::HF_SAFETENSORS;
  ASSIGN_OR_RETURN(model.files, ListDirectory(path));
  if (!HasFile(model.files, [](const std::string& p) { return p == "config.json"; })) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an HF safetensors model directory (no config.json)"));
  }
  if (!HasFile(model.files, [](const std::string& p) {
        return p.find('/') == std::string::npos && absl::EndsWith(p, ".safetensors");
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an HF safetensors model directory (no *.safetensors file)"));
  }
  return model;
}

absl::StatusOr<std::vector<LocalFile>> ListDatasetFiles(const std::vector<std::string>& paths) {
  std::vector<LocalFile> files;
  std::map<std::string, std::string> origin;  // relative path -> local path
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    std::vector<LocalFile> found;
    if (fs::is_regular_file(status)) {
      LocalFile file;
      file.local_path = path;
      file.entry.set_path(Basename(path));
      found.push_back(std::move(file));
    } else if (fs::is_directory(status)) {
      ASSIGN_OR_RETURN(found, ListDirectory(path));
    } else {
      return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
    }
    for (LocalFile& file : found) {
      auto [it, inserted] = origin.emplace(file.entry.path(), file.local_path);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("two files would be uploaded as \"",
                                                       file.entry.path(), "\": ", it->second,
                                                       " and ", file.local_path));
      }
      files.push_back(std::move(file));
    }
  }
  if (files.empty()) return absl::InvalidArgumentError("no files to upload");
  return files;
}

int64_t TotalBytes(const std::vector<LocalFile>& files) {
  int64_t total = 0;
  for (const LocalFile& file : files) total += static_cast<int64_t>(file.entry.size());
  return total;
}

absl::Status HashFiles(std::vector<LocalFile>* files, const ByteProgressFn& progress) {
  int64_t total = 0;
  for (LocalFile& file : *files) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(file.local_path, ec);
    if (ec) return absl::NotFoundError(absl::StrCat(file.local_path, ": ", ec.message()));
    file.entry.set_size(size);
    total += static_cast<int64_t>(size);
  }
  std::vector<char> buffer(kChunkBytes);
  int64_t done = 0;
  for (LocalFile& file : *files) {
    std::ifstream in(file.local_path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", file.local_path));
    Sha256 hasher;
    uint64_t read = 0;
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const size_t n = static_cast<size_t>(in.gcount());
      hasher.Update(std::string_view(buffer.data(), n));
      read += n;
      done += static_cast<int64_t>(n);
      if (progress && n > 0) progress(done, total);
    }
    if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", file.local_path));
    if (read != file.entry.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat(file.local_path, ": file changed while hashing"));
    }
    file.entry.set_sha256(hasher.HexDigest());
  }
  return absl::OkStatus();
}

absl::Status SendFileChunks(const std::vector<LocalFile>& files,
                            const std::function<bool(v1::FileChunk* chunk)>& write,
                            const ByteProgressFn& progress, bool* stream_ok) {
  *stream_ok = true;
  const int64_t total = TotalBytes(files);
  int64_t done = 0;
  std::string buffer(kChunkBytes, '\0');
  for (size_t index = 0; index < files.size(); ++index) {
    const LocalFile& file = files[index];
    std::ifstream in(file.local_path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", file.local_path));
    uint64_t sent = 0;
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const size_t n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      sent += n;
      if (sent > file.entry.size()) break;  // grew since hashing; reported below
      v1::FileChunk chunk;
      chunk.set_file_index(static_cast<uint32_t>(index));
      chunk.set_data(buffer.data(), n);
      if (!write(&chunk)) {
        *stream_ok = false;
        return absl::OkStatus();
      }
      done += static_cast<int64_t>(n);
      if (progress) progress(done, total);
    }
    if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", file.local_path));
    if (sent != file.entry.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat(file.local_path, ": file changed during the upload"));
    }
  }
  return absl::OkStatus();
}

}  // namespace compressd::client
