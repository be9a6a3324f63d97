// Gemma 2 / 3 as llama.cpp's gemma2 / gemma3: norms stored as 1 + w, the
// sandwich norms under llama.cpp's names, soft-capping, the window and Gemma
// 3's linear rope scaling as keys; read back by our loader as the same model.
// What llama.cpp fixes instead of reading (the attention scale, which layers
// are windowed, Gemma 3's local theta) must be the model's, else refused.
// Phi-3 as llama.cpp's phi3: q/k/v fused as attn_qkv and gate/up as ffn_up,
// longrope's factors as tensors, partial rotary.
#include <cmath>
#include <filesystem>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "tests/unit/engine/export/gguf_family_testing.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/export/gguf_export.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/tensor_map.h"

namespace compressd::engine {
namespace {

using engine::testing::TinyLlamaSpec;
using ::testing::HasSubstr;
using testing_export::ByName;
using testing_export::FromSpec;
using testing_export::Source;
using namespace gguf_family_testing;  // NOLINT: AllF32, WriteF32, ExpectSameTensors

Tensor Random(int64_t n, float mean, std::mt19937* rng) {
  std::normal_distribution<float> normal(mean, 0.1f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(*rng);
  return Tensor::Owned({n}, std::move(v));
}

// The tiny llama of `spec` (4 layers) as a llama.cpp-compatible Gemma of `family`.
Source GemmaSource(const std::string& family) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  spec.n_layers = 4;
  Source src = FromSpec(spec);
  LlamaConfig& c = src.model.config;
  c.model_type = family;
  c.norm_offset = c.gelu_gate = c.sandwich_norms = c.scale_embeddings = true;
  c.qk_norm = family == "gemma3_text";
  c.query_pre_attn_scalar = static_cast<float>(c.head_dim);
  c.attn_softcap = c.qk_norm ? 0.0f : 50.0f;
  c.final_softcap = c.qk_norm ? 0.0f : 30.0f;
  c.sliding_window = 8;
  c.sliding_layers = GgufGemmaSlidingLayers(c);
  if (c.qk_norm) {
    c.local_rope_theta = 10000.0f;
    c.rope_theta = 1e6f;
    c.rope_scaling.type = "linear";
    c.rope_scaling.factor = 4.0f;
  }
  std::mt19937 rng(3);
  for (BlockWeights& b : src.model.blocks) {
    b.attn_post_norm = Random(c.hidden, 0.0f, &rng);  // stored as w: the norm is (1 + w)
    b.mlp_post_norm = Random(c.hidden, 0.0f, &rng);
    b.attn_norm = Random(c.hidden, 0.0f, &rng);
    if (c.qk_norm) {
      b.q_norm = Random(c.head_dim, 0.0f, &rng);
      b.k_norm = Random(c.head_dim, 0.0f, &rng);
    }
  }
  src.model.final_norm = Random(c.hidden, 0.0f, &rng);
  return src;
}

class GgufGemmaExportTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufGemmaExportTest, NormsOffsetKeysWrittenAndReadBack) {
  const std::string family = GetParam();
  const std::string arch = family == "gemma2" ? "gemma2" : "gemma3";
  Source src = GemmaSource(family);
  const LlamaConfig& c = src.model.config;
  std::string out;
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteF32(src, &out);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*(*f)->GetString("general.architecture"), arch);
  EXPECT_EQ(*(*f)->GetU32(arch + ".attention.sliding_window"), 8u);
  EXPECT_EQ((*f)->GetF32(arch + ".attn_logit_softcapping").ok(), family == "gemma2");
  EXPECT_EQ((*f)->GetString(arch + ".rope.scaling.type").ok(), family != "gemma2");
  // 1 + w on disk, under llama.cpp's names for the sandwich norms.
  const GgufTensorInfo* post = (*f)->FindTensor("blk.1.post_attention_norm.weight");
  ASSERT_NE(post, nullptr);
  const float* stored = reinterpret_cast<const float*>((*f)->TensorData(*post));
  EXPECT_FLOAT_EQ(stored[3], 1.0f + src.model.blocks[1].attn_post_norm.data[3]);
  ASSERT_NE((*f)->FindTensor("blk.1.post_ffw_norm.weight"), nullptr);
  const GgufTensorInfo* final_norm = (*f)->FindTensor("output_norm.weight");
  EXPECT_FLOAT_EQ(reinterpret_cast<const float*>((*f)->TensorData(*final_norm))[0],
                  1.0f + src.model.final_norm.data[0]);
  absl::StatusOr<LlamaModel> back = LoadGgufModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  const LlamaConfig& r = back->config;
  EXPECT_EQ(r.model_type, family);
  EXPECT_TRUE(r.norm_offset && r.sandwich_norms && r.gelu_gate && r.scale_embeddings);
  EXPECT_EQ(r.qk_norm, c.qk_norm);
  EXPECT_EQ(r.query_pre_attn_scalar, c.query_pre_attn_scalar);
  EXPECT_EQ(r.attn_softcap, c.attn_softcap);
  EXPECT_EQ(r.final_softcap, c.final_softcap);
  EXPECT_EQ(r.sliding_window, c.sliding_window);
  EXPECT_EQ(r.sliding_layers, c.sliding_layers);
  EXPECT_EQ(r.local_rope_theta, c.local_rope_theta);
  EXPECT_EQ(r.rope_scaling.type, c.rope_scaling.type);
  EXPECT_EQ(r.rope_scaling.factor, c.rope_scaling.factor);
  ExpectSameTensors(&src.model, &*back, 1e-6f);
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufGemmaExportTest, ::testing::Values("gemma2", "gemma3_text"));

TEST(GgufGemmaExportTest, WhatLlamaCppFixesMustBeTheModels) {
  const struct {
    const char* family;
    void (*edit)(LlamaConfig*);
    const char* why;
  } cases[] = {
      {"gemma2", [](LlamaConfig* c) { c->query_pre_attn_scalar = 24; }, "query_pre_attn_scalar"},
      {"gemma2", [](LlamaConfig* c) { c->attn_softcap = 0; }, "soft-capping"},
      {"gemma3_text", [](LlamaConfig* c) { c->sliding_layers = {true, false, true, true}; },
       "layer_types"},
      {"gemma3_text", [](LlamaConfig* c) { c->local_rope_theta = 20000; }, "rope theta"},
      {"gemma2", [](LlamaConfig* c) { c->sliding_window = 0; }, "no sliding window"},
  };
  for (const auto& k : cases) {
    Source src = GemmaSource(k.family);
    k.edit(&src.model.config);
    absl::Status s = CheckGgufExportable(src.model.config);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << k.family << " " << k.why;
    EXPECT_THAT(s.message(), HasSubstr(k.why));
  }
  Source ok = GemmaSource("gemma3_text");
  EXPECT_TRUE(CheckGgufExportable(ok.model.config).ok());
  // 27B models (told apart by their layer count) scale by hidden / heads.
  LlamaConfig c = ok.model.config;
  c.n_layers = 62;
  EXPECT_EQ(GgufGemmaQueryScalar(c), static_cast<float>(c.hidden / c.n_heads));
}

// The tiny llama as Phi-3: 12 of 16 dims rotated, longrope, no window.
Source Phi3Source() {
  TinyLlamaSpec spec;
  spec.quantize = false;
  spec.tied = false;
  Source src = FromSpec(spec);
  LlamaConfig& c = src.model.config;
  c.model_type = "phi3";
  c.fused_projections = true;
  c.rotary_dims = 12;
  c.max_position = 256;
  RopeScaling& s = c.rope_scaling;
  s.type = "longrope";
  s.original_max_position_embeddings = 96;
  s.factor = 256.0f / 96.0f;
  s.attention_factor = 1.1875f;
  for (int i = 0; i < 6; ++i) {
    s.short_factor.push_back(1.0f + 0.125f * i);
    s.long_factor.push_back(1.0f + 0.75f * i);
  }
  return src;
}

TEST(GgufPhi3ExportTest, FusedProjectionsLongropeAndPartialRotaryRoundTrip) {
  Source src = Phi3Source();
  const LlamaConfig& c = src.model.config;
  std::string out;
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteF32(src, &out);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.GetString("general.architecture"), "phi3");
  EXPECT_EQ(*g.GetU32("phi3.rope.dimension_count"), 12u);
  EXPECT_EQ(*g.GetU32("phi3.attention.key_length"), 16u);
  EXPECT_EQ(*g.GetU32("phi3.rope.scaling.original_context_length"), 96u);
  EXPECT_FLOAT_EQ(*g.GetF32("phi3.rope.scaling.attn_factor"), 1.1875f);
  EXPECT_EQ(g.FindTensor("blk.0.attn_q.weight"), nullptr);
  EXPECT_EQ(g.FindTensor("blk.0.ffn_gate.weight"), nullptr);
  const int64_t qkv_rows = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim;
  EXPECT_EQ(g.FindTensor("blk.1.attn_qkv.weight")->ne, (std::vector<int64_t>{c.hidden, qkv_rows}));
  EXPECT_EQ(g.FindTensor("blk.1.ffn_up.weight")->ne,
            (std::vector<int64_t>{c.hidden, 2 * c.intermediate}));
  // q's rows first, then k's, then v's, byte for byte (F32, HF row order).
  const GgufTensorInfo* qkv = g.FindTensor("blk.1.attn_qkv.weight");
  const float* data = reinterpret_cast<const float*>(g.TensorData(*qkv));
  const Tensor& k = src.model.blocks[1].k_proj;
  EXPECT_EQ(std::memcmp(data + src.model.blocks[1].q_proj.numel(), k.data, k.numel() * sizeof(float)),
            0);
  const GgufTensorInfo* lf = g.FindTensor("rope_factors_long.weight");
  ASSERT_NE(lf, nullptr);
  EXPECT_EQ(lf->ne, (std::vector<int64_t>{6}));
  absl::StatusOr<LlamaModel> back = LoadGgufModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  const LlamaConfig& r = back->config;
  EXPECT_EQ(r.model_type, "phi3");
  EXPECT_TRUE(r.fused_projections);
  EXPECT_EQ(r.rotary_dims, 12);
  EXPECT_EQ(r.head_dim, c.head_dim);
  EXPECT_EQ(r.rope_scaling.type, "longrope");
  EXPECT_EQ(r.rope_scaling.short_factor, c.rope_scaling.short_factor);
  EXPECT_EQ(r.rope_scaling.long_factor, c.rope_scaling.long_factor);
  EXPECT_EQ(r.rope_scaling.original_max_position_embeddings, 96);
  EXPECT_FLOAT_EQ(r.rope_scaling.attention_factor, 1.1875f);
  EXPECT_FLOAT_EQ(r.rope_scaling.factor, c.rope_scaling.factor);
  ExpectSameTensors(&src.model, &*back, 0.0f);
  std::filesystem::remove(out);
  // llama.cpp's phi3 runs without a window: one that bites is refused.
  src.model.config.sliding_window = 64;
  absl::Status s = CheckGgufExportable(src.model.config);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("sliding-window"));
  src.model.config.sliding_window = 256;  // the whole context: never bites
  EXPECT_TRUE(CheckGgufExportable(src.model.config).ok());
}

}  // namespace
}  // namespace compressd::engine
