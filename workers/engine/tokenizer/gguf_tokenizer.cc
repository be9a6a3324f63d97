#include "workers/engine/tokenizer/gguf_tokenizer.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

absl::Status WithFile(const GgufFile& file, const absl::Status& status) {
  if (status.ok()) return status;
  // A missing required key is bad input here, not an unknown id.
  const absl::StatusCode code =
      absl::IsNotFound(status) ? absl::StatusCode::kInvalidArgument : status.code();
  return absl::Status(code, absl::StrCat(file.path(), ": tokenizer: ", status.message()));
}

// The id stored under `key`, or -1 when the key is absent.
absl::StatusOr<int32_t> OptionalTokenId(const GgufFile& file, absl::string_view key) {
  if (!file.HasKey(key)) return -1;
  ASSIGN_OR_RETURN(uint32_t id, file.GetU32(key));
  if (id > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(key), " = ", id, " is too large"));
  }
  return static_cast<int32_t>(id);
}

absl::StatusOr<Tokenizer> Load(const GgufFile& file) {
  ASSIGN_OR_RETURN(std::string model, file.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.ggml.model \"", model, "\" is not supported (only BPE \"gpt2\")"));
  }
  ASSIGN_OR_RETURN(std::string pre, file.GetString("tokenizer.ggml.pre"));
  ASSIGN_OR_RETURN(std::vector<std::string> tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  ASSIGN_OR_RETURN(std::vector<std::string> merges, file.GetStringArray("tokenizer.ggml.merges"));
  std::vector<int32_t> types;
  if (file.HasKey("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> raw, file.GetIntArray("tokenizer.ggml.token_type"));
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] < 0 || raw[i] > 64) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.ggml.token_type[", i, "] = ", raw[i], " is out of range"));
      }
      types.push_back(static_cast<int32_t>(raw[i]));
    }
  }
  ASSIGN_OR_RETURN(int32_t bos, OptionalTokenId(file, "tokenizer.ggml.bos_token_id"));
  ASSIGN_OR_RETURN(int32_t eos, OptionalTokenId(file, "tokenizer.ggml.eos_token_id"));
  bool add_bos = Tokenizer::GgufPreAddsBosByDefault(pre);
  if (file.HasKey("tokenizer.ggml.add_bos_token")) {
    ASSIGN_OR_RETURN(add_bos, file.GetBool("tokenizer.ggml.add_bos_token"));
  }
  return Tokenizer::FromGgufVocab(tokens, merges, types, pre, bos, eos, add_bos);
}

}  // namespace

absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const GgufFile& file) {
  absl::StatusOr<Tokenizer> tok = Load(file);
  if (!tok.ok()) return WithFile(file, tok.status());
  return tok;
}

absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  return LoadTokenizerFromGguf(*file);
}

}  // namespace compressd::engine
