#include "server/models/model_summary.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/safetensors.h"

namespace compressd {
namespace {

using Summary = std::map<std::string, std::string>;

void SummarizeGguf(const std::string& path, Summary* out) {
  absl::StatusOr<std::unique_ptr<engine::GgufFile>> file = engine::GgufFile::Open(path);
  if (!file.ok()) return;
  const engine::GgufFile& f = **file;
  absl::StatusOr<std::string> arch = f.GetString("general.architecture");
  if (!arch.ok()) return;
  (*out)["architecture"] = *arch;
  // Our key -> the GGUF key after "<arch>.".
  static const std::pair<const char*, const char*> kKeys[] = {
      {"layers", "block_count"},
      {"hidden_size", "embedding_length"},
      {"heads", "attention.head_count"},
      {"kv_heads", "attention.head_count_kv"},
      {"intermediate_size", "feed_forward_length"},
      {"context_length", "context_length"},
      {"experts", "expert_count"},
      {"vocab_size", "vocab_size"}};
  for (const auto& [ours, theirs] : kKeys) {
    absl::StatusOr<uint64_t> v = f.GetU64(absl::StrCat(*arch, ".", theirs));
    if (v.ok()) (*out)[ours] = absl::StrCat(*v);
  }
  if (!out->count("vocab_size")) {
    absl::StatusOr<std::vector<std::string>> tokens = f.GetStringArray("tokenizer.ggml.tokens");
    if (tokens.ok()) (*out)["vocab_size"] = absl::StrCat(tokens->size());
  }
  int64_t params = 0;
  for (const engine::GgufTensorInfo& t : f.tensors()) params += t.numel;
  (*out)["parameters"] = absl::StrCat(params);
}

void SummarizeHfConfig(const std::string& path, Summary* out) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json config = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return;
  // Our key -> config.json's (the first present wins).
  static const std::pair<const char*, std::vector<const char*>> kKeys[] = {
      {"architecture", {"model_type"}},
      {"layers", {"num_hidden_layers"}},
      {"hidden_size", {"hidden_size"}},
      {"heads", {"num_attention_heads"}},
      {"kv_heads", {"num_key_value_heads"}},
      {"intermediate_size", {"intermediate_size"}},
      {"vocab_size", {"vocab_size"}},
      {"context_length", {"max_position_embeddings"}},
      {"experts", {"num_local_experts", "num_experts"}}};
  for (const auto& [ours, theirs] : kKeys) {
    for (const char* key : theirs) {
      auto it = config.find(key);
      if (it == config.end() || it->is_null() || it->is_structured()) continue;
      (*out)[ours] = it->is_string() ? it->get<std::string>() : it->dump();
      break;
    }
  }
}

}  // namespace

Summary SummarizeModel(v1::ModelFormat format,
                       const google::protobuf::RepeatedPtrField<v1::FileEntry>& files,
                       const BlobStore& blobs) {
  Summary out;
  int64_t params = 0;
  for (const v1::FileEntry& f : files) {
    const std::string path = blobs.PathFor(f.sha256());
    if (format == v1::GGUF && absl::EndsWith(f.path(), ".gguf")) {
      SummarizeGguf(path, &out);
    } else if (format == v1::HF_SAFETENSORS && f.path() == "config.json") {
      SummarizeHfConfig(path, &out);
    } else if (format == v1::HF_SAFETENSORS && absl::EndsWith(f.path(), ".safetensors")) {
      absl::StatusOr<std::unique_ptr<engine::SafetensorsFile>> st =
          engine::SafetensorsFile::Open(path);
      if (!st.ok()) continue;
      for (const auto& t : (*st)->tensors()) params += static_cast<int64_t>(t.numel);
    }
  }
  if (format == v1::HF_SAFETENSORS && params > 0) out["parameters"] = absl::StrCat(params);
  // A GGUF's strings are raw bytes; a Model's map values must be UTF-8 (a row
  // that protobuf cannot parse back would break every later ListModels).
  for (auto& [key, value] : out) value = ToValidUtf8(value, 256);
  return out;
}

}  // namespace compressd
