// Shared by `models upload` and `datasets upload`: finding the files to send,
// hashing them, and streaming their bytes as FileChunks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

inline constexpr size_t kChunkBytes = 1 << 20;

struct LocalFile {
  std::string local_path;  // where to read it
  v1::FileEntry entry;     // path relative to the upload root; size/sha256 once hashed
};

struct ModelFiles {
  v1::ModelFormat format = v1::MODEL_FORMAT_UNSPECIFIED;
  std::string default_name;  // basename of the path
  std::vector<LocalFile> files;
};

// `path` is an HF safetensors directory (config.json and *.safetensors at its
// top level; every non-hidden file below it is sent, paths relative to it,
// symlinks to files followed) or a single .gguf file.
absl::StatusOr<ModelFiles> ListModelFiles(const std::string& path);

// Each path is a file (sent under its basename) or a directory (its
// non-hidden files, relative to it). Duplicate relative paths are an error.
absl::StatusOr<std::vector<LocalFile>> ListDatasetFiles(const std::vector<std::string>& paths);

// Called with bytes done so far and in total.
using ByteProgressFn = std::function<void(int64_t done, int64_t total)>;

// Fills entry.size and entry.sha256 of each file.
absl::Status HashFiles(std::vector<LocalFile>* files, const ByteProgressFn& progress);

// Reads each file in order and hands `write` chunks of at most kChunkBytes
// (file_index = position in `files`); `write` returns false when the stream
// broke. FAILED_PRECONDITION if a file's size differs from entry.size.
// Returns false in *stream_ok when `write` failed (the caller then reads the
// server's status).
absl::Status SendFileChunks(const std::vector<LocalFile>& files,
                            const std::function<bool(v1::FileChunk* chunk)>& write,
                            const ByteProgressFn& progress, bool* stream_ok);

// The sum of entry.size.
int64_t TotalBytes(const std::vector<LocalFile>& files);

}  // namespace compressd::client
