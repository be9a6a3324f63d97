// The family table (workers/engine/model/families.h) is what the reader, the
// exporters and the GGUF mapping read: each row's config.json reads to that
// family's structure, exports to its own transformers class and reads back
// the same; a config whose structure is not its family's is refused by name.
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/llama_export.h"
#include "workers/engine/model/families.h"
#include "workers/engine/model/gguf/hf_llama.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/hf_config.h"

namespace compressd::engine {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;

// The smallest config.json of `f`: shared sizes plus the fields the family requires.
json MinimalConfig(const Family& f) {
  json j = {{"model_type", f.model_type},        {"num_hidden_layers", 4},
            {"hidden_size", 64},                 {"intermediate_size", 96},
            {"num_attention_heads", 4},          {"num_key_value_heads", 2},
            {"vocab_size", 128},                 {"head_dim", 16},
            {"max_position_embeddings", 256}};
  if (f.moe != MoeKind::kDense) {
    j["num_experts_per_tok"] = 2;
    j[f.moe == MoeKind::kMixtral ? "num_local_experts" : "num_experts"] = 4;
  }
  if (f.moe == MoeKind::kQwen || f.moe == MoeKind::kQwenShared) {
    j["moe_intermediate_size"] = 32;
    j["mlp_only_layers"] = {1};
  }
  if (f.moe == MoeKind::kQwenShared) j["shared_expert_intermediate_size"] = 48;
  if (f.gemma) j["hidden_activation"] = "gelu_pytorch_tanh";
  // Values other than the class defaults, so an exporter that dropped one
  // would read back differently.
  j["rope_theta"] = 50000.0;
  if (f.window != WindowKind::kNone) j["sliding_window"] = 8;
  if (f.moe != MoeKind::kDense && f.moe != MoeKind::kMixtral) j["norm_topk_prob"] = true;
  if (f.gemma) {
    j["query_pre_attn_scalar"] = 32;
    j["attn_logit_softcapping"] = 20.0;
    j["final_logit_softcapping"] = 15.0;
    j["layer_types"] = {"sliding_attention", "full_attention", "full_attention",
                        "sliding_attention"};
  }
  if (f.gemma3) j["rope_local_base_freq"] = 20000.0;
  return j;
}

absl::StatusOr<LlamaConfig> Read(const json& j) {
  const std::string text = j.dump();
  auto base = ParseHfConfig(text, "config.json");
  if (!base.ok()) return base.status();
  return ReadHfLlamaConfig(*base, text, "config.json");
}

TEST(FamiliesTest, EveryRowReadsToItsStructureAndExportsToItsOwnClass) {
  std::set<std::string> types;
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.model_type);
    types.insert(f.model_type);
    auto c = Read(MinimalConfig(f));
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(FamilyOf(*c).ok()) << FamilyOf(*c).status();
    EXPECT_EQ(*FamilyOf(*c), &f);
    EXPECT_EQ(c->attention_bias, f.qkv_bias != QkvBias::kNever);
    EXPECT_EQ(c->qk_norm, f.qk_norm);
    EXPECT_EQ(c->qk_norm_whole, f.qk_norm_whole);
    EXPECT_EQ(c->fused_projections, f.fused_projections);
    EXPECT_EQ(c->sandwich_norms && c->norm_offset && c->gelu_gate && c->scale_embeddings, f.gemma);
    EXPECT_EQ(c->n_experts > 0, f.moe != MoeKind::kDense);
    EXPECT_EQ(c->mixtral_names, f.moe == MoeKind::kMixtral);
    EXPECT_EQ(c->tie_word_embeddings, f.default_tied);
    EXPECT_EQ(!c->sliding_layers.empty(), f.window == WindowKind::kPattern);

    const json out = json::parse(HfLlamaConfigJson(*c, c->tie_word_embeddings));
    EXPECT_EQ(out["architectures"], json::array({f.hf_class}));
    EXPECT_EQ(out["model_type"], f.export_type);
    auto back = Read(out);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << out.dump(2);
    EXPECT_EQ(back->model_type, f.export_type);
    EXPECT_EQ(back->attention_bias, c->attention_bias);
    EXPECT_EQ(back->qk_norm, c->qk_norm);
    EXPECT_EQ(back->sandwich_norms, c->sandwich_norms);
    EXPECT_EQ(back->sliding_layers, c->sliding_layers);
    EXPECT_EQ(back->attn_softcap, c->attn_softcap);
    EXPECT_EQ(back->final_softcap, c->final_softcap);
    EXPECT_EQ(back->n_experts, c->n_experts);
    EXPECT_EQ(back->expert_intermediate, c->expert_intermediate);
    EXPECT_EQ(back->shared_expert_intermediate, c->shared_expert_intermediate);
    EXPECT_EQ(back->moe_layers, c->moe_layers);
    EXPECT_EQ(back->tie_word_embeddings, c->tie_word_embeddings);
    EXPECT_EQ(back->qk_norm_whole, c->qk_norm_whole);
    EXPECT_EQ(back->fused_projections, c->fused_projections);
    EXPECT_EQ(back->mixtral_names, c->mixtral_names);
    EXPECT_EQ(back->sliding_window, c->sliding_window);
    EXPECT_EQ(back->rope_theta, c->rope_theta);
    EXPECT_EQ(back->local_rope_theta, c->local_rope_theta);
    EXPECT_EQ(back->query_pre_attn_scalar, c->query_pre_attn_scalar);
    EXPECT_EQ(back->experts_per_token, c->experts_per_token);
    EXPECT_EQ(back->norm_topk_prob, c->norm_topk_prob);
    EXPECT_EQ(back->head_dim, c->head_dim);
    EXPECT_EQ(back->max_position, c->max_position);
  }
  EXPECT_EQ(types.size(), Families().size()) << "a model_type has two rows";
  for (const char* t : {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text",
                        "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"}) {
    EXPECT_TRUE(types.count(t)) << t;
  }
}

TEST(FamiliesTest, AConfigWithoutItsFamilysStructureIsRefusedByName) {
  auto c = Read(MinimalConfig(*FindFamily("llama")));
  ASSERT_TRUE(c.ok()) << c.status();
  c->qk_norm = true;  // a Qwen3 structure under llama: exporting it as Llama would drop q/k norms
  EXPECT_THAT(FamilyOf(*c).status().message(),
              AllOf(HasSubstr("\"llama\""), HasSubstr("q/k norms (the model has them)")));
  EXPECT_EQ(CheckHfExportable(*c).code(), absl::StatusCode::kInvalidArgument);
  c->qk_norm = false;
  c->attention_bias = true;
  EXPECT_THAT(CheckHfExportable(*c).message(), HasSubstr("q/k/v biases"));
  c->model_type = "gpt2";
  EXPECT_THAT(FamilyOf(*c).status().message(),
              AllOf(HasSubstr("\"gpt2\""), HasSubstr("supported: gemma2, gemma3_text, llama")));

  // Qwen2-MoE's biases are its config's choice (qkv_bias), both ways.
  json j = MinimalConfig(*FindFamily("qwen2_moe"));
  j["qkv_bias"] = false;
  auto moe = Read(j);
  ASSERT_TRUE(moe.ok()) << moe.status();
  EXPECT_FALSE(moe->attention_bias);
  EXPECT_TRUE(FamilyOf(*moe).ok());
  EXPECT_EQ(json::parse(HfLlamaConfigJson(*moe, false))["qkv_bias"], false);
}

TEST(FamiliesTest, GgufArchitecturesComeFromTheTable) {
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.model_type);
    LlamaConfig c;
    c.model_type = f.model_type;
    if (f.gguf_arch == nullptr) continue;
    EXPECT_STREQ(GgufArchitecture(c), f.gguf_arch);
    const Family* by_arch = FindGgufFamily(f.gguf_arch);
    ASSERT_NE(by_arch, nullptr);
    EXPECT_STREQ(by_arch->gguf_arch, f.gguf_arch);
    for (const BlockTensorSpec& spec : BlockTensorSpecs()) {
      EXPECT_EQ(GgufPermutation(c, spec),
                f.gguf_permutes_qk ? spec.permutation : RowPermutation::kNone);
    }
  }
  EXPECT_STREQ(FindGgufFamily("llama")->model_type, "llama");  // not smollm or mistral
  EXPECT_STREQ(FindGgufFamily("gemma3")->model_type, "gemma3_text");
  EXPECT_EQ(FindGgufFamily("phi2"), nullptr);  // not a family here
}

}  // namespace
}  // namespace compressd::engine
