// Tokenizer::FromHfJson: tokenizer.json (HF tokenizers' serialization) ->
// TokenizerSpec. Supported: model BPE (no byte fallback, dropout, subword
// prefix/suffix), no normalizer, pre_tokenizer made of Sequence / Digits /
// Split(Regex, Isolated) / ByteLevel, post_processor ByteLevel /
// TemplateProcessing (BOS/EOS around the sequence) / Sequence, decoder
// ByteLevel. Anything else is INVALID_ARGUMENT naming the field.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", field, ": ", what));
}

bool IsNullOr(const json& parent, const char* key, const json& allowed) {
  const auto it = parent.find(key);
  return it == parent.end() || it->is_null() || *it == allowed;
}

// A normalizer that changes nothing: null, or a Sequence of such (transformers
// 5 saves an empty {"type": "Sequence", "normalizers": []}).
bool NoOpNormalizer(const json& n) {
  if (n.is_null()) return true;
  if (!n.is_object() || n.value("type", "") != "Sequence") return false;
  const auto list = n.find("normalizers");
  if (list == n.end() || !list->is_array()) return false;
  for (const json& inner : *list) {
    if (!NoOpNormalizer(inner)) return false;
  }
  return true;
}

bool BoolOr(const json& parent, const char* key, bool fallback) {
  const auto it = parent.find(key);
  return (it == parent.end() || it->is_null()) ? fallback : it->get<bool>();
}

absl::Status ParseMerges(const json& merges, TokenizerSpec* spec) {
  if (!merges.is_array()) return Invalid("model.merges", "not an array");
  spec->merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Invalid(absl::StrCat("model.merges[", i, "]"), "expected \"left right\"");
      }
      spec->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2) {
      spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return Invalid(absl::StrCat("model.merges[", i, "]"), "expected a string or a pair");
    }
  }
  return absl::OkStatus();
}

absl::Status ParseModel(const json& model, TokenizerSpec* spec) {
  if (!model.is_object()) return Invalid("model", "missing");
  if (!IsNullOr(model, "type", "BPE")) {
    return Invalid("model.type",
                   absl::StrCat(model.at("type").dump(), " is not supported (BPE only)"));
  }
  if (const auto d = model.find("dropout");
      d != model.end() && !d->is_null() && !(d->is_number() && d->get<double>() == 0.0)) {
    return Invalid("model.dropout", "BPE dropout is not supported");
  }
  if (BoolOr(model, "byte_fallback", false)) {
    return Invalid("model.byte_fallback", "byte fallback is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!IsNullOr(model, key, "")) return Invalid(absl::StrCat("model.", key), "not supported");
  }
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) return Invalid("model.vocab", "not an object");
  int64_t max_id = -1;
  for (const auto& [token, id_json] : vocab->items()) {
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || id > kMaxTokenId) {
      return Invalid("model.vocab", absl::StrCat("token \"", token, "\" has bad id ", id));
    }
    max_id = std::max(max_id, id);
  }
  // Ids index a dense table: refuse a small file that would allocate a huge one.
  if (max_id >= 2 * static_cast<int64_t>(vocab->size()) + 1024) {
    return Invalid("model.vocab", absl::StrCat("ids are sparse: max id ", max_id, " for ",
                                               vocab->size(), " tokens"));
  }
  spec->vocab.resize(max_id + 1);
  for (const auto& [token, id_json] : vocab->items()) {
    const int64_t id = id_json.get<int64_t>();
    if (!spec->vocab[id].empty()) {
      return Invalid("model.vocab", absl::StrCat("id ", id, " is used twice"));
    }
    spec->vocab[id] = token;
  }
  const auto merges = model.find("merges");
  if (merges == model.end()) return Invalid("model.merges", "missing");
  RETURN_IF_ERROR(ParseMerges(*merges, spec));
  spec->ignore_merges = BoolOr(model, "ignore_merges", false);
  spec->fuse_unk = BoolOr(model, "fuse_unk", false);
  if (const auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
    const auto it = vocab->find(unk->get<std::string>());
    if (it == vocab->end()) return Invalid("model.unk_token", "not in the vocabulary");
    spec->unk_id = it->get<int32_t>();
  }
  return absl::OkStatus();
}

absl::Status ParseAddedTokens(const json& root, TokenizerSpec* spec) {
  const auto added = root.find("added_tokens");
  if (added == root.end() || added->is_null()) return absl::OkStatus();
  if (!added->is_array()) return Invalid("added_tokens", "not an array");
  for (size_t i = 0; i < added->size(); ++i) {
    const json& a = (*added)[i];
    const std::string field = absl::StrCat("added_tokens[", i, "]");
    if (BoolOr(a, "single_word", false)) return Invalid(field, "single_word is not supported");
    AddedToken t;
    t.id = a.at("id").get<int32_t>();
    t.content = a.at("content").get<std::string>();
    t.special = BoolOr(a, "special", false);
    t.lstrip = BoolOr(a, "lstrip", false);
    t.rstrip = BoolOr(a, "rstrip", false);
    t.normalized = BoolOr(a, "normalized", !t.special);
    spec->added_tokens.push_back(std::move(t));
  }
  return absl::OkStatus();
}

absl::Status ParsePreTokenizer(const json& pre, const std::string& field,
                               std::vector<PreTokenizerStep>* steps) {
  if (!pre.is_object()) return Invalid(field, "missing (byte-level BPE needs ByteLevel)");
  const std::string type = pre.value("type", "");
  if (type == "Sequence") {
    const json& list = pre.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      RETURN_IF_ERROR(
          ParsePreTokenizer(list[i], absl::StrCat(field, ".pretokenizers[", i, "]"), steps));
    }
  } else if (type == "ByteLevel") {
    steps->push_back(PreTokenizerStep::ByteLevel(BoolOr(pre, "add_prefix_space", true),
                                                 BoolOr(pre, "use_regex", true)));
  } else if (type == "Digits") {
    steps->push_back(PreTokenizerStep::Digits(BoolOr(pre, "individual_digits", false)));
  } else if (type == "Split") {
    if (pre.value("behavior", "") != "Isolated" || BoolOr(pre, "invert", false)) {
      return Invalid(field, "only behavior Isolated without invert is supported");
    }
    const json& pattern = pre.at("pattern");
    if (!pattern.contains("Regex")) return Invalid(field, "only a Regex pattern is supported");
    const std::string regex = pattern.at("Regex").get<std::string>();
    const std::optional<SplitPattern> p = SplitPatternFromRegex(regex);
    if (!p) return Invalid(field, absl::StrCat("unsupported split regex ", pattern.dump()));
    steps->push_back(PreTokenizerStep::Split(*p));
  } else {
    return Invalid(field, absl::StrCat("pre-tokenizer type \"", type, "\" is not supported"));
  }
  return absl::OkStatus();
}

// BOS/EOS from a TemplateProcessing "single" template: [S?, A, S?].
absl::Status ParseTemplate(const json& proc, const std::string& field, TokenizerSpec* spec) {
  const json& single = proc.at("single");
  const json& specials =
      proc.contains("special_tokens") ? proc.at("special_tokens") : json::object();
  size_t seq_index = single.size();
  for (size_t i = 0; i < single.size(); ++i) {
    if (single[i].contains("Sequence")) {
      if (seq_index != single.size()) return Invalid(field, "two sequences in \"single\"");
      seq_index = i;
    }
  }
  if (seq_index == single.size() || seq_index > 1 || single.size() - seq_index > 2) {
    return Invalid(field, "\"single\" must be [SpecialToken?, Sequence, SpecialToken?]");
  }
  for (size_t i = 0; i < single.size(); ++i) {
    if (i == seq_index) continue;
    const std::string name = single[i].at("SpecialToken").at("id").get<std::string>();
    if (!specials.contains(name) || specials.at(name).at("ids").size() != 1) {
      return Invalid(field, absl::StrCat("special token \"", name, "\" needs exactly one id"));
    }
    const int32_t id = specials.at(name).at("ids").at(0).get<int32_t>();
    if (i < seq_index) {
      spec->bos_id = id;
      spec->add_bos = true;
    } else {
      spec->eos_id = id;
      spec->add_eos = true;
    }
  }
  return absl::OkStatus();
}

absl::Status ParsePostProcessor(const json& proc, const std::string& field, TokenizerSpec* spec) {
  if (proc.is_null()) return absl::OkStatus();
  const std::string type = proc.value("type", "");
  if (type == "ByteLevel") return absl::OkStatus();  // only adjusts offsets
  if (type == "TemplateProcessing") return ParseTemplate(proc, field, spec);
  if (type == "Sequence") {
    const json& list = proc.at("processors");
    for (size_t i = 0; i < list.size(); ++i) {
      RETURN_IF_ERROR(
          ParsePostProcessor(list[i], absl::StrCat(field, ".processors[", i, "]"), spec));
    }
    return absl::OkStatus();
  }
  return Invalid(field, absl::StrCat("post-processor type \"", type, "\" is not supported"));
}

absl::StatusOr<TokenizerSpec> SpecFromJson(const json& root) {
  if (!root.is_object()) return Invalid("(root)", "not an object");
  TokenizerSpec spec;
  if (const auto n = root.find("normalizer"); n != root.end() && !NoOpNormalizer(*n)) {
    return Invalid("normalizer", absl::StrCat(n->dump(),
                                              " is not supported (only null or an "
                                              "empty Sequence)"));
  }
  if (const auto dec = root.find("decoder");
      dec != root.end() && !dec->is_null() && dec->value("type", "") != "ByteLevel") {
    return Invalid("decoder", "only ByteLevel is supported");
  }
  RETURN_IF_ERROR(ParseModel(root.contains("model") ? root.at("model") : json(), &spec));
  RETURN_IF_ERROR(ParseAddedTokens(root, &spec));
  RETURN_IF_ERROR(
      ParsePreTokenizer(root.contains("pre_tokenizer") ? root.at("pre_tokenizer") : json(),
                        "pre_tokenizer", &spec.pre_tokenizer));
  RETURN_IF_ERROR(
      ParsePostProcessor(root.contains("post_processor") ? root.at("post_processor") : json(),
                         "post_processor", &spec));
  return spec;
}

}  // namespace

absl::StatusOr<TokenizerSpec> Tokenizer::SpecFromHfJson(absl::string_view json_text) {
  const json root = json::parse(json_text.begin(), json_text.end(), nullptr,
                                /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("(file)", "not valid JSON");
  try {
    return SpecFromJson(root);
  } catch (const json::exception& e) {
    return Invalid("(structure)", e.what());
  }
}

absl::StatusOr<Tokenizer> Tokenizer::FromHfJson(absl::string_view json_text) {
  ASSIGN_OR_RETURN(TokenizerSpec spec, SpecFromHfJson(json_text));
  return Create(std::move(spec));
}

absl::StatusOr<Tokenizer> Tokenizer::FromHfJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<Tokenizer> tok = FromHfJson(buffer.str());
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat(path, ": ", tok.status().message()));
  }
  return tok;
}

}  // namespace compressd::engine
