// GGUF -> LlamaModel on small generated files: config, name mapping, Q/K
// un-permutation, zero copy, tied/untied heads, and malformed models.
#include "workers/engine/model/gguf/gguf_model.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/tiny_llama_gguf.h"

namespace compressd::engine {
namespace {

using ::testing::AllOf;
using testing::BuildTinyLlama;
using ::testing::HasSubstr;
using testing::TinyLlama;
using testing::TinyLlamaSpec;

absl::StatusOr<LlamaModel> Load(const std::string& bytes) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::FromBytes("tiny.gguf", bytes);
  if (!f.ok()) return f.status();
  return LoadGgufModel(std::shared_ptr<const GgufFile>(std::move(*f)));
}

void ExpectTensor(const Tensor& t, const std::vector<float>& want,
                  const std::vector<int64_t>& shape, const std::string& name) {
  ASSERT_FALSE(t.empty()) << name;
  ASSERT_EQ(t.shape, shape) << name;
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << name;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(t.data[i], want[i]) << name << " element " << i;
}

void ExpectInvalid(const TinyLlamaSpec& spec, const std::string& what) {
  absl::StatusOr<LlamaModel> m = Load(BuildTinyLlama(spec).bytes);
  ASSERT_FALSE(m.ok()) << what;
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_THAT(m.status().message(), AllOf(HasSubstr("tiny.gguf"), HasSubstr(what)));
}

TEST(GgufModelTest, ReadsConfig) {
  TinyLlamaSpec spec;
  absl::StatusOr<LlamaModel> m = Load(BuildTinyLlama(spec).bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  const LlamaConfig& c = m->config;
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.intermediate, 96);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab, 40);
  EXPECT_EQ(c.max_position, 256);
  EXPECT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
}

// Every tensor, dequantized and in HF order, equals the HF weights the file
// was made from (which proves the name mapping and the un-permutation).
void ExpectMatchesHf(const TinyLlamaSpec& spec) {
  const TinyLlama tiny = BuildTinyLlama(spec);
  absl::StatusOr<LlamaModel> m = Load(tiny.bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  const int64_t h = spec.hidden, hd = spec.hidden / spec.n_heads, q = spec.n_heads * hd,
                kv = spec.n_kv_heads * hd, ff = spec.intermediate;
  ExpectTensor(m->embed_tokens, tiny.hf.at("model.embed_tokens.weight"), {spec.vocab, h}, "embed");
  ExpectTensor(m->final_norm, tiny.hf.at("model.norm.weight"), {h}, "norm");
  ASSERT_EQ(m->blocks.size(), static_cast<size_t>(spec.n_layers));
  for (int l = 0; l < spec.n_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const BlockWeights& b = m->blocks[l];
    ExpectTensor(b.attn_norm, tiny.hf.at(p + "input_layernorm.weight"), {h}, p + "attn_norm");
    ExpectTensor(b.q_proj, tiny.hf.at(p + "self_attn.q_proj.weight"), {q, h}, p + "q_proj");
    ExpectTensor(b.k_proj, tiny.hf.at(p + "self_attn.k_proj.weight"), {kv, h}, p + "k_proj");
    ExpectTensor(b.v_proj, tiny.hf.at(p + "self_attn.v_proj.weight"), {kv, h}, p + "v_proj");
    ExpectTensor(b.o_proj, tiny.hf.at(p + "self_attn.o_proj.weight"), {h, q}, p + "o_proj");
    ExpectTensor(b.mlp_norm, tiny.hf.at(p + "post_attention_layernorm.weight"), {h},
                 p + "mlp_norm");
    ExpectTensor(b.gate_proj, tiny.hf.at(p + "mlp.gate_proj.weight"), {ff, h}, p + "gate");
    ExpectTensor(b.up_proj, tiny.hf.at(p + "mlp.up_proj.weight"), {ff, h}, p + "up");
    ExpectTensor(b.down_proj, tiny.hf.at(p + "mlp.down_proj.weight"), {h, ff}, p + "down");
    if (spec.attention_bias) {
      ExpectTensor(b.q_bias, tiny.hf.at(p + "self_attn.q_proj.bias"), {q}, p + "q_bias");
      ExpectTensor(b.k_bias, tiny.hf.at(p + "self_attn.k_proj.bias"), {kv}, p + "k_bias");
      ExpectTensor(b.v_bias, tiny.hf.at(p + "self_attn.v_proj.bias"), {kv}, p + "v_bias");
    } else {
      EXPECT_TRUE(b.q_bias.empty());
    }
  }
  if (spec.tied) {
    EXPECT_EQ(m->lm_head.data, m->embed_tokens.data);
    EXPECT_EQ(m->lm_head.shape, m->embed_tokens.shape);
  } else {
    ExpectTensor(m->lm_head, tiny.hf.at("lm_head.weight"), {spec.vocab, h}, "lm_head");
  }
}

TEST(GgufModelTest, QuantizedTensorsMatchHfWeights) { ExpectMatchesHf(TinyLlamaSpec{}); }

TEST(GgufModelTest, F32TensorsMatchHfWeights) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  spec.tied = false;
  ExpectMatchesHf(spec);
}

TEST(GgufModelTest, GqaAndBiasesAreUnpermuted) {
  TinyLlamaSpec spec;
  spec.n_heads = 8;
  spec.n_kv_heads = 1;
  spec.attention_bias = true;
  spec.tied = false;
  ExpectMatchesHf(spec);
}

TEST(GgufModelTest, F32TensorsPointIntoTheMapping) {
  TinyLlamaSpec spec;
  spec.quantize = false;
  const TinyLlama tiny = BuildTinyLlama(spec);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::FromBytes("tiny.gguf", tiny.bytes);
  ASSERT_TRUE(f.ok());
  std::shared_ptr<const GgufFile> file(std::move(*f));
  const GgufTensorInfo* v = file->FindTensor("blk.0.attn_v.weight");
  ASSERT_NE(v, nullptr);
  absl::StatusOr<LlamaModel> m = LoadGgufModel(file);
  ASSERT_TRUE(m.ok()) << m.status();
  // Unpermuted F32: zero copy, and the tensor keeps the file alive.
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(m->blocks[0].v_proj.data), file->TensorData(*v));
  EXPECT_EQ(m->blocks[0].v_proj.owner.get(), static_cast<const void*>(file.get()));
  // Permuted F32 rows had to be copied.
  EXPECT_NE(reinterpret_cast<const uint8_t*>(m->blocks[0].q_proj.data),
            file->TensorData(*file->FindTensor("blk.0.attn_q.weight")));
  const float first = m->blocks[0].v_proj.data[0];
  file.reset();
  EXPECT_EQ(m->blocks[0].v_proj.data[0], first);  // still mapped
}

TEST(GgufModelTest, ReadsLlama3RopeFreqs) {
  TinyLlamaSpec spec;
  spec.rope_theta = 500000.0f;
  spec.n_heads = 1;
  spec.n_kv_heads = 1;  // head_dim 64: 32 frequencies, some in each band
  // The factors convert_hf_to_gguf.py writes for factor 8, low 1, high 4, 8192 positions.
  for (int i = 0; i < 64; i += 2) {
    const double freq = 1.0 / std::pow(500000.0, i / 64.0), wavelen = 2 * M_PI / freq;
    double f = 1.0;
    if (wavelen > 8192) {
      f = 8.0;
    } else if (wavelen >= 2048) {
      const double smooth = (8192 / wavelen - 1) / 3;
      f = 1.0 / ((1 - smooth) / 8 + smooth);
    }
    spec.rope_freqs.push_back(static_cast<float>(f));
  }
  absl::StatusOr<LlamaModel> m = Load(BuildTinyLlama(spec).bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.rope_scaling.type, "llama3");
  EXPECT_EQ(m->config.rope_scaling.factor, 8.0f);
  EXPECT_EQ(m->config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_EQ(m->config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(m->config.rope_scaling.original_max_position_embeddings, 8192);
  spec.rope_freqs[10] *= 1.5f;  // not llama3's curve
  ExpectInvalid(spec, "unsupported rope scaling: entry 10");
}

TEST(GgufModelTest, RejectsShapeMismatchVsConfig) {
  TinyLlamaSpec spec;
  spec.widen_tensor = "blk.1.ffn_up.weight";
  ExpectInvalid(spec, "tensor \"blk.1.ffn_up.weight\" (info at offset");
  ExpectInvalid(spec,
                "shape [97, 64] (ggml ne [64, 97]) does not match the config: expected [96, 64]");
}

TEST(GgufModelTest, RejectsMissingTensor) {
  TinyLlamaSpec spec;
  spec.drop_tensor = "blk.1.attn_k.weight";
  ExpectInvalid(spec, "tensor \"blk.1.attn_k.weight\" is missing");
  spec.drop_tensor = "output_norm.weight";
  ExpectInvalid(spec, "tensor \"output_norm.weight\" is missing");
}

TEST(GgufModelTest, RejectsUnmappedTensor) {
  TinyLlamaSpec spec;
  spec.extra_tensor = "blk.0.attn_output.bias";
  ExpectInvalid(spec, "tensor \"blk.0.attn_output.bias\" (info at offset");
}

TEST(GgufModelTest, RejectsMissingOrBadMetadata) {
  TinyLlamaSpec spec;
  spec.drop_key = "llama.embedding_length";
  ExpectInvalid(spec, "metadata key \"llama.embedding_length\" is missing");
  spec.drop_key = "general.architecture";
  ExpectInvalid(spec, "\"general.architecture\" is missing");
  spec.drop_key = "";
  spec.n_kv_heads = 3;  // does not divide 4 heads
  ExpectInvalid(spec, "n_kv_heads = 3 does not divide n_heads = 4");
}

TEST(GgufModelTest, RejectsOtherArchitectures) {
  testing::GgufWriter w;
  w.AddString("general.architecture", "gpt2");
  absl::StatusOr<LlamaModel> m = Load(w.Build());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("general.architecture \"gpt2\""));
}

// Files written by an independent writer (gguf-py's GGUFWriter, via
// tests/fuzz/make_seeds.py) load.
TEST(GgufModelTest, LoadsFilesWrittenByGgufPy) {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "run through ctest";
  const std::string dir = std::string(src) + "/tests/fuzz/corpus/gguf/";
  absl::StatusOr<LlamaModel> q8 = LoadGgufModel(dir + "llama_q8_tied.gguf");
  ASSERT_TRUE(q8.ok()) << q8.status();
  EXPECT_TRUE(q8->config.tie_word_embeddings);
  EXPECT_EQ(q8->config.hidden, 32);
  absl::StatusOr<LlamaModel> gqa = LoadGgufModel(dir + "llama_f32_untied_gqa.gguf");
  ASSERT_TRUE(gqa.ok()) << gqa.status();
  EXPECT_EQ(gqa->config.n_kv_heads, 2);
  EXPECT_FALSE(gqa->config.tie_word_embeddings);
  absl::StatusOr<LlamaModel> rope = LoadGgufModel(dir + "llama_rope_freqs.gguf");
  ASSERT_TRUE(rope.ok()) << rope.status();
  EXPECT_EQ(rope->config.rope_scaling.type, "llama3");
  EXPECT_EQ(rope->config.rope_scaling.factor, 8.0f);
}

}  // namespace
}  // namespace compressd::engine
