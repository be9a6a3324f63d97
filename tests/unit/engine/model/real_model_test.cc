// The real model (SmolLM2-135M-Instruct Q4_1 GGUF, $COMPRESSD_REAL_MODEL):
// its structure, gguf-py's dequantization of some of its rows, and
// transformers' HF view of it (tests/golden/gguf_model_fixtures.py). Fails
// (does not skip) without the model: run scripts/fetch-model.sh.
#include <cmath>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/fixture_util.h"
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine {
namespace {

using testing::RealModelPathOrFail;

// Loaded once for the suite (loading dequantizes ~135M weights).
class RealModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = testing::RealModelPath();
    if (path.empty()) return;  // each test fails in SetUp (a suite-level failure would skip them)
    absl::StatusOr<LlamaModel> m = LoadModel(path);
    if (m.ok())
      model_ = new LlamaModel(std::move(*m));
    else
      load_error_ = new absl::Status(m.status());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete load_error_;
    model_ = nullptr;
    load_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(RealModelPathOrFail().empty());
    ASSERT_NE(model_, nullptr) << load_error_->ToString();
  }
  static const Tensor& ByHfName(const std::string& name);

  static LlamaModel* model_;
  static absl::Status* load_error_;
};
LlamaModel* RealModelTest::model_ = nullptr;
absl::Status* RealModelTest::load_error_ = nullptr;

const Tensor& RealModelTest::ByHfName(const std::string& name) {
  if (name == "model.embed_tokens.weight") return model_->embed_tokens;
  if (name == "model.norm.weight") return model_->final_norm;
  if (name == "lm_head.weight") return model_->lm_head;
  // model.layers.N.<suffix>
  std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 3));
  int layer = -1;
  EXPECT_TRUE(parts.size() == 4 && absl::SimpleAtoi(parts[2], &layer)) << name;
  const BlockWeights& b = model_->blocks.at(layer);
  const std::map<std::string, const Tensor*> slots = {
      {"self_attn.q_proj.weight", &b.q_proj},
      {"self_attn.k_proj.weight", &b.k_proj},
      {"self_attn.v_proj.weight", &b.v_proj},
      {"self_attn.o_proj.weight", &b.o_proj},
      {"mlp.down_proj.weight", &b.down_proj},
      {"mlp.gate_proj.weight", &b.gate_proj},
      {"mlp.up_proj.weight", &b.up_proj},
      {"input_layernorm.weight", &b.attn_norm},
      {"post_attention_layernorm.weight", &b.mlp_norm}};
  return *slots.at(parts[3]);
}

TEST_F(RealModelTest, ConfigMatchesTheModelCard) {
  const LlamaConfig& c = model_->config;
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.hidden, 576);
  EXPECT_EQ(c.intermediate, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab, 49152);
  EXPECT_EQ(c.max_position, 8192);
  EXPECT_EQ(c.rope_theta, 100000.0f);
  EXPECT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(model_->blocks.size(), 30u);
  EXPECT_EQ(model_->lm_head.data, model_->embed_tokens.data);
}

TEST_F(RealModelTest, FileStructure) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(RealModelPathOrFail());
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.tensors().size(), 272u);
  std::map<GgmlType, int> types;
  for (const GgufTensorInfo& t : g.tensors()) ++types[t.type];
  EXPECT_EQ(types[GgmlType::kQ4_1], 210);
  EXPECT_EQ(types[GgmlType::kF32], 61);
  EXPECT_EQ(types[GgmlType::kQ8_0], 1);
  EXPECT_EQ(g.FindTensor("token_embd.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(*g.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*g.GetString("tokenizer.ggml.pre"), "smollm");
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.tokens")->size(), 49152u);
  EXPECT_EQ(g.GetStringArray("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(g.GetIntArray("tokenizer.ggml.token_type")->size(), 49152u);
  EXPECT_FALSE(*g.GetBool("tokenizer.ggml.add_bos_token"));
}

// Rows of real tensors (GGUF order) dequantized by our parser + kernels equal
// gguf-py's GGUFReader + dequantize bit for bit.
TEST_F(RealModelTest, DequantizedRowsMatchGgufPy) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(RealModelPathOrFail());
  ASSERT_TRUE(f.ok()) << f.status();
  int checked = 0;
  for (const testing::DequantRecord& r : testing::ReadDequantFixture()) {
    if (r.name.rfind("model:", 0) != 0) continue;
    std::vector<std::string> parts = absl::StrSplit(r.name, ':');  // model:<tensor>:<first>:<count>
    ASSERT_EQ(parts.size(), 4u) << r.name;
    const GgufTensorInfo* t = (*f)->FindTensor(parts[1]);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(static_cast<uint32_t>(t->type), r.ggml_type) << r.name;
    int64_t first = 0, count = 0;
    ASSERT_TRUE(absl::SimpleAtoi(parts[2], &first) && absl::SimpleAtoi(parts[3], &count));
    ASSERT_LE(first + count, t->n_rows());
    ASSERT_EQ(count * t->row_length(), r.n);
    const uint64_t row_bytes = *GgmlRowBytes(t->type, t->row_length());
    std::vector<float> got(r.n);
    ASSERT_TRUE(
        Dequantize(t->type, (*f)->TensorData(*t) + first * row_bytes, r.n, got.data()).ok());
    for (int64_t i = 0; i < r.n; ++i)
      ASSERT_EQ(got[i], r.expected[i]) << r.name << " element " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

// Every checked tensor equals transformers' float32 HF model loaded from the
// same GGUF: sample rows exactly, whole-tensor checksums to 1e-9 relative.
TEST_F(RealModelTest, MatchesTransformers) {
  const nlohmann::json golden = nlohmann::json::parse(
      testing::ReadFileOrFail(testing::FixturePath("gguf_model_smollm2.json")));
  const nlohmann::json& cfg = golden.at("config");
  EXPECT_EQ(model_->config.n_layers, cfg.at("num_hidden_layers").get<int>());
  EXPECT_EQ(model_->config.n_kv_heads, cfg.at("num_key_value_heads").get<int>());
  EXPECT_EQ(model_->config.rms_norm_eps, cfg.at("rms_norm_eps").get<float>());
  EXPECT_EQ(model_->config.rope_theta, cfg.at("rope_theta").get<float>());
  EXPECT_EQ(model_->config.tie_word_embeddings, cfg.at("tie_word_embeddings").get<bool>());
  int checked = 0;
  for (const nlohmann::json& g : golden.at("tensors")) {
    const std::string name = g.at("name");
    const Tensor& t = ByHfName(name);
    ASSERT_EQ(t.shape, g.at("shape").get<std::vector<int64_t>>()) << name;
    const int64_t cols = t.shape.size() == 1 ? t.shape[0] : t.shape[1];
    for (const auto& [row, values] : g.at("rows").items()) {
      const int64_t r = std::stoll(row);
      ASSERT_EQ(values.size(), static_cast<size_t>(cols)) << name;
      for (int64_t j = 0; j < cols; ++j) {
        ASSERT_EQ(t.data[r * cols + j], values[j].get<float>())
            << name << " row " << r << " col " << j;
      }
    }
    double sum = 0, weighted = 0;
    const int64_t rows = t.numel() / cols;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = t.data + r * cols;
      double plain = 0, by_col = 0;
      for (int64_t j = 0; j < cols; ++j) {
        plain += row[j];
        by_col += row[j] * static_cast<double>(j % 5 + 1);
      }
      sum += plain;
      weighted += by_col * static_cast<double>(r % 7 + 1);
    }
    const double want_sum = g.at("sum"), want_weighted = g.at("weighted_sum");
    EXPECT_NEAR(sum, want_sum, 1e-9 * std::max(1.0, std::fabs(want_sum))) << name;
    EXPECT_NEAR(weighted, want_weighted, 1e-9 * std::max(1.0, std::fabs(want_weighted))) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 19);
}

}  // namespace
}  // namespace compressd::engine
