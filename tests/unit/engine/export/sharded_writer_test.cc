// ShardedSafetensorsWriter: tensors written in any order land where a
// reader finds them; one shard is byte-identical to WriteSafetensors; past
// the shard size the output is transformers' sharded layout (named shards
// and an index), which HfModel reads back; incomplete or wrong writes are
// errors, and nothing becomes visible before Commit.
#include "workers/engine/export/sharded_writer.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/hf_model.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Bytes(int n, char seed) {
  std::string s(static_cast<size_t>(n) * 4, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ShardedWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("sw_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // embed [4, 8], block tensors a [8, 8], b [8], norm [8]: 448 bytes.
  std::vector<TensorSpec> Specs() const {
    return {{"model.embed_tokens.weight", DType::kF32, {4, 8}},
            {"model.layers.0.a", DType::kF32, {8, 8}},
            {"model.layers.0.b", DType::kF32, {8}},
            {"model.norm.weight", DType::kF32, {8}}};
  }
  // Writes every tensor of Specs() (the embedding in two parts, last).
  void WriteAll(ShardedSafetensorsWriter& w) {
    ASSERT_TRUE(w.Write("model.layers.0.b", Bytes(8, 2)).ok());
    ASSERT_TRUE(w.Write("model.layers.0.a", Bytes(64, 1)).ok());
    ASSERT_TRUE(w.Write("model.norm.weight", Bytes(8, 3)).ok());
    const std::string embed = Bytes(32, 4);
    ASSERT_TRUE(w.WritePart("model.embed_tokens.weight", 0, embed.substr(0, 48)).ok());
    ASSERT_TRUE(w.WritePart("model.embed_tokens.weight", 48, embed.substr(48)).ok());
  }

  fs::path dir_;
};

TEST_F(ShardedWriterTest, OneShardIsWhatWriteSafetensorsWrites) {
  auto w = ShardedSafetensorsWriter::Create(dir_.string(), Specs(), {{"format", "pt"}});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->shards(), 1);
  WriteAll(**w);
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));  // nothing visible before Commit
  ASSERT_TRUE((*w)->Commit().ok());

  const std::string a = Bytes(64, 1), b = Bytes(8, 2), n = Bytes(8, 3), e = Bytes(32, 4);
  std::vector<TensorToWrite> tensors = {{"model.layers.0.a", DType::kF32, {8, 8}, a},
                                        {"model.norm.weight", DType::kF32, {8}, n},
                                        {"model.embed_tokens.weight", DType::kF32, {4, 8}, e},
                                        {"model.layers.0.b", DType::kF32, {8}, b}};
  ASSERT_TRUE(
      WriteSafetensors((dir_ / "reference.safetensors").string(), tensors, {{"format", "pt"}})
          .ok());
  EXPECT_EQ(ReadAll(dir_ / "model.safetensors"), ReadAll(dir_ / "reference.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / kWeightsIndexFile));
}

TEST_F(ShardedWriterTest, PastTheShardSizeWritesNamedShardsAndAnIndex) {
  // 320 bytes a shard: embed (128) + a (256) does not fit, so a starts
  // shard 2, which b (32) and the norm (32) fill exactly.
  auto w = ShardedSafetensorsWriter::Create(dir_.string(), Specs(), {{"format", "pt"}}, 320);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->shards(), 2);
  WriteAll(**w);
  ASSERT_TRUE((*w)->Commit().ok());
  EXPECT_TRUE(fs::exists(dir_ / "model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "model-00002-of-00002.safetensors"));
  const nlohmann::json index = nlohmann::json::parse(ReadAll(dir_ / kWeightsIndexFile));
  EXPECT_EQ(index["metadata"]["total_size"], 448);
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["model.layers.0.a"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["model.norm.weight"], "model-00002-of-00002.safetensors");

  std::ofstream(dir_ / "config.json")
      << R"({"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 8, )"
         R"("intermediate_size": 8, "num_attention_heads": 1, "vocab_size": 4})";
  auto model = HfModel::Open(dir_.string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->layout(), HfModel::Layout::kIndexed);
  for (const auto& [name, bytes] :
       std::vector<std::pair<std::string, std::string>>{{"model.embed_tokens.weight", Bytes(32, 4)},
                                                        {"model.layers.0.a", Bytes(64, 1)},
                                                        {"model.layers.0.b", Bytes(8, 2)},
                                                        {"model.norm.weight", Bytes(8, 3)}}) {
    const HfModel::TensorRef ref = (*model)->Find(name);
    ASSERT_NE(ref.info, nullptr) << name;
    EXPECT_EQ(std::string(ref.shard->file->Bytes(*ref.info)), bytes) << name;
  }
}

TEST_F(ShardedWriterTest, WrongOrMissingWritesAreErrors) {
  auto w = ShardedSafetensorsWriter::Create(dir_.string(), Specs(), {});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT((*w)->Write("model.unknown", Bytes(1, 0)).message(), HasSubstr("not part"));
  EXPECT_THAT((*w)->Write("model.layers.0.b", Bytes(7, 0)).message(), HasSubstr("expected 32"));
  ASSERT_TRUE((*w)->Write("model.layers.0.b", Bytes(8, 0)).ok());
  EXPECT_FALSE((*w)->Write("model.layers.0.b", Bytes(8, 0)).ok());                  // twice
  EXPECT_FALSE((*w)->WritePart("model.embed_tokens.weight", 8, Bytes(2, 0)).ok());  // a gap
  const absl::Status commit = (*w)->Commit();
  EXPECT_EQ(commit.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(commit.message(), HasSubstr("0 of 128 bytes"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors"));
}

}  // namespace
}  // namespace compressd::engine
