#include "tests/unit/engine/tokenizer/golden_fixture.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace compressd::engine::testing {
namespace {

using nlohmann::json;

std::string FixturePath(const std::string& name) {
  return SourceDir() + "/tests/golden/fixtures/" + name;
}

template <typename Build>
const Tokenizer* CachedTokenizer(std::map<std::string, std::unique_ptr<Tokenizer>>* cache,
                                 const std::string& variant, Build build) {
  auto& slot = (*cache)[variant];
  if (!slot) {
    absl::StatusOr<Tokenizer> tok = build();
    if (!tok.ok()) {
      ADD_FAILURE() << "building variant " << variant << ": " << tok.status();
      return nullptr;
    }
    slot = std::make_unique<Tokenizer>(*std::move(tok));
  }
  return slot.get();
}

}  // namespace

std::string SourceDir() {
  const char* env = std::getenv("COMPRESSD_SOURCE_DIR");
  return (env != nullptr && *env != '\0') ? env : COMPRESSD_TOKENIZER_TEST_SOURCE_DIR;
}

std::string ReadFileOrThrow(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

const json& Golden() {
  static const json* const golden =
      new json(json::parse(ReadFileOrThrow(FixturePath("tokenizer_golden.json"))));
  return *golden;
}

const json& BaseTokenizerJson() {
  static const json* const base =
      new json(json::parse(ReadFileOrThrow(FixturePath(Golden()["tokenizer_json"]))));
  return *base;
}

absl::StatusOr<std::string> ReadSharedText(const std::string& rel) {
  const std::string path = SourceDir() + "/../shared/data/" + rel;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "shared text ", path, " is missing (expected ../shared/data beside the repo)"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::StatusOr<std::string> ReadSlice(const json& slice) {
  const std::string rel = slice["file"];
  absl::StatusOr<std::string> text = ReadSharedText(rel);
  if (!text.ok()) return text.status();
  const size_t offset = slice["offset"];
  const size_t length = slice["length"];
  if (offset + length > text->size()) {
    return absl::FailedPreconditionError(absl::StrCat(rel, " is shorter than the fixture expects"));
  }
  std::string bytes = text->substr(offset, length);
  if (Sha256Hex(bytes) != slice["sha256"].get<std::string>()) {
    return absl::FailedPreconditionError(
        absl::StrCat(rel, " [", offset, ", +", length, ") changed since the fixture was made"));
  }
  return bytes;
}

std::string VariantJson(const std::string& variant) {
  const json& v = Golden()["variants"].at(variant);
  json j = BaseTokenizerJson();
  j["pre_tokenizer"] = v["pre_tokenizer"];
  j["model"]["ignore_merges"] = v["ignore_merges"];
  j["post_processor"] = v["post_processor"];
  return j.dump();
}

const GgufArrays& BaseGgufArrays() {
  static const GgufArrays* const arrays = [] {
    auto* a = new GgufArrays;
    const json& base = BaseTokenizerJson();
    const json& vocab = base["model"]["vocab"];
    a->tokens.resize(vocab.size());
    for (const auto& [token, id] : vocab.items()) a->tokens.at(id.get<size_t>()) = token;
    for (const json& m : base["model"]["merges"]) {
      a->merges.push_back(m.is_string() ? m.get<std::string>()
                                        : m[0].get<std::string>() + " " + m[1].get<std::string>());
    }
    a->token_types.assign(a->tokens.size(), 1);
    for (const json& added : base["added_tokens"]) {
      a->token_types.at(added["id"].get<size_t>()) = added["special"].get<bool>() ? 3 : 4;
    }
    return a;
  }();
  return *arrays;
}

const Tokenizer* HfTokenizer(const std::string& variant) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>;
  return CachedTokenizer(cache, variant,
                         [&] { return Tokenizer::FromHfJson(VariantJson(variant)); });
}

const Tokenizer* GgufTokenizer(const std::string& variant) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>;
  return CachedTokenizer(cache, variant, [&] {
    const GgufArrays& a = BaseGgufArrays();
    const json& gguf = Golden()["gguf"];
    return Tokenizer::FromGgufVocab(a.tokens, a.merges, a.token_types,
                                    Golden()["variants"].at(variant)["gguf_pre"], gguf["bos"],
                                    gguf["eos"], gguf["add_bos"]);
  });
}

const Tokenizer* WrittenHfTokenizer(const std::string& variant) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>;
  return CachedTokenizer(cache, variant, [&]() -> absl::StatusOr<Tokenizer> {
    const GgufArrays& a = BaseGgufArrays();
    const json& gguf = Golden()["gguf"];
    absl::StatusOr<TokenizerSpec> spec = Tokenizer::SpecFromGgufVocab(
        a.tokens, a.merges, a.token_types, Golden()["variants"].at(variant)["gguf_pre"],
        gguf["bos"], gguf["eos"], gguf["add_bos"]);
    if (!spec.ok()) return spec.status();
    absl::StatusOr<std::string> text = ToHfTokenizerJson(*spec);
    if (!text.ok()) return text.status();
    return Tokenizer::FromHfJson(*text);
  });
}

const Tokenizer* ConvertedGgufTokenizer(const std::string& variant) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>;
  return CachedTokenizer(cache, variant, [&]() -> absl::StatusOr<Tokenizer> {
    absl::StatusOr<TokenizerSpec> spec = Tokenizer::SpecFromHfJson(VariantJson(variant));
    if (!spec.ok()) return spec.status();
    absl::StatusOr<GgufVocab> v =
        Tokenizer::GgufVocabFromSpec(*spec, static_cast<int32_t>(spec->vocab.size()));
    if (!v.ok()) return v.status();
    if (v->pre != Golden()["variants"].at(variant)["gguf_pre"].get<std::string>()) {
      return absl::InternalError(absl::StrCat(variant, ": converted to pre \"", v->pre, "\""));
    }
    return Tokenizer::FromGgufVocab(v->tokens, v->merges, v->token_types, v->pre, v->bos_id,
                                    v->eos_id, v->add_bos);
  });
}

std::vector<int32_t> Ids(const json& array) { return array.get<std::vector<int32_t>>(); }

}  // namespace compressd::engine::testing
