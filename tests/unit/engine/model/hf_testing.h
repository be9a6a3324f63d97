// Helpers of the HF loader tests: a TinyLlama written as an HF checkpoint
// directory (config.json and safetensors, optionally sharded or in another
// dtype, a tensor dropped or added) and checks of what was loaded.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/model/tiny_llama_gguf.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/gguf/tensor_map.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine::hf_testing {

using nlohmann::json;
using testing::TinyLlama;
using testing::TinyLlamaSpec;

inline json ConfigFor(const TinyLlamaSpec& s, const std::string& model_type = "llama") {
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

inline HfDir WithDrop(HfDir d, std::string drop) {
  d.drop = std::move(drop);
  return d;
}
inline HfDir WithExtra(HfDir d, std::string extra) {
  d.extra = std::move(extra);
  return d;
}

// Writes `tiny`'s HF weights as a checkpoint directory; returns its path.
inline std::string WriteHfDir(const std::string& name, const TinyLlama& tiny, const HfDir& d) {
  namespace fs = std::filesystem;
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

inline void ExpectValues(const Tensor& t, const std::vector<float>& want,
                  const std::vector<int64_t>& shape, const std::string& name) {
  ASSERT_EQ(t.shape, shape) << name;
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << name;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(t.data[i], want[i]) << name << " element " << i;
}

inline void ExpectModelMatches(const LlamaModel& m, const TinyLlama& tiny, const TinyLlamaSpec& spec) {
  ExpectValues(m.embed_tokens, tiny.hf.at("model.embed_tokens.weight"),
               tiny.hf_shape.at("model.embed_tokens.weight"), "embed");
  ExpectValues(m.final_norm, tiny.hf.at("model.norm.weight"), {spec.hidden}, "norm");
  ASSERT_EQ(m.blocks.size(), static_cast<size_t>(spec.n_layers));
  for (int l = 0; l < spec.n_layers; ++l) {
    for (const BlockTensorSpec& s : BlockTensorSpecs()) {
      const std::string name = absl::StrCat("model.layers.", l, ".", s.hf_suffix);
      if ((s.is_bias && !spec.attention_bias) || (s.is_qk_norm && !spec.qk_norm) ||
          s.is_sandwich_norm) {
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

inline absl::Status LoadError(const std::string& dir) {
  absl::StatusOr<LlamaModel> m = LoadModel(dir);
  return m.ok() ? absl::OkStatus() : m.status();
}

}  // namespace compressd::engine::hf_testing
