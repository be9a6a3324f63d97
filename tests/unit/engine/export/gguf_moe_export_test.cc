// Mixture-of-experts models as llama.cpp's GGUF: Mixtral as llama with
// experts, Qwen2-MoE / Qwen3-MoE / OLMoE as their own architectures. Each
// projection's experts are one 3-D tensor (ffn_*_exps), the router and the
// shared expert keep their own; read back by our loader, exactly. Models
// llama.cpp's arch could not reproduce are refused by name.
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
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

using engine::testing::TinyLlamaSpec;
using ::testing::HasSubstr;
using testing_export::ByName;
using testing_export::FromSpec;
using testing_export::Source;
using namespace gguf_family_testing;  // NOLINT: AllF32, WriteF32, ExpectSameTensors

constexpr int kExperts = 4, kWidth = 32, kShared = 48;

Tensor Random(std::vector<int64_t> shape, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, 0.1f);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(*rng);
  return Tensor::Owned(std::move(shape), std::move(v));
}

// The tiny llama of `spec` turned into `family`'s MoE: every layer's MLP
// replaced by a router and kExperts random experts (and the family's extras).
Source MoeSource(const std::string& family) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  spec.tied = false;
  spec.attention_bias = family == "qwen2_moe";
  if (family == "olmoe") spec.n_kv_heads = spec.n_heads;  // llama.cpp's olmoe: no GQA
  Source src = FromSpec(spec);
  LlamaConfig& c = src.model.config;
  c.model_type = family;
  c.mixtral_names = family == "mixtral";
  c.n_experts = kExperts;
  c.experts_per_token = 2;
  c.expert_intermediate = family == "mixtral" || family == "olmoe" ? c.intermediate : kWidth;
  c.norm_topk_prob = family == "mixtral" || family == "qwen3_moe";
  c.shared_expert_intermediate = family == "qwen2_moe" ? kShared : 0;
  c.qk_norm = family == "qwen3_moe" || family == "olmoe";
  c.qk_norm_whole = family == "olmoe";
  std::mt19937 rng(7);
  const int64_t hd = c.head_dim;
  for (BlockWeights& b : src.model.blocks) {
    b.gate_proj = b.up_proj = b.down_proj = Tensor();
    for (const BlockPart& part : MoeTensors(c, b.layer, &b)) *part.tensor = Random(part.shape, &rng);
    if (c.qk_norm) {
      b.q_norm = Random({c.qk_norm_whole ? c.n_heads * hd : hd}, &rng);
      b.k_norm = Random({c.qk_norm_whole ? c.n_kv_heads * hd : hd}, &rng);
    }
  }
  return src;
}

class GgufMoeExportTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufMoeExportTest, ExpertsAreStackedAndReadBackExactly) {
  const std::string family = GetParam();
  Source src = MoeSource(family);
  const LlamaConfig& c = src.model.config;
  std::string out;
  absl::StatusOr<std::unique_ptr<GgufFile>> f = WriteF32(src, &out);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string arch = family == "mixtral" ? "llama"
                           : family == "qwen2_moe" ? "qwen2moe"
                           : family == "qwen3_moe" ? "qwen3moe"
                                                   : "olmoe";
  EXPECT_EQ(*(*f)->GetString("general.architecture"), arch);
  EXPECT_EQ(*(*f)->GetU32(arch + ".expert_count"), static_cast<uint32_t>(kExperts));
  EXPECT_EQ(*(*f)->GetU32(arch + ".expert_used_count"), 2u);
  EXPECT_EQ(*(*f)->GetU32(arch + ".expert_feed_forward_length"),
            static_cast<uint32_t>(c.expert_intermediate));
  EXPECT_EQ((*f)->GetU32(arch + ".expert_shared_feed_forward_length").ok(), family == "qwen2_moe");
  // llama.cpp's dims: innermost first, experts outermost; expert e's matrix
  // is the e-th slice, byte for byte (F32).
  const int64_t h = c.hidden, w = c.expert_intermediate;
  const struct {
    const char* name;
    std::vector<int64_t> ne;
    Tensor ExpertWeights::*slot;
  } stacks[] = {{"ffn_gate_exps.weight", {h, w, kExperts}, &ExpertWeights::gate_proj},
                {"ffn_up_exps.weight", {h, w, kExperts}, &ExpertWeights::up_proj},
                {"ffn_down_exps.weight", {w, h, kExperts}, &ExpertWeights::down_proj}};
  for (int l = 0; l < c.n_layers; ++l) {
    for (const auto& s : stacks) {
      const std::string name = absl::StrCat("blk.", l, ".", s.name);
      const GgufTensorInfo* t = (*f)->FindTensor(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->ne, s.ne) << name;
      const uint8_t* data = (*f)->TensorData(*t);
      for (int e = 0; e < kExperts; ++e) {
        const Tensor& want = src.model.blocks[l].experts[e].*s.slot;
        EXPECT_EQ(std::memcmp(data + e * want.numel() * sizeof(float), want.data,
                              want.numel() * sizeof(float)),
                  0)
            << name << " expert " << e;
      }
    }
    const GgufTensorInfo* router = (*f)->FindTensor(absl::StrCat("blk.", l, ".ffn_gate_inp.weight"));
    ASSERT_NE(router, nullptr);
    EXPECT_EQ(router->ne, (std::vector<int64_t>{h, kExperts}));
    EXPECT_EQ((*f)->FindTensor(absl::StrCat("blk.", l, ".ffn_gate.weight")), nullptr);
    const GgufTensorInfo* shexp_gate =
        (*f)->FindTensor(absl::StrCat("blk.", l, ".ffn_gate_inp_shexp.weight"));
    EXPECT_EQ(shexp_gate != nullptr, family == "qwen2_moe");
    if (shexp_gate != nullptr) {
      EXPECT_EQ(shexp_gate->ne, (std::vector<int64_t>{h}));
    }
  }
  absl::StatusOr<LlamaModel> back = LoadGgufModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config.model_type, family);
  EXPECT_EQ(back->config.n_experts, kExperts);
  EXPECT_EQ(back->config.expert_intermediate, c.expert_intermediate);
  EXPECT_EQ(back->config.shared_expert_intermediate, c.shared_expert_intermediate);
  EXPECT_EQ(back->config.norm_topk_prob, c.norm_topk_prob);
  EXPECT_EQ(back->config.qk_norm_whole, c.qk_norm_whole);
  ExpectSameTensors(&src.model, &*back, 0.0f);
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Families, GgufMoeExportTest,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe"));

// Quantized experts: one type per stacked tensor, each expert's grid encoded
// exactly when it fits that type; the router stays F32.
TEST(GgufMoeExportTest, QuantizedExpertsShareTheirStacksType) {
  Source src = MoeSource("mixtral");
  std::map<std::string, QuantizedTensor> grids;
  std::map<std::string, const QuantizedTensor*> quantized;
  std::vector<std::string> names;
  for (const auto& [name, t] : ByName(&src.model)) {
    if (name.find("experts.") != std::string::npos) names.push_back(name);
  }
  for (const std::string& name : names) {
    grids[name] = testing_export::QuantizeInModel(&src.model, name, 4, /*sym=*/true, 32);
    quantized[name] = &grids[name];
  }
  GgufExportOptions o;  // defaults: types from the grids, others F16
  const std::string out = testing_export::UniqueTempPath(".gguf");
  absl::StatusOr<GgufExportReport> report = WriteGgufLlama(src.model, src.file.get(), quantized, o, out);
  ASSERT_TRUE(report.ok()) << report.status();
  std::map<std::string, GgmlType> by_gguf;
  for (const GgufTensorReport& t : report->tensors) {
    if (t.gguf_name.find("_exps") == std::string::npos) continue;
    EXPECT_TRUE(t.exact_from_grid) << t.hf_name;
    auto [it, fresh] = by_gguf.emplace(t.gguf_name, t.type);
    EXPECT_EQ(it->second, t.type) << t.hf_name << " differs from its stack's type";
  }
  EXPECT_EQ(by_gguf.size(), 3u * src.model.config.n_layers);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(out);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->FindTensor("blk.0.ffn_gate_inp.weight")->type, GgmlType::kF32);
  absl::StatusOr<LlamaModel> back = LoadGgufModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  for (const auto& [name, q] : quantized) {
    const Tensor* t = ByName(&*back).at(name);
    const Tensor* want = ByName(&src.model).at(name);
    float worst = 0, largest = 0;
    for (int64_t i = 0; i < t->numel(); ++i) {
      worst = std::max(worst, std::fabs(t->data[i] - want->data[i]));
      largest = std::max(largest, std::fabs(want->data[i]));
    }
    EXPECT_LT(worst, 1e-3f * largest) << name;  // exact but for the scales' F16 rounding
  }
  std::filesystem::remove(out);
}

TEST(GgufMoeExportTest, WhatLlamaCppCannotRunIsRefusedByName) {
  const struct {
    const char* family;
    void (*edit)(LlamaConfig*);
    const char* why;
  } cases[] = {
      {"qwen3_moe", [](LlamaConfig* c) { c->moe_layers = {true, false}; }, "mlp_only_layers"},
      {"olmoe", [](LlamaConfig* c) { c->norm_topk_prob = true; }, "renormalised"},
      {"mixtral", [](LlamaConfig* c) { c->norm_topk_prob = false; }, "not renormalised"},
      {"qwen2_moe", [](LlamaConfig* c) { c->shared_expert_intermediate = 0; }, "shared expert"},
      {"olmoe", [](LlamaConfig* c) { c->n_kv_heads = c->n_heads / 2; }, "grouped-query keys"},
  };
  for (const auto& k : cases) {
    Source src = MoeSource(k.family);
    k.edit(&src.model.config);
    absl::Status s = CheckGgufExportable(src.model.config);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << k.family;
    EXPECT_THAT(s.message(), HasSubstr(k.why)) << k.family;
    EXPECT_THAT(s.message(), HasSubstr("hf_safetensors")) << k.family;
  }
}

}  // namespace
}  // namespace compressd::engine
