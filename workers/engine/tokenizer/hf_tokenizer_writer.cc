// ToHfTokenizerJson: TokenizerSpec -> tokenizer.json, the inverse of
// hf_tokenizer_json.cc for everything a spec holds (round trip:
// tokenizer_test.cc; against transformers: tests/integration/real_model_e2e.sh).
#include <map>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

json PreTokenizerJson(const PreTokenizerStep& step) {
  switch (step.kind) {
    case PreTokenizerStep::Kind::kDigits:
      return {{"type", "Digits"}, {"individual_digits", step.individual_digits}};
    case PreTokenizerStep::Kind::kSplit:
      return {{"type", "Split"},
              {"pattern", {{"Regex", std::string(SplitPatternRegex(step.pattern))}}},
              {"behavior", "Isolated"},
              {"invert", false}};
    case PreTokenizerStep::Kind::kByteLevel:
      break;
  }
  return {{"type", "ByteLevel"},
          {"add_prefix_space", step.add_prefix_space},
          {"trim_offsets", true},
          {"use_regex", step.use_regex}};
}

json ByteLevelProcessor() {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", true},
          {"trim_offsets", false},
          {"use_regex", true}};
}

json TemplateItem(const char* kind, const std::string& id, int type_id) {
  return {{kind, {{"id", id}, {"type_id", type_id}}}};
}

absl::StatusOr<json> VocabJson(const TokenizerSpec& spec) {
  json vocab = json::object();
  std::map<std::string, size_t> seen;
  for (size_t id = 0; id < spec.vocab.size(); ++id) {
    const std::string& token = spec.vocab[id];
    if (token.empty()) continue;  // an unused id
    auto [it, inserted] = seen.emplace(token, id);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", id, " \"", token, "\" is also token ", it->second,
                       ": tokenizer.json maps each token string to one id"));
    }
    vocab[token] = id;
  }
  return vocab;
}

json MergesJson(const TokenizerSpec& spec) {
  json merges = json::array();
  // "left right" (readable by every tokenizers version) unless a side holds
  // a space; then the pair form of tokenizers >= 0.20.
  for (const auto& [left, right] : spec.merges) {
    if (left.find(' ') == std::string::npos && right.find(' ') == std::string::npos) {
      merges.push_back(left + " " + right);
    } else {
      merges.push_back(json::array({left, right}));
    }
  }
  return merges;
}

json AddedTokensJson(const TokenizerSpec& spec) {
  json added = json::array();
  for (const AddedToken& t : spec.added_tokens) {
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"single_word", false},
                     {"lstrip", t.lstrip},
                     {"rstrip", t.rstrip},
                     {"normalized", t.normalized},
                     {"special", t.special}});
  }
  return added;
}

json PreTokenizersJson(const TokenizerSpec& spec) {
  if (spec.pre_tokenizer.size() == 1) return PreTokenizerJson(spec.pre_tokenizer[0]);
  json steps = json::array();
  for (const PreTokenizerStep& step : spec.pre_tokenizer) steps.push_back(PreTokenizerJson(step));
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

// ByteLevel, then (adding BOS / EOS) a TemplateProcessing with them.
absl::StatusOr<json> PostProcessorJson(const TokenizerSpec& spec) {
  if (!spec.add_bos && !spec.add_eos) return ByteLevelProcessor();
  json single = json::array(), pair = json::array(), specials = json::object();
  auto special = [&](int32_t id) -> absl::StatusOr<std::string> {
    if (id < 0 || static_cast<size_t>(id) >= spec.vocab.size() || spec.vocab[id].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("BOS / EOS id ", id, " is not a token of the vocabulary"));
    }
    const std::string& token = spec.vocab[id];
    specials[token] = {{"id", token}, {"ids", json::array({id})}, {"tokens", json::array({token})}};
    return token;
  };
  std::string bos, eos;  // empty: not added
  if (spec.add_bos) {
    absl::StatusOr<std::string> t = special(spec.bos_id);
    if (!t.ok()) return t.status();
    bos = *t;
  }
  if (spec.add_eos) {
    absl::StatusOr<std::string> t = special(spec.eos_id);
    if (!t.ok()) return t.status();
    eos = *t;
  }
  // [BOS] sequence [EOS], for "single" (A) and twice for "pair" (A, B).
  auto sequence = [&](const char* seq, int type_id, json* out) {
    if (!bos.empty()) out->push_back(TemplateItem("SpecialToken", bos, type_id));
    out->push_back(TemplateItem("Sequence", seq, type_id));
    if (!eos.empty()) out->push_back(TemplateItem("SpecialToken", eos, type_id));
  };
  sequence("A", 0, &single);
  sequence("A", 0, &pair);
  sequence("B", 1, &pair);
  const json templ = {{"type", "TemplateProcessing"},
                      {"single", single},
                      {"pair", pair},
                      {"special_tokens", specials}};
  return json{{"type", "Sequence"}, {"processors", json::array({ByteLevelProcessor(), templ})}};
}

}  // namespace

absl::StatusOr<std::string> ToHfTokenizerJson(const TokenizerSpec& spec) {
  absl::StatusOr<json> vocab = VocabJson(spec);
  if (!vocab.ok()) return vocab.status();
  absl::StatusOr<json> post = PostProcessorJson(spec);
  if (!post.ok()) return post.status();
  json unk = nullptr;
  if (spec.unk_id >= 0 && static_cast<size_t>(spec.unk_id) < spec.vocab.size()) {
    unk = spec.vocab[spec.unk_id];
  }
  const json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", AddedTokensJson(spec)},
      {"normalizer", nullptr},
      {"pre_tokenizer", PreTokenizersJson(spec)},
      {"post_processor", *post},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", unk},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", spec.fuse_unk},
        {"byte_fallback", false},
        {"ignore_merges", spec.ignore_merges},
        {"vocab", *vocab},
        {"merges", MergesJson(spec)}}},
  };
  try {
    return root.dump(2) + "\n";
  } catch (const json::exception& e) {  // a token that is not valid UTF-8
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

}  // namespace compressd::engine
