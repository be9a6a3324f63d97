#include "workers/engine/model/model_loader.h"

#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/gptq_stream.h"
#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/gguf/spqr_stream.h"
#include "workers/engine/model/hf_model.h"

namespace compressd::engine {

namespace {

namespace fs = std::filesystem;

enum class Kind { kHf, kGguf };

absl::StatusOr<Kind> KindOf(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st))
    return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));
  if (fs::is_directory(st)) return Kind::kHf;
  if (fs::is_regular_file(st) && absl::EndsWith(path, ".gguf")) return Kind::kGguf;
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": not a model: expected a Hugging Face model directory or a *.gguf file"));
}

}  // namespace

absl::StatusOr<LlamaModel> LoadModel(const std::string& path) {
  ASSIGN_OR_RETURN(const Kind kind, KindOf(path));
  return kind == Kind::kHf ? LoadHfModel(path) : LoadGgufModel(path);
}

absl::StatusOr<std::unique_ptr<ModelStream>> OpenModelStream(const std::string& path, bool gguf) {
  if (gguf) {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufLlamaStream> s, GgufLlamaStream::Open(path));
    return std::unique_ptr<ModelStream>(std::move(s));
  }
  // A GPTQ-packed checkpoint (our gptq output) reads through its own dequantizer.
  absl::StatusOr<std::string> config = ReadFileToString((fs::path(path) / kHfConfigFile).string());
  if (config.ok() && IsGptqConfig(*config)) {
    ASSIGN_OR_RETURN(std::unique_ptr<GptqStream> g, GptqStream::Open(path));
    return std::unique_ptr<ModelStream>(std::move(g));
  }
  if (config.ok() && IsSpqrConfig(*config)) {  // our spqr output: decoded block by block
    ASSIGN_OR_RETURN(std::unique_ptr<SpqrStream> q, SpqrStream::Open(path));
    return std::unique_ptr<ModelStream>(std::move(q));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<HfLlamaStream> s, HfLlamaStream::Open(path));
  return std::unique_ptr<ModelStream>(std::move(s));
}

absl::StatusOr<StoredModel> InspectModel(const std::string& path) {
  ASSIGN_OR_RETURN(const Kind kind, KindOf(path));
  StoredModel out;
  if (kind == Kind::kHf) {
    // GPTQ / compressed-tensors checkpoints (packed or int8 weights) through their reader.
    ASSIGN_OR_RETURN(std::unique_ptr<ModelStream> stream, OpenModelStream(path, false));
    out.config = stream->config();
    out.weight_bytes = stream->weight_bytes();
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
    ASSIGN_OR_RETURN(out.config, ReadGgufLlamaConfig(*file));
    std::error_code ec;
    out.weight_bytes = fs::file_size(path, ec);
  }
  return out;
}

}  // namespace compressd::engine
