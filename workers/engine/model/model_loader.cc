#include "workers/engine/model/model_loader.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/hf_llama.h"

namespace compressd::engine {

absl::StatusOr<LlamaModel> LoadModel(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st))
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  if (fs::is_directory(st)) return LoadHfModel(path);
  if (fs::is_regular_file(st) && absl::EndsWith(path, ".gguf")) return LoadGgufModel(path);
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": not a model: expected a Hugging Face model directory or a *.gguf file"));
}

}  // namespace compressd::engine
