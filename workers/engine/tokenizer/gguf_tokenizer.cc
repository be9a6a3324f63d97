#include "workers/engine/tokenizer/gguf_tokenizer.h"

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

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

// The tokenizer.ggml.* keys a Tokenizer is built from.
struct GgufVocab {
  std::vector<std::string> tokens, merges;
  std::vector<int32_t> types;
  std::string pre;
  int32_t bos = -1, eos = -1, unk = -1;
  bool add_bos = false, add_eos = false;
};

absl::StatusOr<GgufVocab> ReadVocab(const GgufFile& file) {
  GgufVocab v;
  ASSIGN_OR_RETURN(std::string model, file.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.ggml.model \"", model, "\" is not supported (only BPE \"gpt2\")"));
  }
  ASSIGN_OR_RETURN(v.pre, file.GetString("tokenizer.ggml.pre"));
  ASSIGN_OR_RETURN(v.tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  ASSIGN_OR_RETURN(v.merges, file.GetStringArray("tokenizer.ggml.merges"));
  if (file.HasKey("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> raw, file.GetIntArray("tokenizer.ggml.token_type"));
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] < 0 || raw[i] > 64) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer.ggml.token_type[", i, "] = ", raw[i], " is out of range"));
      }
      v.types.push_back(static_cast<int32_t>(raw[i]));
    }
  }
  ASSIGN_OR_RETURN(v.bos, OptionalTokenId(file, "tokenizer.ggml.bos_token_id"));
  ASSIGN_OR_RETURN(v.eos, OptionalTokenId(file, "tokenizer.ggml.eos_token_id"));
  v.add_bos = Tokenizer::GgufPreAddsBosByDefault(v.pre);
  if (file.HasKey("tokenizer.ggml.add_bos_token")) {
    ASSIGN_OR_RETURN(v.add_bos, file.GetBool("tokenizer.ggml.add_bos_token"));
  }
  if (file.HasKey("tokenizer.ggml.add_eos_token")) {
    ASSIGN_OR_RETURN(v.add_eos, file.GetBool("tokenizer.ggml.add_eos_token"));
  }
  ASSIGN_OR_RETURN(v.unk, OptionalTokenId(file, "tokenizer.ggml.unknown_token_id"));
  return v;
}

absl::StatusOr<TokenizerSpec> ReadSpec(const GgufFile& file, GgufVocab* vocab = nullptr) {
  ASSIGN_OR_RETURN(GgufVocab v, ReadVocab(file));
  ASSIGN_OR_RETURN(TokenizerSpec spec, Tokenizer::SpecFromGgufVocab(v.tokens, v.merges, v.types,
                                                                    v.pre, v.bos, v.eos,
                                                                    v.add_bos));
  spec.add_eos = v.add_eos && v.eos >= 0;  // as llama.cpp: tokenizer.ggml.add_eos_token
  if (vocab != nullptr) *vocab = std::move(v);
  return spec;
}

// The content of token `id` (null when absent or out of range).
nlohmann::json TokenOrNull(const TokenizerSpec& spec, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= spec.vocab.size()) return nullptr;
  return spec.vocab[id];
}

absl::StatusOr<HfTokenizerFiles> HfFiles(const GgufFile& file) {
  GgufVocab v;
  ASSIGN_OR_RETURN(TokenizerSpec spec, ReadSpec(file, &v));
  // The unknown token only names a token here: a byte-level vocabulary
  // covers every byte, so BPE never falls back to it.
  spec.unk_id = v.unk;
  const int32_t unk = v.unk;
  ASSIGN_OR_RETURN(int32_t pad, OptionalTokenId(file, "tokenizer.ggml.padding_token_id"));
  HfTokenizerFiles out;
  ASSIGN_OR_RETURN(out.tokenizer_json, ToHfTokenizerJson(spec));
  nlohmann::json config = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"add_bos_token", spec.add_bos},
      {"add_eos_token", spec.add_eos},
      {"bos_token", TokenOrNull(spec, v.bos)},
      {"eos_token", TokenOrNull(spec, v.eos)},
      {"unk_token", TokenOrNull(spec, unk)},
      {"pad_token", TokenOrNull(spec, pad)},
      {"clean_up_tokenization_spaces", false},
  };
  if (file.HasKey("llama.context_length")) {
    ASSIGN_OR_RETURN(uint32_t n, file.GetU32("llama.context_length"));
    config["model_max_length"] = n;
  }
  if (file.HasKey("tokenizer.chat_template")) {
    ASSIGN_OR_RETURN(std::string chat_template, file.GetString("tokenizer.chat_template"));
    config["chat_template"] = chat_template;
  }
  try {
    out.tokenizer_config_json = config.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", e.what()));
  }
  return out;
}

}  // namespace

absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const GgufFile& file) {
  absl::StatusOr<TokenizerSpec> spec = ReadSpec(file);
  if (!spec.ok()) return WithFile(file, spec.status());
  absl::StatusOr<Tokenizer> tok = Tokenizer::Create(*std::move(spec));
  if (!tok.ok()) return WithFile(file, tok.status());
  return tok;
}

absl::StatusOr<HfTokenizerFiles> HfTokenizerFilesFromGguf(const GgufFile& file) {
  absl::StatusOr<HfTokenizerFiles> files = HfFiles(file);
  if (!files.ok()) return WithFile(file, files.status());
  return files;
}

absl::StatusOr<Tokenizer> LoadTokenizerFromGguf(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(path));
  return LoadTokenizerFromGguf(*file);
}

}  // namespace compressd::engine
