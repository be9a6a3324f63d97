#include "workers/engine/model/hf_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/families.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

absl::Status FieldError(const std::string& what, absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, ": ", why));
}

absl::StatusOr<int64_t> PositiveInt(const json& j, const std::string& what, const char* field,
                                    bool required = true, int64_t fallback = 0) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (!required) return fallback;
    return FieldError(what, field, "missing");
  }
  if (!it->is_number_integer()) return FieldError(what, field, "must be an integer");
  const int64_t v = it->get<int64_t>();
  if (v <= 0 || (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX)) {
    return FieldError(what, field, absl::StrCat("must be positive, got ", it->dump()));
  }
  return v;
}

absl::Status ParseStrings(const json& j, const std::string& what, HfConfig* c) {
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string()) return FieldError(what, "model_type", "missing");
  c->model_type = mt->get<std::string>();
  if (FindFamily(c->model_type) == nullptr) {
    return FieldError(what, "model_type",
                      absl::StrCat("unsupported \"", c->model_type,
                                   "\" (supported: ", SupportedModelTypes(), ")"));
  }
  if (auto a = j.find("architectures"); a != j.end() && !a->is_null()) {
    if (!a->is_array()) return FieldError(what, "architectures", "must be a list of strings");
    for (const json& s : *a) {
      if (!s.is_string()) return FieldError(what, "architectures", "must be a list of strings");
      c->architectures.push_back(s.get<std::string>());
    }
  }
  if (auto d = j.find("torch_dtype"); d != j.end() && !d->is_null()) {
    if (!d->is_string()) return FieldError(what, "torch_dtype", "must be a string");
    c->torch_dtype = d->get<std::string>();
  }
  if (auto t = j.find("tie_word_embeddings"); t != j.end() && !t->is_null()) {
    if (!t->is_boolean()) return FieldError(what, "tie_word_embeddings", "must be true or false");
    c->tie_word_embeddings = t->get<bool>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HfConfig> ParseHfConfig(absl::string_view json_text, const std::string& what) {
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not a JSON object"));
  HfConfig c;
  RETURN_IF_ERROR(ParseStrings(j, what, &c));
  ASSIGN_OR_RETURN(c.num_hidden_layers, PositiveInt(j, what, "num_hidden_layers"));
  ASSIGN_OR_RETURN(c.hidden_size, PositiveInt(j, what, "hidden_size"));
  ASSIGN_OR_RETURN(c.intermediate_size, PositiveInt(j, what, "intermediate_size"));
  ASSIGN_OR_RETURN(c.num_attention_heads, PositiveInt(j, what, "num_attention_heads"));
  ASSIGN_OR_RETURN(c.num_key_value_heads, PositiveInt(j, what, "num_key_value_heads",
                                                      /*required=*/false, c.num_attention_heads));
  ASSIGN_OR_RETURN(c.vocab_size, PositiveInt(j, what, "vocab_size"));
  // An explicit head_dim (Mistral-Nemo style) decouples it from hidden_size.
  if (!j.contains("head_dim") && c.hidden_size % c.num_attention_heads != 0) {
    return FieldError(what, "num_attention_heads",
                      absl::StrCat(c.num_attention_heads, " does not divide hidden_size ",
                                   c.hidden_size));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return FieldError(what, "num_key_value_heads",
                      absl::StrCat(c.num_key_value_heads, " does not divide num_attention_heads ",
                                   c.num_attention_heads));
  }
  return c;
}

absl::StatusOr<HfConfig> ReadHfConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseHfConfig(ss.str(), path);
}

}  // namespace compressd::engine
