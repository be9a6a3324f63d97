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
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using testing::BuildTinyLlama;
using ::testing::HasSubstr;
using testing::TinyLlama;
using testing::TinyLlamaSpec;
namespace fs = std::filesystem;

json ConfigFor(const TinyLlamaSpec& s, const std::string& model_type = "llama") {
  return json{{"model_type", model_type},
              {"architectures", {"LlamaForCausalLM"}},
              {"num_hidden_layers", s.n_layers},
              {"hidden_size", s.hidden},
              {"intermediate_size", s.intermediate},
              {"num_attention_heads", s.n_heads},
              {"num_key_value_heads", s.n_kv_heads},
              {"vocab_size", s.vocab},
              {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", s.rope_theta},
              {"tie_word_embeddings", s.tied},
              {"bos_token_id", 1},
              {"eos_token_id", 2}};
}

struct HfDir {
  explicit HfDir(json c, DType d = DType::kF32, int n = 1)
      : config(std::move(c)), dtype(d), shards(n) {}
  json config;
  DType dtype;
  int shards;         // > 1: shards plus model.safetensors.index.json
  std::string drop;   // a tensor to leave out
  std::string extra;  // an additional tensor
};

HfDir WithDrop(HfDir d, std::string drop) {
  d.drop = std::move(drop);
  return d;
}
HfDir WithExtra(HfDir d, std::string extra) {
  d.extra = std::move(extra);
  return d;
}

// Writes `tiny`'s HF weights as a checkpoint directory; returns its path.
std::string WriteHfDir(const std::string& name, const TinyLlama& tiny, const HfDir& d) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << d.config.dump();
  std::vector<std::vector<TensorToWrite>> shards(d.shards);
  std::vector<std::string> storage;
  storage.reserve(tiny.hf.size() + 1);
  json weight_map = json::object();
  int i = 0;
  auto add = [&](const std::string& tname, const std::vector<float>& v,
                 std::vector<int64_t> shape) {
    storage.push_back(*FloatsToBytes(d.dtype, v.data(), v.size()));
    const int shard = i++ % d.shards;
    shards[shard].push_back({tname, d.dtype, std::move(shape), storage.back()});
    weight_map[tname] = absl::StrCat("model-0000", shard + 1, "-of-0000", d.shards, ".safetensors");
  };
  for (const auto& [tname, values] : tiny.hf) {
    if (tname != d.drop) add(tname, values, tiny.hf_shape.at(tname));
  }
  if (!d.extra.empty()) add(d.extra, {1, 2}, {2});
  for (int s = 0; s < d.shards; ++s) {
    const std::string file =
        d.shards == 1 ? "model.safetensors"
                      : absl::StrCat("model-0000", s + 1, "-of-0000", d.shards, ".safetensors");
    EXPECT_TRUE(WriteSafetensors((dir / file).string(), shards[s], {{"format", "pt"}}).ok());
  }
  if (d.shards > 1)
    std::ofstream(dir / "model.safetensors.index.json") << json{{"weight_map", weight_map}}.dump();
  return dir.string();
}

void ExpectValues(const Tensor& t, const std::vector<float>& want,
                  const std::vector<int64_t>& shape, const std::string& name) {
  ASSERT_EQ(t.shape, shape) << name;
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << name;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(t.data[i], want[i]) << name << " element " << i;
}

void ExpectModelMatches(const LlamaModel& m, const TinyLlama& tiny, const TinyLlamaSpec& spec) {
  ExpectValues(m.embed_tokens, tiny.hf.at("model.embed_tokens.weight"),
               tiny.hf_shape.at("model.embed_tokens.weight"), "embed");
  ExpectValues(m.final_norm, tiny.hf.at("model.norm.weight"), {spec.hidden}, "norm");
  ASSERT_EQ(m.blocks.size(), static_cast<size_t>(spec.n_layers));
  for (int l = 0; l < spec.n_layers; ++l) {
    for (const BlockTensorSpec& s : BlockTensorSpecs()) {
      const std::string name = absl::StrCat("model.layers.", l, ".", s.hf_suffix);
      if ((s.is_bias && !spec.attention_bias) || (s.is_qk_norm && !spec.qk_norm)) {
        EXPECT_TRUE((m.blocks[l].*s.slot).empty()) << name;
        continue;
      }
      ExpectValues(m.blocks[l].*s.slot, tiny.hf.at(name), tiny.hf_shape.at(name), name);
    }
  }
  if (spec.tied) {
    EXPECT_EQ(m.lm_head.data, m.embed_tokens.data);
  } else {
    ExpectValues(m.lm_head, tiny.hf.at("lm_head.weight"), {spec.vocab, spec.hidden}, "lm_head");
  }
}

absl::Status LoadError(const std::string& dir) {
  absl::StatusOr<LlamaModel> m = LoadModel(dir);
  return m.ok() ? absl::OkStatus() : m.status();
}

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
      if (!s.is_bias && !s.is_qk_norm) same(a->blocks[l].*s.slot, b->blocks[l].*s.slot, s.hf_suffix);
    }
  }
}

}  // namespace
}  // namespace compressd::engine
