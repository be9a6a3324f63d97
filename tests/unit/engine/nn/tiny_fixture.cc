#include "tests/unit/engine/nn/tiny_fixture.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace compressd::engine::testing {
namespace {

Tensor* FindSlot(LlamaModel* m, const std::string& name) {
  if (name == "embed_tokens") return &m->embed_tokens;
  if (name == "final_norm") return &m->final_norm;
  if (name == "lm_head") return &m->lm_head;
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  if (parts.size() < 3 || parts[0] != "blocks") return nullptr;
  const size_t i = std::stoul(parts[1]);
  if (i >= m->blocks.size()) return nullptr;
  BlockWeights& b = m->blocks[i];
  const std::string& f = parts[2];
  // Mixture of experts: router, experts.<e>.<proj>, shared_expert.<proj>, shared_expert_gate.
  if (f == "router") return &b.router;
  if (f == "shared_expert_gate") return &b.shared_expert_gate;
  ExpertWeights* expert = nullptr;
  std::string proj;
  if (f == "experts" && parts.size() == 5) {
    const size_t e = std::stoul(parts[3]);
    if (b.experts.size() <= e) b.experts.resize(e + 1);
    expert = &b.experts[e];
    proj = parts[4];
  } else if (f == "shared_expert" && parts.size() == 4) {
    expert = &b.shared_expert;
    proj = parts[3];
  } else if (parts.size() != 3) {
    return nullptr;
  }
  if (expert != nullptr) {
    if (proj == "gate_proj") return &expert->gate_proj;
    if (proj == "up_proj") return &expert->up_proj;
    if (proj == "down_proj") return &expert->down_proj;
    return nullptr;
  }
  for (auto [key, slot] :
       std::initializer_list<std::pair<const char*, Tensor*>>{{"attn_norm", &b.attn_norm},
                                                              {"q_proj", &b.q_proj},
                                                              {"k_proj", &b.k_proj},
                                                              {"v_proj", &b.v_proj},
                                                              {"o_proj", &b.o_proj},
                                                              {"q_bias", &b.q_bias},
                                                              {"k_bias", &b.k_bias},
                                                              {"v_bias", &b.v_bias},
                                                              {"q_norm", &b.q_norm},
                                                              {"k_norm", &b.k_norm},
                                                              {"mlp_norm", &b.mlp_norm},
                                                              {"gate_proj", &b.gate_proj},
                                                              {"up_proj", &b.up_proj},
                                                              {"down_proj", &b.down_proj},
                                                              {"attn_post_norm", &b.attn_post_norm},
                                                              {"mlp_post_norm", &b.mlp_post_norm}}) {
    if (f == key) return slot;
  }
  return nullptr;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

LlamaConfig ConfigFromJson(const nlohmann::json& j, const std::string& model_type) {
  LlamaConfig c;
  c.model_type = model_type;
  c.n_layers = j["n_layers"];
  c.hidden = j["hidden"];
  c.intermediate = j["intermediate"];
  c.n_heads = j["n_heads"];
  c.n_kv_heads = j["n_kv_heads"];
  c.head_dim = j["head_dim"];
  c.vocab = j["vocab"];
  c.max_position = j["max_position"];
  c.rms_norm_eps = j["rms_norm_eps"];
  c.rope_theta = j["rope_theta"];
  c.tie_word_embeddings = j["tie_word_embeddings"];
  c.attention_bias = j["attention_bias"];
  c.qk_norm = j.value("qk_norm", false);
  c.sliding_window = j.value("sliding_window", 0);
  const auto& rs = j["rope_scaling"];
  c.rope_scaling.type = rs["type"];
  c.rope_scaling.factor = rs["factor"];
  c.rope_scaling.low_freq_factor = rs["low_freq_factor"];
  c.rope_scaling.high_freq_factor = rs["high_freq_factor"];
  c.rope_scaling.original_max_position_embeddings = rs["original_max_position_embeddings"];
  c.rope_scaling.short_factor = rs.value("short_factor", std::vector<float>{});
  c.rope_scaling.long_factor = rs.value("long_factor", std::vector<float>{});
  c.rope_scaling.attention_factor = rs.value("attention_factor", 1.0f);
  c.rotary_dims = j.value("rotary_dims", 0) == c.head_dim ? 0 : j.value("rotary_dims", 0);
  c.fused_projections = model_type == "phi3";
  if (j.value("gemma", false)) {
    c.norm_offset = c.gelu_gate = c.sandwich_norms = c.scale_embeddings = true;
    c.query_pre_attn_scalar = j["query_pre_attn_scalar"];
    c.attn_softcap = j["attn_softcap"];
    c.final_softcap = j["final_softcap"];
    c.sliding_layers = j["sliding_layers"].get<std::vector<bool>>();
    c.local_rope_theta = j["local_rope_theta"];
  }
  if (j.contains("moe") && !j["moe"].is_null()) {
    const auto& m = j["moe"];
    c.n_experts = m["n_experts"];
    c.experts_per_token = m["experts_per_token"];
    c.expert_intermediate = m["expert_intermediate"];
    c.norm_topk_prob = m["norm_topk_prob"];
    c.shared_expert_intermediate = m["shared_expert_intermediate"];
    c.moe_layers = m["moe_layers"].get<std::vector<bool>>();
    c.qk_norm_whole = m["qk_norm_whole"];
    c.mixtral_names = m["mixtral_names"];
  }
  return c;
}

}  // namespace

absl::StatusOr<TinyFixture> LoadTinyFixture(const std::string& variant) {
  const char* src = std::getenv("COMPRESSD_SOURCE_DIR");
  const std::string dir =
      absl::StrCat(src != nullptr ? src : ".", "/tests/golden/fixtures/nn_tiny_", variant);
  auto json_text = ReadFile(dir + ".json");
  if (!json_text.ok()) return json_text.status();
  auto bin = ReadFile(dir + ".bin");
  if (!bin.ok()) return bin.status();
  const nlohmann::json j = nlohmann::json::parse(*json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(dir, ".json is not JSON"));
  auto data = std::make_shared<std::vector<float>>(bin->size() / sizeof(float));
  std::memcpy(data->data(), bin->data(), data->size() * sizeof(float));

  TinyFixture f;
  f.model.config = ConfigFromJson(j["config"], j["model_type"]);
  if (j.contains("moe") && !j["moe"].is_null()) {
    nlohmann::json c = j["config"];
    c["moe"] = j["moe"];
    f.model.config = ConfigFromJson(c, j["model_type"]);
  }
  f.model.blocks.resize(f.model.config.n_layers);
  for (int l = 0; l < f.model.config.n_layers; ++l) f.model.blocks[l].layer = l;
  for (const auto& t : j["tensors"]) {
    Tensor* slot = FindSlot(&f.model, t["name"]);
    if (slot == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("unknown tensor ", std::string(t["name"])));
    slot->shape = t["shape"].get<std::vector<int64_t>>();
    slot->data = data->data() + t["offset"].get<int64_t>();
    slot->owner = data;
  }
  f.sequences = j["sequences"].get<std::vector<std::vector<int32_t>>>();
  const int64_t off = j["logits_offset"];
  const std::vector<int64_t> shape = j["logits_shape"];
  f.logits.assign(data->begin() + off, data->begin() + off + shape[0] * shape[1]);
  return f;
}

LlamaConfig SmallConfig() {
  LlamaConfig c;
  c.model_type = "llama";
  c.n_layers = 2;
  c.hidden = 64;
  c.intermediate = 96;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.vocab = 96;
  c.max_position = 1024;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  return c;
}

LlamaModel RandomModel(const LlamaConfig& c, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto mat = [&](int64_t rows, int64_t cols) {
    std::vector<float> v(rows * cols);
    for (float& x : v) x = scale * normal(rng);
    return Tensor::Owned({rows, cols}, std::move(v));
  };
  auto vec = [&](int64_t n, float base, float sd) {
    std::vector<float> v(n);
    for (float& x : v) x = base + sd * normal(rng);
    return Tensor::Owned({n}, std::move(v));
  };
  const int64_t qd = int64_t{c.n_heads} * c.head_dim, kvd = int64_t{c.n_kv_heads} * c.head_dim;
  LlamaModel m;
  m.config = c;
  m.embed_tokens = mat(c.vocab, c.hidden);
  for (int i = 0; i < c.n_layers; ++i) {
    BlockWeights b;
    b.attn_norm = vec(c.hidden, 1.0f, 0.2f);
    b.q_proj = mat(qd, c.hidden);
    b.k_proj = mat(kvd, c.hidden);
    b.v_proj = mat(kvd, c.hidden);
    b.o_proj = mat(c.hidden, qd);
    if (c.attention_bias) {
      b.q_bias = vec(qd, 0.0f, scale);
      b.k_bias = vec(kvd, 0.0f, scale);
      b.v_bias = vec(kvd, 0.0f, scale);
    }
    b.mlp_norm = vec(c.hidden, 1.0f, 0.2f);
    b.gate_proj = mat(c.intermediate, c.hidden);
    b.up_proj = mat(c.intermediate, c.hidden);
    b.down_proj = mat(c.hidden, c.intermediate);
    m.blocks.push_back(std::move(b));
  }
  m.final_norm = vec(c.hidden, 1.0f, 0.2f);
  m.lm_head = c.tie_word_embeddings ? m.embed_tokens : mat(c.vocab, c.hidden);
  return m;
}

std::vector<int32_t> RandomTokens(int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> out(n);
  for (int32_t& t : out) t = dist(rng);
  return out;
}

}  // namespace compressd::engine::testing
