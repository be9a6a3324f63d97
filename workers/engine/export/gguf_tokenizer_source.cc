#include "workers/engine/export/gguf_tokenizer_source.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/gguf_writer.h"

namespace compressd::engine {

namespace {

// tokenizer_config.json as an object (empty when absent or malformed: the
// tokenizer still converts, without what it would add).
nlohmann::json TokenizerConfig(const std::filesystem::path& dir) {
  absl::StatusOr<std::string> text = ReadFileToString((dir / "tokenizer_config.json").string());
  if (!text.ok()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : nlohmann::json::object();
}

// The model's chat template: tokenizer_config.json's, else chat_template.jinja; "" when none.
std::string ChatTemplate(const std::filesystem::path& dir, const nlohmann::json& config) {
  if (config.contains("chat_template") && config["chat_template"].is_string()) {
    return config["chat_template"].get<std::string>();
  }
  absl::StatusOr<std::string> jinja = ReadFileToString((dir / "chat_template.jinja").string());
  return jinja.ok() ? *jinja : "";
}

// The special tokens tokenizer_config.json names (bos_token, ...: a string
// or {"content": ...}) by id, where tokenizer.json's post-processor did not
// set them, as convert_hf_to_gguf.py's SpecialVocab does.
void AddSpecialIds(const nlohmann::json& config, GgufVocab* vocab) {
  auto id_of = [&](const char* key) -> int32_t {
    auto it = config.find(key);
    if (it == config.end()) return -1;
    const nlohmann::json& v = it->is_object() && it->contains("content") ? (*it)["content"] : *it;
    if (!v.is_string()) return -1;
    const auto at = std::find(vocab->tokens.begin(), vocab->tokens.end(), v.get<std::string>());
    return at == vocab->tokens.end() ? -1 : static_cast<int32_t>(at - vocab->tokens.begin());
  };
  for (auto [key, id] : {std::pair{"bos_token", &vocab->bos_id}, std::pair{"eos_token", &vocab->eos_id},
                         std::pair{"pad_token", &vocab->pad_id}, std::pair{"unk_token", &vocab->unk_id}}) {
    if (*id < 0) *id = id_of(key);
  }
}

}  // namespace

absl::StatusOr<std::string> TokenizerGgufBytes(const GgufVocab& vocab, const std::string& name,
                                               const std::string& chat_template) {
  GgufBuilder b;
  b.AddString("general.name", name);
  b.AddString("tokenizer.ggml.model", "gpt2");
  b.AddString("tokenizer.ggml.pre", vocab.pre);
  b.AddStringArray("tokenizer.ggml.tokens", vocab.tokens);
  b.AddIntArray("tokenizer.ggml.token_type", GgufValueType::kI32,
                std::vector<int64_t>(vocab.token_types.begin(), vocab.token_types.end()));
  b.AddStringArray("tokenizer.ggml.merges", vocab.merges);
  if (vocab.bos_id >= 0) b.AddU32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  if (vocab.eos_id >= 0) b.AddU32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  if (vocab.unk_id >= 0) b.AddU32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(vocab.unk_id));
  if (vocab.pad_id >= 0) b.AddU32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.pad_id));
  b.AddBool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  b.AddBool("tokenizer.ggml.add_eos_token", vocab.add_eos);
  if (!chat_template.empty()) b.AddString("tokenizer.chat_template", chat_template);
  return b.Header();
}

absl::StatusOr<std::unique_ptr<GgufFile>> TokenizerGgufFromHf(const std::string& model_dir,
                                                              int32_t vocab_size) {
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(
        path, ": a GGUF output needs the model's tokenizer, and there is no tokenizer.json"));
  }
  auto prefixed = [&path](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  absl::StatusOr<TokenizerSpec> spec = Tokenizer::SpecFromHfJson(*text);
  if (!spec.ok()) return prefixed(spec.status());
  if (vocab_size <= 0) vocab_size = static_cast<int32_t>(spec->vocab.size());
  absl::StatusOr<GgufVocab> vocab = Tokenizer::GgufVocabFromSpec(*spec, vocab_size);
  if (!vocab.ok()) return prefixed(vocab.status());
  const std::filesystem::path dir(model_dir);
  const nlohmann::json config = TokenizerConfig(dir);
  AddSpecialIds(config, &*vocab);
  ASSIGN_OR_RETURN(std::string bytes,
                   TokenizerGgufBytes(*vocab, dir.filename().string(), ChatTemplate(dir, config)));
  return GgufFile::FromBytes(path + " (as GGUF)", std::move(bytes));
}

}  // namespace compressd::engine
