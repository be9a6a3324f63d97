// Unit tests on a toy vocabulary: BPE merge order, added tokens, BOS/EOS,
// decoding, and the loaders' validation of malformed or unsupported input.
#include "workers/engine/tokenizer/tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/engine/tokenizer/bpe_model.h"
#include "workers/engine/tokenizer/byte_level.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ids 0..255: the byte-level character of byte i; then merged tokens.
std::vector<std::string> ByteVocab() {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back(BytesToByteLevel(std::string(1, char(b))));
  return vocab;
}

int32_t Add(std::vector<std::string>* vocab, const std::string& token) {
  vocab->push_back(token);
  return static_cast<int32_t>(vocab->size() - 1);
}

TEST(BpeModelTest, MergesByRankLeftmostFirst) {
  std::vector<std::string> vocab = ByteVocab();
  const int32_t ab = Add(&vocab, "ab");
  const int32_t bc = Add(&vocab, "bc");
  const int32_t abc = Add(&vocab, "abc");
  const int32_t aa = Add(&vocab, "aa");
  const int32_t aaaa = Add(&vocab, "aaaa");
  auto bpe =
      BpeModel::Create(vocab, {{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "a"}, {"aa", "aa"}}, {});
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  const auto encode = [&](const std::string& w) {
    std::vector<int32_t> out;
    bpe->EncodeWord(w, &out);
    return out;
  };
  EXPECT_THAT(encode("abc"), ElementsAre(abc));  // ab (rank 0) before bc (rank 1)
  EXPECT_THAT(encode("bcab"), ElementsAre(bc, ab));
  EXPECT_THAT(encode("aaa"), ElementsAre(aa, 'a'));  // leftmost on ties
  EXPECT_THAT(encode("aaaa"), ElementsAre(aaaa));
  EXPECT_THAT(encode("aaaaa"), ElementsAre(aaaa, 'a'));
  EXPECT_THAT(encode("x"), ElementsAre('x'));
}

TEST(BpeModelTest, IgnoreMergesUsesWholeWordTokens) {
  std::vector<std::string> vocab = ByteVocab();
  const int32_t xyz = Add(&vocab, "xyz");  // not reachable by merges
  BpeModel::Options options;
  auto plain = BpeModel::Create(vocab, {}, options);
  options.ignore_merges = true;
  auto whole = BpeModel::Create(vocab, {}, options);
  ASSERT_TRUE(plain.ok() && whole.ok());
  std::vector<int32_t> a, b;
  plain->EncodeWord("xyz", &a);
  whole->EncodeWord("xyz", &b);
  EXPECT_THAT(a, ElementsAre('x', 'y', 'z'));
  EXPECT_THAT(b, ElementsAre(xyz));
}

TEST(BpeModelTest, MissingBytesUseUnkOrAreDropped) {
  std::vector<std::string> vocab = {"a", "<unk>"};
  auto drop = BpeModel::Create(vocab, {}, {});
  BpeModel::Options unk;
  unk.unk_id = 1;
  auto with_unk = BpeModel::Create(vocab, {}, unk);
  unk.fuse_unk = true;
  auto fused = BpeModel::Create(vocab, {}, unk);
  ASSERT_TRUE(drop.ok() && with_unk.ok() && fused.ok());
  std::vector<int32_t> a, b, c;
  drop->EncodeWord("xya", &a);
  with_unk->EncodeWord("xya", &b);
  fused->EncodeWord("xya", &c);
  EXPECT_THAT(a, ElementsAre(0));
  EXPECT_THAT(b, ElementsAre(1, 1, 0));
  EXPECT_THAT(c, ElementsAre(1, 0));
}

TEST(BpeModelTest, MergeOfUnknownTokenIsRejected) {
  auto bpe = BpeModel::Create(ByteVocab(), {{"a", "b"}}, {});
  ASSERT_FALSE(bpe.ok());
  EXPECT_EQ(bpe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bpe.status().message(), HasSubstr("merges[0]"));
}

TokenizerSpec ToySpec() {
  TokenizerSpec spec;
  spec.vocab = ByteVocab();
  Add(&spec.vocab, "<s>");     // 256
  Add(&spec.vocab, "</s>");    // 257
  Add(&spec.vocab, "<x>");     // 258
  Add(&spec.vocab, "<x><y>");  // 259
  spec.pre_tokenizer = {PreTokenizerStep::ByteLevel(false, true)};
  spec.added_tokens = {
      {"<s>", 256, true}, {"</s>", 257, true}, {"<x>", 258, false}, {"<x><y>", 259, false}};
  spec.bos_id = 256;
  spec.eos_id = 257;
  return spec;
}

TEST(TokenizerTest, AddedTokensLeftmostLongestAndParseSpecial) {
  auto tok = Tokenizer::Create(ToySpec());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(tok->Encode("a<x><y>b<s>", false), ElementsAre('a', 259, 'b', 256));
  EXPECT_THAT(tok->Encode("<x><x>", false), ElementsAre(258, 258));
  // Special tokens stay text without parse_special; non-special ones match.
  EXPECT_THAT(tok->Encode("<s><x>", false, /*parse_special=*/false),
              ElementsAre('<', 's', '>', 258));
}

TEST(TokenizerTest, BosEosOnlyWithAddSpecial) {
  TokenizerSpec spec = ToySpec();
  spec.add_bos = true;
  spec.add_eos = true;
  auto tok = Tokenizer::Create(std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(tok->Encode("a", true), ElementsAre(256, 'a', 257));
  EXPECT_THAT(tok->Encode("a", false), ElementsAre('a'));
  EXPECT_THAT(tok->Encode("", true), ElementsAre(256, 257));
  EXPECT_TRUE(tok->Encode("", false).empty());
}

TEST(TokenizerTest, LstripRstripAbsorbWhitespace) {
  TokenizerSpec spec = ToySpec();
  spec.added_tokens[2].lstrip = true;
  spec.added_tokens[2].rstrip = true;
  auto tok = Tokenizer::Create(std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(tok->Encode("a \t<x>  b", false), ElementsAre('a', 258, 'b'));
}

TEST(TokenizerTest, DecodeRejectsUnknownIds) {
  auto tok = Tokenizer::Create(ToySpec());
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(*tok->Decode({'h', 'i', 256}), "hi<s>");
  absl::StatusOr<std::string> bad = tok->Decode({'a', 9999});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("ids[1]"));
  EXPECT_FALSE(tok->Decode({-1}).ok());
}

TEST(TokenizerTest, CreateValidatesTheSpec) {
  TokenizerSpec no_byte_level = ToySpec();
  no_byte_level.pre_tokenizer = {PreTokenizerStep::Digits(true)};
  EXPECT_FALSE(Tokenizer::Create(no_byte_level).ok());
  TokenizerSpec bad_bos = ToySpec();
  bad_bos.add_bos = true;
  bad_bos.bos_id = -1;
  EXPECT_FALSE(Tokenizer::Create(bad_bos).ok());
  TokenizerSpec empty_added = ToySpec();
  empty_added.added_tokens.push_back({"", 5, true});
  EXPECT_FALSE(Tokenizer::Create(empty_added).ok());
}

// A minimal valid tokenizer.json on the byte vocabulary.
json ToyJson() {
  json vocab = json::object();
  const std::vector<std::string> bytes = ByteVocab();
  for (size_t i = 0; i < bytes.size(); ++i) vocab[bytes[i]] = i;
  vocab["ab"] = 256;
  vocab["<|begin|>"] = 257;
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 257},
             {"content", "<|begin|>"},
             {"single_word", false},
             {"lstrip", false},
             {"rstrip", false},
             {"normalized", false},
             {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens",
             {{"<|begin|>", {{"id", "<|begin|>"}, {"ids", {257}}, {"tokens", {"<|begin|>"}}}}}}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"byte_fallback", false},
            {"vocab", vocab},
            {"merges", {"a b"}}}}};
}

TEST(HfJsonTest, LoadsToyTokenizerWithBos) {
  auto tok = Tokenizer::FromHfJson(ToyJson().dump());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos_id(), 257);
  EXPECT_THAT(tok->Encode("ab", true), ElementsAre(257, 256));
  json pair_merges = ToyJson();
  pair_merges["model"]["merges"] = json::array({json::array({"a", "b"})});
  auto tok2 = Tokenizer::FromHfJson(pair_merges.dump());
  ASSERT_TRUE(tok2.ok()) << tok2.status();
  EXPECT_THAT(tok2->Encode("ab", false), ElementsAre(256));
}

TEST(HfJsonTest, RejectsUnsupportedOrMalformedInput) {
  const auto expect_invalid = [](const json& j, const std::string& field) {
    auto tok = Tokenizer::FromHfJson(j.dump());
    ASSERT_FALSE(tok.ok()) << field;
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(tok.status().message(), HasSubstr(field));
  };
  json j = ToyJson();
  j["normalizer"] = {{"type", "NFC"}};
  expect_invalid(j, "normalizer");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  expect_invalid(j, "normalizer");
  // An empty Sequence (what transformers 5 saves for SmolLM2) changes nothing.
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
  absl::StatusOr<Tokenizer> empty = Tokenizer::FromHfJson(j.dump());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->Encode("ab", false),
            Tokenizer::FromHfJson(ToyJson().dump())->Encode("ab", false));
  j = ToyJson();
  j["model"]["byte_fallback"] = true;
  expect_invalid(j, "model.byte_fallback");
  j = ToyJson();
  j["model"]["type"] = "WordPiece";
  expect_invalid(j, "model.type");
  j = ToyJson();
  j["model"]["merges"] = {"a b c"};
  expect_invalid(j, "model.merges[0]");
  j = ToyJson();
  j["model"]["vocab"] = 5;
  expect_invalid(j, "model.vocab");
  j = ToyJson();
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"Regex", "\\w+"}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  expect_invalid(j, "pre_tokenizer");
  j = ToyJson();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_invalid(j, "pre_tokenizer");
  j = ToyJson();
  j["added_tokens"][0]["single_word"] = true;
  expect_invalid(j, "added_tokens[0]");
  j = ToyJson();
  j["added_tokens"][0]["id"] = "seven";
  expect_invalid(j, "tokenizer.json");
  j = ToyJson();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_invalid(j, "post_processor");

  auto not_json = Tokenizer::FromHfJson("{\"model\": ");
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = Tokenizer::FromHfJsonFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(GgufVocabTest, MapsTypesAndPreNames) {
  std::vector<std::string> tokens = ByteVocab();
  tokens.push_back("ab");
  tokens.push_back("<|im_start|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  auto tok = Tokenizer::FromGgufVocab(tokens, {"a b"}, types, "smollm", 257, -1, true);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(tok->Encode("<|im_start|>ab12", true), ElementsAre(257, 257, 256, '1', '2'));
  EXPECT_EQ(tok->Encode("<|im_start|>", false, /*parse_special=*/false).size(), 12u);
}

TEST(GgufVocabTest, RejectsBadArrays) {
  std::vector<std::string> tokens = ByteVocab();
  const std::vector<int32_t> types(tokens.size(), 1);
  const auto code = [](const absl::StatusOr<Tokenizer>& t) { return t.status().code(); };
  EXPECT_EQ(code(Tokenizer::FromGgufVocab(tokens, {}, types, "bert-wordpiece", -1, -1, false)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Tokenizer::FromGgufVocab(tokens, {}, {1, 1}, "gpt-2", -1, -1, false)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Tokenizer::FromGgufVocab(tokens, {"ab"}, types, "gpt-2", -1, -1, false)),
            absl::StatusCode::kInvalidArgument);
  std::vector<int32_t> bad_type = types;
  bad_type[3] = 9;
  EXPECT_EQ(code(Tokenizer::FromGgufVocab(tokens, {}, bad_type, "qwen2", -1, -1, false)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Tokenizer::FromGgufVocab(tokens, {}, types, "llama-bpe", 300, -1, true)),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Tokenizer::FromGgufVocab(tokens, {}, types, "llama-bpe", -1, -1, false).ok());
}

}  // namespace
}  // namespace compressd::engine
