// Pre-tokenization against HF tokenizers' own split of the same strings
// (fixture pretokenize_cases), plus the Unicode and byte-level helpers.
#include "workers/engine/tokenizer/pre_tokenizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/engine/tokenizer/golden_fixture.h"
#include "workers/engine/tokenizer/byte_level.h"
#include "workers/engine/tokenizer/unicode_props.h"

namespace compressd::engine {
namespace {

using Step = PreTokenizerStep;

std::vector<Step> Splitter(const std::string& name) {
  const Step identity = Step::ByteLevel(false, false);
  if (name == "gpt2") return {Step::Split(SplitPattern::kGpt2), identity};
  if (name == "smollm") return {Step::Digits(true), Step::Split(SplitPattern::kGpt2), identity};
  if (name == "llama3") return {Step::Split(SplitPattern::kLlama3), identity};
  if (name == "qwen2") return {Step::Split(SplitPattern::kQwen2), identity};
  ADD_FAILURE() << "unknown splitter " << name;
  return {identity};
}

TEST(PreTokenizerTest, MatchesHfSplitsOnEdgeCases) {
  int checked = 0;
  for (const auto& c : testing::Golden()["pretokenize_cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(PreTokenizeToStrings(Splitter(c["splitter"]), text),
              c["pieces"].get<std::vector<std::string>>())
        << c["splitter"] << " on \"" << text << "\"";
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(PreTokenizerTest, Gpt2WhitespaceBeforeWordKeepsOneSpaceForTheWord) {
  const std::vector<Step> gpt2 = {Step::ByteLevel(false, true)};
  EXPECT_EQ(PreTokenizeToStrings(gpt2, "a   b"), (std::vector<std::string>{"a", "  ", " b"}));
  EXPECT_EQ(PreTokenizeToStrings(gpt2, "x\n\ny"), (std::vector<std::string>{"x", "\n", "\n", "y"}));
  EXPECT_EQ(PreTokenizeToStrings(gpt2, "end  "), (std::vector<std::string>{"end", "  "}));
}

TEST(PreTokenizerTest, Llama3GroupsDigitsByThreeAndNewlineRuns) {
  const std::vector<Step> llama3 = {Step::Split(SplitPattern::kLlama3),
                                    Step::ByteLevel(false, false)};
  EXPECT_EQ(PreTokenizeToStrings(llama3, "1234567"), (std::vector<std::string>{"123", "456", "7"}));
  EXPECT_EQ(PreTokenizeToStrings(llama3, "a \n\n b"),
            (std::vector<std::string>{"a", " \n\n", " b"}));
  EXPECT_EQ(PreTokenizeToStrings(llama3, "IT'S"), (std::vector<std::string>{"IT", "'S"}));
}

TEST(PreTokenizerTest, DigitsStepSplitsEveryDigitOrRuns) {
  EXPECT_EQ(PreTokenizeToStrings({Step::Digits(true), Step::ByteLevel(false, false)}, "ab12 3"),
            (std::vector<std::string>{"ab", "1", "2", " ", "3"}));
  EXPECT_EQ(PreTokenizeToStrings({Step::Digits(false), Step::ByteLevel(false, false)}, "ab12 3"),
            (std::vector<std::string>{"ab", "12", " ", "3"}));
}

TEST(PreTokenizerTest, PrefixSpaceIsAddedPerPiece) {
  EXPECT_EQ(PreTokenizeToStrings({Step::ByteLevel(true, true)}, "hi there"),
            (std::vector<std::string>{" hi", " there"}));
  EXPECT_EQ(PreTokenizeToStrings({Step::ByteLevel(true, true)}, " hi"),
            (std::vector<std::string>{" hi"}));
}

TEST(PreTokenizerTest, MalformedUtf8IsCutNotDropped) {
  const std::string text =
      "ab\xff\xfe"
      "cd \xc3";
  std::string joined;
  for (const auto& p : PreTokenizeToStrings({Step::ByteLevel(false, true)}, text)) joined += p;
  EXPECT_EQ(joined, text);
}

TEST(PreTokenizerTest, KnownRegexesAreRecognised) {
  for (SplitPattern p : {SplitPattern::kGpt2, SplitPattern::kLlama3, SplitPattern::kQwen2}) {
    EXPECT_EQ(SplitPatternFromRegex(SplitPatternRegex(p)), p) << SplitPatternName(p);
  }
  EXPECT_FALSE(SplitPatternFromRegex("\\w+").has_value());
}

TEST(UnicodePropsTest, Classes) {
  EXPECT_EQ(CharClassOf('a'), kClassLetter);
  EXPECT_EQ(CharClassOf('7'), kClassNumber | kClassNumeric);
  EXPECT_EQ(CharClassOf(' '), kClassWhitespace);
  EXPECT_EQ(CharClassOf('!'), 0);
  EXPECT_EQ(CharClassOf(0x00A0), kClassWhitespace);              // no-break space
  EXPECT_EQ(CharClassOf(0x200B), 0);                             // zero-width space is not \s
  EXPECT_EQ(CharClassOf(0x4E2D), kClassLetter);                  // CJK
  EXPECT_EQ(CharClassOf(0x00BD), kClassNumber | kClassNumeric);  // one half (No)
  EXPECT_EQ(CharClassOf(0x1F600), 0);                            // emoji
  EXPECT_EQ(CharClassOf(0x110000), 0);
}

TEST(UnicodePropsTest, DecodeRejectsMalformedSequences) {
  const auto decode = [](const std::string& s) { return DecodeUtf8(s, 0); };
  EXPECT_EQ(decode("\xe2\x82\xac").cp, 0x20AC);  // euro sign
  EXPECT_EQ(decode("\xe2\x82\xac").len, 3);
  EXPECT_EQ(decode("\xf0\x9f\x98\x80").cp, 0x1F600);
  for (const std::string bad :
       {"\xc0\x80", "\xed\xa0\x80", "\xe2\x82", "\x80", "\xf4\x90\x80\x80", "\xe2\x28\xa1"}) {
    const Utf8Char c = decode(bad);
    EXPECT_EQ(c.cp, kInvalidCodepoint);
    EXPECT_EQ(c.len, 1);
  }
}

TEST(ByteLevelTest, Gpt2AlphabetRoundTrips) {
  EXPECT_EQ(BytesToByteLevel(" "), "\xc4\xa0");   // Ġ
  EXPECT_EQ(BytesToByteLevel("\n"), "\xc4\x8a");  // Ċ
  EXPECT_EQ(BytesToByteLevel("Az~"), "Az~");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string back;
  ASSERT_TRUE(ByteLevelToBytes(BytesToByteLevel(all), &back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(ByteLevelToBytes("a b", &back));  // a raw space is not in the alphabet
  EXPECT_FALSE(ByteLevelToBytes("\xe4\xb8\xad", &back));
}

}  // namespace
}  // namespace compressd::engine
