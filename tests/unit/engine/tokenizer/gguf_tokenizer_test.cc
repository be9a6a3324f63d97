// LoadTokenizerFromGguf: synthetic GGUF files (GgufWriter) for the metadata
// handling, and the real SmolLM2 GGUF against the HF golden ids.
#include "workers/engine/tokenizer/gguf_tokenizer.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/gguf_writer.h"
#include "tests/unit/engine/tokenizer/golden_fixture.h"
#include "workers/engine/tokenizer/byte_level.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Tokenizer keys over a byte vocabulary plus "ab" (256) and "<|bos|>" (257;
// `token_257` replaces it).
testing::GgufWriter TinyTokenizerGguf(const std::string& model = "gpt2",
                                      const std::string& token_257 = "<|bos|>") {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(BytesToByteLevel(std::string(1, char(b))));
  tokens.push_back("ab");
  tokens.push_back(token_257);
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  testing::GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddString("tokenizer.ggml.model", model);
  w.AddString("tokenizer.ggml.pre", "llama-bpe");
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddStringArray("tokenizer.ggml.merges", {"a b"});
  w.AddI32Array("tokenizer.ggml.token_type", types);
  w.AddU32("tokenizer.ggml.bos_token_id", 257);
  return w;
}

TEST(GgufTokenizerTest, ReadsTokenizerKeys) {
  const std::string path = TinyTokenizerGguf().WriteTemp("tiny_tokenizer.gguf");
  auto tok = LoadTokenizerFromGguf(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 258);
  EXPECT_EQ(tok->bos_id(), 257);
  EXPECT_EQ(tok->eos_id(), -1);
  EXPECT_TRUE(tok->add_bos());  // llama-bpe default, no add_bos_token key
  EXPECT_THAT(tok->Encode("ab<|bos|>", true), ElementsAre(257, 256, 257));
}

TEST(GgufTokenizerTest, HfFilesCarryTheSameTokenizer) {
  testing::GgufWriter w = TinyTokenizerGguf();
  w.AddU32("llama.context_length", 2048);
  w.AddString("tokenizer.chat_template", "{{ messages }}");
  const std::string path = w.WriteTemp("tiny_tokenizer_hf.gguf");
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto files = HfTokenizerFilesFromGguf(**file);
  ASSERT_TRUE(files.ok()) << files.status();
  auto from_json = Tokenizer::FromHfJson(files->tokenizer_json);
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  auto from_gguf = LoadTokenizerFromGguf(**file);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  for (const std::string text : {"ab<|bos|>", "aab b", "\xff\x01 ba"}) {
    EXPECT_EQ(from_json->Encode(text, true), from_gguf->Encode(text, true)) << text;
  }
  EXPECT_THAT(from_json->Encode("ab", true), ElementsAre(257, 256));  // BOS from the template
  const json config = json::parse(files->tokenizer_config_json);
  EXPECT_EQ(config["bos_token"], "<|bos|>");
  EXPECT_TRUE(config["eos_token"].is_null());
  EXPECT_EQ(config["add_bos_token"], true);
  EXPECT_EQ(config["model_max_length"], 2048);
  EXPECT_EQ(config["chat_template"], "{{ messages }}");
  EXPECT_EQ(config["tokenizer_class"], "PreTrainedTokenizerFast");
}

TEST(GgufTokenizerTest, AddEosKeyAppendsEosInBothForms) {
  testing::GgufWriter w = TinyTokenizerGguf();
  w.AddU32("tokenizer.ggml.eos_token_id", 256);
  w.AddBool("tokenizer.ggml.add_eos_token", true);
  auto file = GgufFile::Open(w.WriteTemp("tiny_tokenizer_eos.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = LoadTokenizerFromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(tok->Encode("a", true), ElementsAre(257, 'a' - 0, 256));
  auto files = HfTokenizerFilesFromGguf(**file);
  ASSERT_TRUE(files.ok()) << files.status();
  auto from_json = Tokenizer::FromHfJson(files->tokenizer_json);
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  EXPECT_EQ(from_json->Encode("a", true), tok->Encode("a", true));
  EXPECT_EQ(json::parse(files->tokenizer_config_json)["add_eos_token"], true);
}

TEST(GgufTokenizerTest, HfFilesRejectATokenStringUsedTwice) {
  testing::GgufWriter w = TinyTokenizerGguf("gpt2", /*token_257=*/"ab");
  auto file = GgufFile::Open(w.WriteTemp("tiny_tokenizer_dup.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto files = HfTokenizerFilesFromGguf(**file);
  EXPECT_EQ(files.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(files.status().message(), HasSubstr("token 257 \"ab\" is also token 256"));
}

TEST(GgufTokenizerTest, AddBosKeyOverridesDefault) {
  testing::GgufWriter w = TinyTokenizerGguf();
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  auto tok = LoadTokenizerFromGguf(w.WriteTemp("tiny_tokenizer_nobos.gguf"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE(tok->add_bos());
}

TEST(GgufTokenizerTest, RejectsOtherModelsAndMissingKeys) {
  auto spm = LoadTokenizerFromGguf(TinyTokenizerGguf("llama").WriteTemp("spm.gguf"));
  ASSERT_FALSE(spm.ok());
  EXPECT_EQ(spm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spm.status().message(), HasSubstr("tokenizer.ggml.model"));

  testing::GgufWriter no_tokens;
  no_tokens.AddString("tokenizer.ggml.model", "gpt2");
  no_tokens.AddString("tokenizer.ggml.pre", "gpt-2");
  auto missing = LoadTokenizerFromGguf(no_tokens.WriteTemp("no_tokens.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("tokenizer.ggml.tokens"));

  auto no_file = LoadTokenizerFromGguf(std::string("/nonexistent/model.gguf"));
  EXPECT_FALSE(no_file.ok());
}

// The real model's embedded tokenizer reproduces HF's ids on the shared texts.
TEST(GgufTokenizerRealModelTest, MatchesHfGoldenIds) {
  const char* env = std::getenv("COMPRESSD_REAL_MODEL");
  ASSERT_TRUE(env != nullptr && *env != '\0')
      << "COMPRESSD_REAL_MODEL is unset: run scripts/fetch-model.sh and configure with "
         "-DCOMPRESSD_REAL_MODEL=<its path>";
  ASSERT_TRUE(std::ifstream(env).good())
      << "COMPRESSD_REAL_MODEL=" << env << " does not exist: run scripts/fetch-model.sh";
  auto tok = LoadTokenizerFromGguf(std::string(env));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 49152);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_FALSE(tok->add_bos());
  for (const json& slice : testing::Golden()["slices"]) {
    absl::StatusOr<std::string> text = testing::ReadSlice(slice);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(tok->Encode(*text, false), testing::Ids(slice["ids"]["smollm"]))
        << slice["file"] << " at byte " << slice["offset"];
  }
  for (const json& c : testing::Golden()["edge_cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok->Encode(text, false), testing::Ids(c["ids"]["smollm"])) << "\"" << text << "\"";
  }
}

}  // namespace
}  // namespace compressd::engine
