#include "workers/engine/model/hf_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;

nlohmann::json Base() {
  return {{"model_type", "llama"},        {"architectures", {"LlamaForCausalLM"}},
          {"num_hidden_layers", 2},       {"hidden_size", 64},
          {"intermediate_size", 128},     {"num_attention_heads", 4},
          {"num_key_value_heads", 2},     {"vocab_size", 256},
          {"tie_word_embeddings", false}, {"torch_dtype", "bfloat16"}};
}

TEST(HfConfigTest, ParsesLlamaConfig) {
  absl::StatusOr<HfConfig> c = ParseHfConfig(Base().dump(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model_type, "llama");
  EXPECT_EQ(c->architectures, std::vector<std::string>{"LlamaForCausalLM"});
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 128);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->vocab_size, 256);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
}

TEST(HfConfigTest, KvHeadsDefaultToHeadsAndFamilyTypesAccepted) {
  for (const char* type : {"mistral", "qwen2", "qwen3", "smollm"}) {
    nlohmann::json j = Base();
    j.erase("num_key_value_heads");
    j["model_type"] = type;
    absl::StatusOr<HfConfig> c = ParseHfConfig(j.dump(), "config.json");
    ASSERT_TRUE(c.ok()) << type << ": " << c.status();
    EXPECT_EQ(c->num_key_value_heads, 4);
  }
}

TEST(HfConfigTest, ErrorsNameTheField) {
  struct Case {
    const char* field;
    nlohmann::json value;  // null erases the field
    const char* expected;
  };
  const Case cases[] = {
      {"model_type", "gpt2", "model_type: unsupported \"gpt2\""},
      {"model_type", nullptr, "model_type: missing"},
      {"hidden_size", nullptr, "hidden_size: missing"},
      {"hidden_size", -64, "hidden_size: must be positive"},
      {"vocab_size", "256", "vocab_size: must be an integer"},
      {"num_attention_heads", 3, "num_attention_heads: 3 does not divide hidden_size 64"},
      {"num_key_value_heads", 3, "num_key_value_heads: 3 does not divide"},
      {"tie_word_embeddings", "no", "tie_word_embeddings: must be true or false"},
      {"architectures", "Llama", "architectures: must be a list"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = Base();
    if (c.value.is_null()) {
      j.erase(c.field);
    } else {
      j[c.field] = c.value;
    }
    absl::Status st = ParseHfConfig(j.dump(), "m/config.json").status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(st.message(), HasSubstr("m/config.json: ")) << c.field;
    EXPECT_THAT(st.message(), HasSubstr(c.expected)) << c.field;
  }
}

TEST(HfConfigTest, InvalidJson) {
  absl::Status st = ParseHfConfig("{\"model_type\": ", "config.json").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("invalid JSON"));
  EXPECT_EQ(ReadHfConfig("/nonexistent/config.json").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace compressd::engine
