// The HF loader on the families that store tensors differently from Llama:
// Phi-3's fused projections (with longrope and partial rotary) and Gemma's
// norms, layer types, soft-capping and ropes; each read, refused by name
// when malformed, and exported back to the same checkpoint layout.
#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/hf_testing.h"
#include "workers/engine/export/llama_export.h"

namespace compressd::engine {
namespace {

using namespace hf_testing;  // NOLINT: the checkpoint-directory helpers
using ::testing::AllOf;
using testing::BuildTinyLlama;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// `tiny` as Phi-3 stores it: q/k/v rows in one qkv_proj, gate/up in gate_up_proj.
TinyLlama FusedPhi3(const TinyLlama& tiny, const TinyLlamaSpec& spec) {
  TinyLlama out = tiny;
  const struct {
    const char* fused;
    std::vector<const char*> parts;
  } groups[] = {{"self_attn.qkv_proj.weight",
                 {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
                {"mlp.gate_up_proj.weight", {"mlp.gate_proj.weight", "mlp.up_proj.weight"}}};
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    for (const auto& g : groups) {
      std::vector<float> values;
      int64_t rows = 0;
      for (const char* part : g.parts) {
        const std::vector<float>& v = out.hf.at(p + part);
        values.insert(values.end(), v.begin(), v.end());
        rows += out.hf_shape.at(p + part)[0];
        out.hf.erase(p + part);
        out.hf_shape.erase(p + part);
      }
      out.hf[p + g.fused] = std::move(values);
      out.hf_shape[p + g.fused] = {rows, spec.hidden};
    }
  }
  return out;
}

TEST(HfLlamaTest, Phi3SplitsFusedProjectionsAndReadsLongropeAndPartialRotary) {
  TinyLlamaSpec spec;
  const TinyLlama tiny = BuildTinyLlama(spec);
  const TinyLlama fused = FusedPhi3(tiny, spec);
  json c = ConfigFor(spec, "phi3");
  c["max_position_embeddings"] = 131072;
  c["original_max_position_embeddings"] = 4096;
  c["partial_rotary_factor"] = 0.75;  // 12 of 16 dims: 6 factors
  c["sliding_window"] = 2047;
  c["hidden_act"] = "silu";
  c["rope_scaling"] = {{"type", "su"},  // Phi-3's configs' old name for longrope
                       {"short_factor", {1, 1.5, 2, 2.5, 3, 3.5}},
                       {"long_factor", {4, 5, 6, 7, 8, 9}}};
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_phi3", fused, HfDir(c, DType::kBF16)));
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectModelMatches(*m, tiny, spec);  // the parts are the fused rows, in order
  const LlamaConfig& pc = m->config;
  EXPECT_TRUE(pc.fused_projections);
  EXPECT_EQ(pc.rotary_dims, 12);
  EXPECT_EQ(pc.sliding_window, 2047);
  EXPECT_EQ(pc.rope_scaling.type, "longrope");
  EXPECT_EQ(pc.rope_scaling.long_factor[5], 9.0f);
  EXPECT_EQ(pc.rope_scaling.original_max_position_embeddings, 4096);
  // factor 131072 / 4096 = 32: sqrt(1 + ln 32 / ln 4096) as transformers.
  EXPECT_FLOAT_EQ(pc.rope_scaling.attention_factor, std::sqrt(1 + std::log(32.0) / std::log(4096.0)));
  // Exported as Phi-3 again (fused tensors, Phi3Config fields) and read back the same.
  const std::string out = (fs::path(::testing::TempDir()) / "hf_phi3_export").string();
  ASSERT_TRUE(WriteHfLlama(*m, out).ok());
  absl::StatusOr<LlamaModel> back = LoadModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectModelMatches(*back, tiny, spec);
  EXPECT_EQ(back->config.rotary_dims, 12);
  EXPECT_EQ(back->config.sliding_window, 2047);
  EXPECT_EQ(back->config.rope_scaling.short_factor, pc.rope_scaling.short_factor);
  EXPECT_EQ(back->config.rope_scaling.attention_factor, pc.rope_scaling.attention_factor);

  // The same weights under Llama's names are unmapped for Phi-3.
  absl::Status s = LoadError(WriteHfDir("hf_phi3_split", tiny, HfDir(c)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("qkv_proj.weight\" is missing"));
  // One factor short, or another activation: refused, naming the field.
  json bad = c;
  bad["rope_scaling"]["long_factor"] = {4, 5, 6, 7, 8};
  s = LoadError(WriteHfDir("hf_phi3_factors", fused, HfDir(bad)));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("rope_scaling"), HasSubstr("long_factor"),
                                 HasSubstr("list of 6 numbers")));
  bad = c;
  bad["hidden_act"] = "gelu_pytorch_tanh";
  s = LoadError(WriteHfDir("hf_phi3_gelu", fused, HfDir(bad)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("hidden_act"), HasSubstr("gelu_pytorch_tanh")));
}

// `tiny` as Gemma stores it: the norm before the MLP is pre_feedforward_layernorm,
// and two more per layer (after attention, after the MLP) with values of their own.
TinyLlama GemmaNames(const TinyLlama& tiny, const TinyLlamaSpec& spec) {
  TinyLlama out = tiny;
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    out.hf[p + "pre_feedforward_layernorm.weight"] = out.hf.at(p + "post_attention_layernorm.weight");
    out.hf_shape[p + "pre_feedforward_layernorm.weight"] = {spec.hidden};
    for (const char* name : {"post_attention_layernorm.weight", "post_feedforward_layernorm.weight"}) {
      std::vector<float> v(static_cast<size_t>(spec.hidden));
      for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(l + 1) + (name[5] == 'a' ? 0.5f : 0.0f);
      out.hf[p + name] = v;
      out.hf_shape[p + name] = {spec.hidden};
    }
  }
  return out;
}

TEST(HfLlamaTest, GemmaNormsLayerTypesSoftcapsAndRopesRoundTrip) {
  TinyLlamaSpec spec;
  spec.qk_norm = true;  // Gemma 3's q/k norms
  const TinyLlama tiny = BuildTinyLlama(spec);
  const TinyLlama gemma = GemmaNames(tiny, spec);
  // Gemma 3 as transformers 4 wrote it: rope_theta absent (1e6), linear
  // scaling on the global layers, rope_local_base_freq, sliding_window_pattern.
  json c = ConfigFor(spec, "gemma3_text");
  c.erase("rope_theta");
  c.erase("tie_word_embeddings");  // Gemma's default: tied
  c["head_dim"] = 16;
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["query_pre_attn_scalar"] = 24;
  c["sliding_window"] = 512;
  c["sliding_window_pattern"] = 2;
  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  c["rope_local_base_freq"] = 10000.0;
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_gemma3", gemma, HfDir(c)));
  ASSERT_TRUE(m.ok()) << m.status();
  const LlamaConfig& g = m->config;
  EXPECT_TRUE(g.norm_offset && g.gelu_gate && g.sandwich_norms && g.scale_embeddings && g.qk_norm);
  EXPECT_TRUE(g.tie_word_embeddings);
  EXPECT_EQ(g.sliding_layers, (std::vector<bool>{true, false}));
  EXPECT_EQ(g.rope_theta, 1e6f);
  EXPECT_EQ(g.rope_scaling.type, "linear");
  EXPECT_EQ(g.local_rope_theta, 10000.0f);
  EXPECT_EQ(g.query_pre_attn_scalar, 24.0f);
  EXPECT_EQ(g.attn_softcap, 0.0f);  // Gemma 3: none unless the config says
  EXPECT_EQ(m->blocks[1].layer, 1);
  ExpectValues(m->blocks[1].mlp_norm, tiny.hf.at("model.layers.1.post_attention_layernorm.weight"),
               {spec.hidden}, "mlp_norm");  // Gemma's pre_feedforward_layernorm
  ExpectValues(m->blocks[1].attn_post_norm,
               gemma.hf.at("model.layers.1.post_attention_layernorm.weight"), {spec.hidden},
               "attn_post_norm");
  ExpectValues(m->blocks[0].mlp_post_norm,
               gemma.hf.at("model.layers.0.post_feedforward_layernorm.weight"), {spec.hidden},
               "mlp_post_norm");

  // Exported as Gemma 3 again and read back with the same per-layer attention.
  const std::string out = (fs::path(::testing::TempDir()) / "hf_gemma3_export").string();
  ASSERT_TRUE(WriteHfLlama(*m, out).ok());
  absl::StatusOr<LlamaModel> back = LoadModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config.sliding_layers, g.sliding_layers);
  EXPECT_EQ(back->config.local_rope_theta, g.local_rope_theta);
  EXPECT_EQ(back->config.rope_scaling.factor, 8.0f);
  ExpectValues(back->blocks[1].attn_post_norm,
               gemma.hf.at("model.layers.1.post_attention_layernorm.weight"), {spec.hidden},
               "attn_post_norm");

  // Gemma 2 defaults: soft-capping 50 / 30, every other layer windowed.
  json c2 = ConfigFor(spec, "gemma2");
  c2["head_dim"] = 16;
  spec.qk_norm = false;
  TinyLlama gemma2 = GemmaNames(BuildTinyLlama(spec), spec);
  m = LoadModel(WriteHfDir("hf_gemma2", gemma2, HfDir(c2)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.attn_softcap, 50.0f);
  EXPECT_EQ(m->config.final_softcap, 30.0f);
  EXPECT_EQ(m->config.sliding_layers, (std::vector<bool>{true, false}));
  // Refused by name: another activation, layer_types of the wrong length.
  json bad = c2;
  bad["hidden_activation"] = "silu";
  absl::Status s = LoadError(WriteHfDir("hf_gemma2_silu", gemma2, HfDir(bad)));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("hidden_activation"), HasSubstr("gelu_pytorch_tanh")));
  bad = c2;
  bad["layer_types"] = {"sliding_attention"};
  s = LoadError(WriteHfDir("hf_gemma2_types", gemma2, HfDir(bad)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("layer_types"), HasSubstr("must list 2 layers")));
}

}  // namespace
}  // namespace compressd::engine
