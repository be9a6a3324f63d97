// Golden test: token ids equal HF tokenizers' on slices of the shared texts,
// on hand-written edge cases and on the whole of persuasion.txt, for both
// constructors (tokenizer.json and GGUF arrays) and four pre-tokenizer
// variants. Tolerance: none, ids must be identical.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/tokenizer/golden_fixture.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
using testing::Golden;
using testing::Ids;

// "" when equal, else where and how they first differ.
std::string Mismatch(const Tokenizer& tok, const std::vector<int32_t>& got,
                     const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "";
  const auto show = [&](const std::vector<int32_t>& ids) {
    std::string s;
    for (size_t k = i; k < ids.size() && k < i + 4; ++k) {
      absl::StrAppend(&s, ids[k], "'", std::string(tok.TokenBytes(ids[k])), "' ");
    }
    return s;
  };
  return absl::StrCat("first difference at token ", i, " (got ", got.size(), " ids, want ",
                      want.size(), "): got ", show(got), "want ", show(want));
}

std::string IdsSha256(const std::vector<int32_t>& ids) {
  // The fixture hashes int32 little-endian; this machine is little-endian.
  return Sha256Hex(std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * 4));
}

class GoldenVariantTest : public ::testing::TestWithParam<std::string> {};

void CheckSlices(const Tokenizer* tok, const std::string& variant) {
  ASSERT_NE(tok, nullptr);
  for (const json& slice : Golden()["slices"]) {
    absl::StatusOr<std::string> text = testing::ReadSlice(slice);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(Mismatch(*tok, tok->Encode(*text, false), Ids(slice["ids"][variant])), "")
        << variant << " on " << slice["file"] << " at byte " << slice["offset"];
  }
}

TEST_P(GoldenVariantTest, SharedTextSlicesFromHfJson) {
  CheckSlices(testing::HfTokenizer(GetParam()), GetParam());
}

TEST_P(GoldenVariantTest, SharedTextSlicesFromGgufVocab) {
  CheckSlices(testing::GgufTokenizer(GetParam()), GetParam());
}

// GGUF arrays -> tokenizer.json (ToHfTokenizerJson) -> FromHfJson: the
// tokenizer an HF export of a GGUF model carries gives HF's ids.
TEST_P(GoldenVariantTest, SharedTextSlicesFromWrittenHfJson) {
  CheckSlices(testing::WrittenHfTokenizer(GetParam()), GetParam());
}

// tokenizer.json -> GGUF arrays (GgufVocabFromSpec, with the tokenizer.ggml.pre
// name llama.cpp maps to the same pre-tokenizer) -> FromGgufVocab: the
// tokenizer a GGUF export of an HF model carries gives HF's ids.
TEST_P(GoldenVariantTest, SharedTextSlicesFromConvertedGgufVocab) {
  CheckSlices(testing::ConvertedGgufTokenizer(GetParam()), GetParam());
}

TEST_P(GoldenVariantTest, EdgeCasesFromEveryConstructor) {
  const std::string variant = GetParam();
  for (const Tokenizer* tok : {testing::HfTokenizer(variant), testing::GgufTokenizer(variant),
                               testing::WrittenHfTokenizer(variant),
                               testing::ConvertedGgufTokenizer(variant)}) {
    ASSERT_NE(tok, nullptr);
    for (const json& c : Golden()["edge_cases"]) {
      const std::string text = c["text"];
      EXPECT_EQ(Mismatch(*tok, tok->Encode(text, false), Ids(c["ids"][variant])), "")
          << variant << " on \"" << text << "\"";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenVariantTest,
                         ::testing::Values("smollm", "gpt2", "llama3", "qwen2"));

TEST(TokenizerGoldenTest, PrefixSpaceAndTemplateVariants) {
  const Tokenizer* prefix = testing::HfTokenizer("gpt2_prefix");
  const Tokenizer* templ = testing::HfTokenizer("smollm_template");
  ASSERT_NE(prefix, nullptr);
  ASSERT_NE(templ, nullptr);
  EXPECT_TRUE(templ->add_bos());
  EXPECT_TRUE(templ->add_eos());
  for (const json& c : Golden()["edge_cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(Mismatch(*prefix, prefix->Encode(text, false), Ids(c["ids"]["gpt2_prefix"])), "")
        << "\"" << text << "\"";
    EXPECT_EQ(Mismatch(*templ, templ->Encode(text, false), Ids(c["ids"]["smollm_template"])), "")
        << "\"" << text << "\"";
    EXPECT_EQ(Mismatch(*templ, templ->Encode(text, true), Ids(c["ids"]["smollm_template+special"])),
              "")
        << "\"" << text << "\"";
  }
}

// The GGUF form of a tokenizer.json: padded to the model's vocabulary with
// unused "[PAD<id>]" tokens, special added tokens as control tokens, BOS/EOS
// as the post-processor adds them; a pre-tokenizer llama.cpp has no name for
// (a prefix space) is refused rather than mapped to a near one.
TEST(TokenizerGoldenTest, ConversionToGgufPadsTypesAndRefusesUnknownPreTokenizers) {
  absl::StatusOr<TokenizerSpec> spec = Tokenizer::SpecFromHfJson(testing::VariantJson("smollm_template"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  const auto n = static_cast<int32_t>(spec->vocab.size());
  absl::StatusOr<GgufVocab> v = Tokenizer::GgufVocabFromSpec(*spec, n + 3);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->pre, "smollm");
  ASSERT_EQ(v->tokens.size(), static_cast<size_t>(n + 3));
  EXPECT_EQ(v->tokens[n + 2], absl::StrCat("[PAD", n + 2, "]"));
  EXPECT_EQ(v->token_types[n + 2], 5);
  EXPECT_TRUE(v->add_bos && v->add_eos);
  ASSERT_FALSE(spec->added_tokens.empty());
  for (const AddedToken& t : spec->added_tokens) {
    EXPECT_EQ(v->token_types[t.id], t.special ? 3 : 4) << t.content;
  }
  EXPECT_EQ(v->merges.size(), spec->merges.size());
  EXPECT_EQ(Tokenizer::GgufVocabFromSpec(*spec, n - 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<TokenizerSpec> prefix = Tokenizer::SpecFromHfJson(testing::VariantJson("gpt2_prefix"));
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(Tokenizer::GgufVocabFromSpec(*prefix, n).status().code(),
            absl::StatusCode::kUnimplemented);
}

// calib/eval protocols tokenize whole files: check one end to end.
TEST(TokenizerGoldenTest, WholePersuasionMatchesHf) {
  const json& full = Golden()["full_texts"][0];
  ASSERT_EQ(full["file"], "text/austen/persuasion.txt");
  absl::StatusOr<std::string> text = testing::ReadSharedText(full["file"]);
  ASSERT_TRUE(text.ok()) << text.status();
  const Tokenizer* tok = testing::GgufTokenizer(full["variant"]);
  ASSERT_NE(tok, nullptr);
  const std::vector<int32_t> ids = tok->Encode(*text, false);
  EXPECT_EQ(ids.size(), full["count"].get<size_t>());
  EXPECT_EQ(IdsSha256(ids), full["ids_sha256"].get<std::string>());
  absl::StatusOr<std::string> decoded = tok->Decode(ids);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(*decoded == *text) << "decode(encode(persuasion)) differs from the text";
}

TEST(TokenizerGoldenTest, DecodeInvertsEncodeOnEdgeCases) {
  const Tokenizer* tok = testing::GgufTokenizer("smollm");
  ASSERT_NE(tok, nullptr);
  for (const json& c : Golden()["edge_cases"]) {
    const std::string text = c["text"];
    absl::StatusOr<std::string> decoded = tok->Decode(tok->Encode(text, false));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, text);
  }
}

TEST(TokenizerGoldenTest, GgufMetadataOfTheRealModel) {
  const json& gguf = Golden()["gguf"];
  const Tokenizer* tok = testing::GgufTokenizer("smollm");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), gguf["tokens"].get<int32_t>());
  EXPECT_EQ(testing::BaseGgufArrays().merges.size(), gguf["merges"].get<size_t>());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->Encode("<|im_start|>", true), std::vector<int32_t>{1});
}

}  // namespace
}  // namespace compressd::engine
