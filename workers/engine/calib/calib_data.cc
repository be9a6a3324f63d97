#include "workers/engine/calib/calib_data.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/pipeline/eval_sets.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

// The local file or folder behind the calibration source.
absl::StatusOr<std::string> SourcePath(const v1::Calibration& c, const RunOptions& options) {
  if (!c.path().empty()) {
    if (!options.allow_local_paths) {
      return absl::InvalidArgumentError(
          "calibration.path: local paths are only for compress-worker run; upload the text "
          "(compressctl datasets upload) and name it with dataset_id + file");
    }
    return c.path();
  }
  if (!options.dataset_file) {
    return absl::InvalidArgumentError(
        "calibration.dataset_id: datasets are only available to jobs run by the service; use path");
  }
  absl::StatusOr<std::string> path = options.dataset_file(c.dataset_id(), c.file());
  if (!path.ok()) {
    return absl::Status(path.status().code(),
                        absl::StrCat("calibration: ", path.status().message()));
  }
  return path;
}

// The file itself, or the regular files under the folder in path order.
absl::StatusOr<std::vector<std::string>> SourceFiles(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return std::vector<std::string>{path};
  if (!fs::is_directory(path, ec)) {
    return absl::NotFoundError(absl::StrCat("calibration: ", path, ": no such file or folder"));
  }
  std::vector<std::string> files;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("calibration: ", path, ": ", ec.message()));
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat("calibration: ", path, ": the folder has no files"));
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::vector<int64_t> CalibrationOffsets(int64_t n, int32_t seq_len, int32_t samples,
                                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint64_t range = static_cast<uint64_t>(n - seq_len + 1);
  std::vector<int64_t> offsets(samples);
  for (int32_t s = 0; s < samples; ++s) offsets[s] = static_cast<int64_t>(rng() % range);
  return offsets;
}

absl::StatusOr<CalibrationSet> LoadCalibrationSet(const v1::Calibration& calibration,
                                                  const engine::Tokenizer& tokenizer,
                                                  const RunOptions& options) {
  CalibrationSet set;
  set.name = calibration.name();
  set.source = calibration.path().empty()
                   ? absl::StrCat(calibration.dataset_id(), "/", calibration.file())
                   : calibration.path();
  ASSIGN_OR_RETURN(std::string path, SourcePath(calibration, options));
  ASSIGN_OR_RETURN(std::vector<std::string> files, SourceFiles(path));
  std::string text;
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(std::string part, ReadTextFile(file, "calibration"));
    text += part;
  }
  set.files = static_cast<int64_t>(files.size());
  std::vector<int32_t> tokens = tokenizer.Encode(text, /*add_special=*/false);
  set.text_tokens = static_cast<int64_t>(tokens.size());
  const int32_t len = calibration.seq_len();
  if (set.text_tokens < len) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration: ", set.source, " has ", set.text_tokens,
                     " tokens, fewer than seq_len ", len));
  }
  set.offsets = CalibrationOffsets(set.text_tokens, len, calibration.samples(), calibration.seed());
  for (int64_t off : set.offsets) {
    set.sequences.emplace_back(tokens.begin() + off, tokens.begin() + off + len);
  }
  set.stream = std::move(tokens);
  return set;
}

}  // namespace compressd::engine
