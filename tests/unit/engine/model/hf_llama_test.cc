// HF safetensors directory -> LlamaModel (and LoadModel's dispatch): dtypes,
// shards, config variants (Llama 3 rope scaling, Mistral, Qwen2 biases,
// tied/untied, GQA), malformed checkpoints, and GGUF/HF agreement.
#include "workers/engine/model/gguf/hf_llama.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/hf_testing.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine {
namespace {

using namespace hf_testing;  // NOLINT: the checkpoint-directory helpers
using ::testing::AllOf;
using testing::BuildTinyLlama;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(HfLlamaTest, LoadsSingleFileF32ZeroCopy) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  const TinyLlama tiny = BuildTinyLlama(spec);
  const std::string dir = WriteHfDir("hf_single", tiny, HfDir(ConfigFor(spec)));
  absl::StatusOr<LlamaModel> m = LoadModel(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectModelMatches(*m, tiny, spec);
  const LlamaConfig& c = m->config;
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.max_position, 256);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_FALSE(c.attention_bias);
  // F32 points into the mapping: every tensor shares one owner (the opened
  // checkpoint) instead of owning a buffer.
  EXPECT_EQ(m->blocks[0].q_proj.owner, m->blocks[1].v_proj.owner);
  EXPECT_EQ(m->blocks[0].q_proj.owner, m->embed_tokens.owner);
}

TEST(HfLlamaTest, LoadsShardedBf16AndF16) {
  TinyLlamaSpec spec;
  spec.tied = false;
  const TinyLlama tiny = BuildTinyLlama(spec);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    HfDir d(ConfigFor(spec), dtype, 3);
    const std::string dir = WriteHfDir(absl::StrCat("hf_sharded_", DTypeName(dtype)), tiny, d);
    ASSERT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
    absl::StatusOr<LlamaModel> m = LoadModel(dir);
    ASSERT_TRUE(m.ok()) << m.status();
    ExpectModelMatches(*m, tiny, spec);  // q/64 values are exact in both dtypes
  }
}

TEST(HfLlamaTest, Qwen2HasBiasesAndMistralGqa) {
  TinyLlamaSpec spec;
  spec.attention_bias = true;
  spec.n_heads = 8;
  spec.n_kv_heads = 2;
  const TinyLlama tiny = BuildTinyLlama(spec);
  json qwen = ConfigFor(spec, "qwen2");
  qwen["rope_theta"] = 1000000.0;
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_qwen2", tiny, HfDir(qwen)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->config.attention_bias);
  EXPECT_EQ(m->config.rope_theta, 1e6f);
  ExpectModelMatches(*m, tiny, spec);
  // The same weights as Mistral (no biases): the bias tensors are unmapped.
  absl::Status s =
      LoadError(WriteHfDir("hf_mistral_bias", tiny, HfDir(ConfigFor(spec, "mistral"))));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("self_attn.k_proj.bias\" (data at offset"));
  TinyLlamaSpec plain = spec;
  plain.attention_bias = false;
  const TinyLlama tiny_plain = BuildTinyLlama(plain);
  m = LoadModel(WriteHfDir("hf_mistral", tiny_plain, HfDir(ConfigFor(plain, "mistral"))));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.n_kv_heads, 2);
  ExpectModelMatches(*m, tiny_plain, plain);
}

TEST(HfLlamaTest, Qwen3HasPerHeadQkNormsWhichOtherFamiliesRefuse) {
  TinyLlamaSpec spec;
  spec.qk_norm = true;
  const TinyLlama tiny = BuildTinyLlama(spec);
  absl::StatusOr<LlamaModel> m =
      LoadModel(WriteHfDir("hf_qwen3", tiny, HfDir(ConfigFor(spec, "qwen3"))));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->config.qk_norm);
  EXPECT_FALSE(m->config.attention_bias);
  ExpectModelMatches(*m, tiny, spec);
  ASSERT_EQ(m->blocks[1].k_norm.shape, (std::vector<int64_t>{16}));
  // The same weights as Llama: the norms are unmapped, not silently dropped.
  absl::Status s = LoadError(WriteHfDir("hf_llama_qk", tiny, HfDir(ConfigFor(spec, "llama"))));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("_norm.weight\" (data at offset"));
  // A Qwen3 checkpoint without them names the first missing one.
  HfDir missing(ConfigFor(spec, "qwen3"));
  missing.drop = "model.layers.0.self_attn.k_norm.weight";
  s = LoadError(WriteHfDir("hf_qwen3_missing", tiny, missing));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.self_attn.k_norm.weight"));
}

TEST(HfLlamaTest, MistralKeepsItsSlidingWindowAndPerLayerWindowsAreRefused) {
  TinyLlamaSpec spec;
  const TinyLlama tiny = BuildTinyLlama(spec);
  json mistral = ConfigFor(spec, "mistral");
  mistral["sliding_window"] = 4096;
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_mistral_window", tiny, HfDir(mistral)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.sliding_window, 4096);
  mistral["sliding_window"] = nullptr;  // Mistral v0.2+: full attention
  m = LoadModel(WriteHfDir("hf_mistral_full", tiny, HfDir(mistral)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.sliding_window, 0);
  json qwen = ConfigFor(spec, "qwen3");
  qwen["use_sliding_window"] = true;
  absl::Status s = LoadError(WriteHfDir("hf_qwen3_window", tiny, HfDir(qwen)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("use_sliding_window"));
}

TEST(HfLlamaTest, ReadsLlama3RopeScalingBothSpellings) {
  TinyLlamaSpec spec;
  const TinyLlama tiny = BuildTinyLlama(spec);
  json c = ConfigFor(spec);
  c["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  c["eos_token_id"] = {128001, 128008};
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_llama3", tiny, HfDir(c)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.rope_scaling.type, "llama3");
  EXPECT_EQ(m->config.rope_scaling.factor, 32.0f);
  EXPECT_EQ(m->config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(m->config.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(m->config.eos_token_id, 128001);
  // transformers 5 writes rope_parameters (with rope_theta inside).
  c.erase("rope_scaling");
  c.erase("rope_theta");
  c["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0}};
  m = LoadModel(WriteHfDir("hf_llama3_v5", tiny, HfDir(c)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.rope_theta, 500000.0f);
  EXPECT_EQ(m->config.rope_scaling.factor, 8.0f);
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  absl::Status s = LoadError(WriteHfDir("hf_yarn", tiny, HfDir(c)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("config.json"), HasSubstr("rope_parameters"), HasSubstr("yarn")));
}

TEST(HfLlamaTest, RejectsMalformedCheckpoints) {
  TinyLlamaSpec spec;
  spec.tied = false;
  const TinyLlama tiny = BuildTinyLlama(spec);
  absl::Status s =
      LoadError(WriteHfDir("hf_no_head", tiny, WithDrop(HfDir(ConfigFor(spec)), "lm_head.weight")));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor \"lm_head.weight\" is missing"));
  s = LoadError(WriteHfDir("hf_extra", tiny,
                           WithExtra(HfDir(ConfigFor(spec)), "model.layers.0.mlp.gate_proj.bias")));
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("model.safetensors: tensor \"model.layers.0.mlp.gate_proj.bias\""),
                    HasSubstr("not part of a llama model")));
  json wrong = ConfigFor(spec);
  wrong["intermediate_size"] = 128;
  s = LoadError(WriteHfDir("hf_shape", tiny, HfDir(wrong)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("tensor \"model.layers.0.mlp.gate_proj.weight\""),
                    HasSubstr("shape [96, 64] does not match the config: expected [128, 64]")));
  json bias = ConfigFor(spec);
  bias["attention_bias"] = true;
  s = LoadError(WriteHfDir("hf_attn_bias", tiny, HfDir(bias)));
  EXPECT_THAT(s.message(), HasSubstr("attention_bias"));
}

TEST(HfLlamaTest, LoadModelDispatchesOnPath) {
  EXPECT_EQ(LoadModel(::testing::TempDir() + "/nothing_here").status().code(),
            absl::StatusCode::kNotFound);
  const std::string txt = ::testing::TempDir() + "/model.txt";
  std::ofstream(txt) << "hello";
  absl::Status s = LoadModel(txt).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("*.gguf"));
}

// A GGUF and the HF checkpoint it was converted from load to identical
// models (so give the same logits).
TEST(HfLlamaTest, GgufAndHfCheckpointAgree) {
  TinyLlamaSpec spec;
  spec.tied = false;
  spec.n_heads = 8;
  spec.n_kv_heads = 2;
  const TinyLlama tiny = BuildTinyLlama(spec);
  const std::string gguf = testing::WriteTempFile("agree.gguf", tiny.bytes);
  const std::string dir = WriteHfDir("hf_agree", tiny, HfDir(ConfigFor(spec), DType::kBF16, 2));
  absl::StatusOr<LlamaModel> a = LoadModel(gguf), b = LoadModel(dir);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->config.n_layers, b->config.n_layers);
  EXPECT_EQ(a->config.head_dim, b->config.head_dim);
  EXPECT_EQ(a->config.n_kv_heads, b->config.n_kv_heads);
  EXPECT_EQ(a->config.rms_norm_eps, b->config.rms_norm_eps);
  EXPECT_EQ(a->config.tie_word_embeddings, b->config.tie_word_embeddings);
  auto same = [](const Tensor& x, const Tensor& y, const std::string& what) {
    ASSERT_EQ(x.shape, y.shape) << what;
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data[i], y.data[i]) << what << " " << i;
  };
  same(a->embed_tokens, b->embed_tokens, "embed");
  same(a->lm_head, b->lm_head, "lm_head");
  for (int l = 0; l < spec.n_layers; ++l) {
    for (const BlockTensorSpec& s : BlockTensorSpecs()) {
      if (HasTensor(a->config, s)) same(a->blocks[l].*s.slot, b->blocks[l].*s.slot, s.hf_suffix);
    }
  }
}

}  // namespace
}  // namespace compressd::engine
