// The HF loader and exporter on mixture-of-experts checkpoints (Mixtral's
// block_sparse_moe names, Qwen2-MoE's shared expert, Qwen-MoE's dense
// layers): every expert read into its slot, refused by name when one is
// missing, and written back under the family's own names and config.
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/hf_testing.h"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {
namespace {

using namespace hf_testing;  // NOLINT: the checkpoint-directory helpers
using ::testing::AllOf;
using testing::BuildTinyLlama;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr int kExperts = 4, kWidth = 24, kShared = 40;

std::vector<float> Values(size_t n, int seed) {
  std::vector<float> v(n);
  // Multiples of 1/64: exact in BF16.
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 7 + seed * 13) % 64) / 64 - 0.5f;
  return v;
}

// `tiny` with the MLP of every layer but `dense_layer` replaced by a router
// and kExperts experts (Mixtral's names or the others'), and a shared expert.
TinyLlama WithExperts(const TinyLlama& tiny, const TinyLlamaSpec& spec, bool mixtral, bool shared,
                      int dense_layer = -1) {
  TinyLlama out = tiny;
  int seed = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    out.hf[name] = Values(static_cast<size_t>(shape[0] * shape[1]), ++seed);
    out.hf_shape[name] = std::move(shape);
  };
  for (int l = 0; l < spec.n_layers; ++l) {
    if (l == dense_layer) continue;
    const std::string p = absl::StrCat("model.layers.", l, ".");
    for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}) {
      out.hf.erase(p + n);
      out.hf_shape.erase(p + n);
    }
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    add(moe + "gate.weight", {kExperts, spec.hidden});
    for (int e = 0; e < kExperts; ++e) {
      const std::string x = absl::StrCat(moe, "experts.", e, ".");
      add(x + (mixtral ? "w1.weight" : "gate_proj.weight"), {kWidth, spec.hidden});
      add(x + (mixtral ? "w3.weight" : "up_proj.weight"), {kWidth, spec.hidden});
      add(x + (mixtral ? "w2.weight" : "down_proj.weight"), {spec.hidden, kWidth});
    }
    if (!shared) continue;
    add(p + "mlp.shared_expert.gate_proj.weight", {kShared, spec.hidden});
    add(p + "mlp.shared_expert.up_proj.weight", {kShared, spec.hidden});
    add(p + "mlp.shared_expert.down_proj.weight", {spec.hidden, kShared});
    add(p + "mlp.shared_expert_gate.weight", {1, spec.hidden});
  }
  return out;
}

// Every stored tensor of `tiny` is in `m` under its name (NamedTensors).
void ExpectAllTensors(LlamaModel& m, const TinyLlama& tiny) {
  std::map<std::string, Tensor*> by_name;
  for (const NamedTensor& t : NamedTensors(&m)) by_name[t.name] = t.tensor;
  for (const auto& [name, values] : tiny.hf) {
    if (name == "lm_head.weight" && LmHeadIsTied(m)) continue;
    ASSERT_TRUE(by_name.count(name)) << name;
    ExpectValues(*by_name[name], values, tiny.hf_shape.at(name), name);
  }
  EXPECT_EQ(by_name.size(), tiny.hf.size() - (LmHeadIsTied(m) && tiny.hf.count("lm_head.weight")));
}

TEST(HfMoeTest, MixtralExpertsLoadAndExportUnderTheirNames) {
  TinyLlamaSpec spec;
  spec.tied = false;
  const TinyLlama moe = WithExperts(BuildTinyLlama(spec), spec, /*mixtral=*/true, false);
  json c = ConfigFor(spec, "mixtral");
  c["num_local_experts"] = kExperts;
  c["num_experts_per_tok"] = 2;
  c["intermediate_size"] = kWidth;
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_mixtral", moe, HfDir(c, DType::kBF16)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.n_experts, kExperts);
  EXPECT_TRUE(m->config.norm_topk_prob);  // Mixtral always renormalises
  EXPECT_TRUE(m->config.mixtral_names);
  ASSERT_EQ(m->blocks[1].experts.size(), static_cast<size_t>(kExperts));
  EXPECT_TRUE(m->blocks[1].gate_proj.empty());
  ExpectAllTensors(*m, moe);

  const std::string out = (fs::path(::testing::TempDir()) / "hf_mixtral_export").string();
  ASSERT_TRUE(WriteHfLlama(*m, out).ok());
  std::ifstream config_file(fs::path(out) / "config.json");
  const json written = json::parse(config_file);
  EXPECT_EQ(written["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(written["num_local_experts"], kExperts);
  absl::StatusOr<LlamaModel> back = LoadModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectAllTensors(*back, moe);

  // A missing expert is refused by name, never left out.
  absl::Status s = LoadError(WriteHfDir(
      "hf_mixtral_drop", moe,
      WithDrop(HfDir(c), "model.layers.1.block_sparse_moe.experts.3.w2.weight")));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("block_sparse_moe.experts.3.w2.weight\" is missing"));
  // Experts under the other families' names are unmapped for Mixtral.
  const TinyLlama qwen_names = WithExperts(BuildTinyLlama(spec), spec, false, false);
  s = LoadError(WriteHfDir("hf_mixtral_names", qwen_names, HfDir(c)));
  EXPECT_THAT(s.message(), HasSubstr("is missing"));
  json bad = c;
  bad["num_experts_per_tok"] = kExperts + 1;
  s = LoadError(WriteHfDir("hf_mixtral_topk", moe, HfDir(bad)));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("num_experts_per_tok"), HasSubstr("outside [1, 4]")));
}

TEST(HfMoeTest, Qwen2MoeSharedExpertAndDenseLayers) {
  TinyLlamaSpec spec;
  spec.attention_bias = true;  // Qwen2-MoE's q/k/v biases
  const TinyLlama moe = WithExperts(BuildTinyLlama(spec), spec, false, /*shared=*/true,
                                    /*dense_layer=*/0);
  json c = ConfigFor(spec, "qwen2_moe");
  c["num_experts"] = kExperts;
  c["num_experts_per_tok"] = 2;
  c["moe_intermediate_size"] = kWidth;
  c["shared_expert_intermediate_size"] = kShared;
  c["mlp_only_layers"] = {0};
  absl::StatusOr<LlamaModel> m = LoadModel(WriteHfDir("hf_qwen2_moe", moe, HfDir(c)));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(LayerIsMoe(m->config, 0));
  EXPECT_TRUE(LayerIsMoe(m->config, 1));
  EXPECT_FALSE(m->blocks[0].gate_proj.empty());  // layer 0: a dense MLP of intermediate_size
  EXPECT_TRUE(m->blocks[0].experts.empty());
  EXPECT_EQ(m->blocks[1].shared_expert_gate.shape, (std::vector<int64_t>{1, spec.hidden}));
  ExpectAllTensors(*m, moe);
  const std::string out = (fs::path(::testing::TempDir()) / "hf_qwen2_moe_export").string();
  ASSERT_TRUE(WriteHfLlama(*m, out).ok());
  absl::StatusOr<LlamaModel> back = LoadModel(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectAllTensors(*back, moe);
  EXPECT_EQ(back->config.moe_layers, m->config.moe_layers);

  json bad = c;
  bad["mlp_only_layers"] = {7};
  absl::Status s = LoadError(WriteHfDir("hf_qwen2_moe_layers", moe, HfDir(bad)));
  EXPECT_THAT(s.message(), AllOf(HasSubstr("mlp_only_layers"), HasSubstr("7 is not a layer")));
}

TEST(HfMoeTest, OlmoeClampingIsRefused) {
  TinyLlamaSpec spec;
  const TinyLlama moe = WithExperts(BuildTinyLlama(spec), spec, false, false);
  json c = ConfigFor(spec, "olmoe");
  c["num_experts"] = kExperts;
  c["clip_qkv"] = 8.0;
  const absl::Status s = LoadError(WriteHfDir("hf_olmoe_clip", moe, HfDir(c)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("clip_qkv"));
}

}  // namespace
}  // namespace compressd::engine
