#include "tests/unit/engine/model/tiny_llama.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/safetensors_writer.h"

namespace compressd::testing {
namespace {

namespace fs = std::filesystem;

// splitmix64: portable, so the same seed gives the same model everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) / 9007199254740992.0; }
  double Normal() {  // Box-Muller
    return std::sqrt(-2.0 * std::log(Uniform())) * std::cos(6.283185307179586 * Uniform());
  }

 private:
  uint64_t state_;
};

struct Tensor {
  std::vector<int64_t> shape;
  std::string bytes;
};

absl::StatusOr<Tensor> MakeTensor(Rng& rng, std::vector<int64_t> shape, double mean, double stddev,
                                  engine::DType dtype) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(mean + stddev * rng.Normal());
  ASSIGN_OR_RETURN(std::string bytes, engine::FloatsToBytes(dtype, v.data(), v.size()));
  return Tensor{std::move(shape), std::move(bytes)};
}

nlohmann::json ConfigJson(const TinyLlamaOptions& o) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", o.hidden},
          {"intermediate_size", o.intermediate},
          {"num_hidden_layers", o.layers},
          {"num_attention_heads", o.heads},
          {"num_key_value_heads", o.kv_heads},
          {"vocab_size", o.vocab},
          {"hidden_act", "silu"},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"max_position_embeddings", 128},
          {"initializer_range", 0.02},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", TorchDTypeName(o.dtype)}};
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

}  // namespace

std::string TorchDTypeName(engine::DType dtype) {
  switch (dtype) {
    case engine::DType::kF16:
      return "float16";
    case engine::DType::kBF16:
      return "bfloat16";
    default:
      return "float32";
  }
}

std::vector<std::string> TinyLlamaProjWeights(const TinyLlamaOptions& o) {
  std::vector<std::string> names;
  for (int l = 0; l < o.layers; ++l) {
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      names.push_back(absl::StrCat("model.layers.", l, ".", m, ".weight"));
    }
  }
  return names;
}

absl::Status WriteTinyLlama(const std::string& dir, const TinyLlamaOptions& o) {
  if (!IsConvertibleFloat(o.dtype)) return absl::InvalidArgumentError("dtype: F32, F16 or BF16");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  Rng rng(o.seed);
  const int64_t head_dim = o.hidden / o.heads, kv = o.kv_heads * head_dim;
  // Insertion order fixes the random stream; shard 0 holds the embedding and
  // the first half of the layers, shard 1 the rest.
  std::vector<std::pair<std::string, int>> order;  // name -> shard
  std::map<std::string, Tensor> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double mean, double sd,
                 int shard) -> absl::Status {
    ASSIGN_OR_RETURN(tensors[name], MakeTensor(rng, std::move(shape), mean, sd, o.dtype));
    order.emplace_back(name, shard);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(add("model.embed_tokens.weight", {o.vocab, o.hidden}, 0, o.weight_std, 0));
  for (int l = 0; l < o.layers; ++l) {
    const int shard = l < (o.layers + 1) / 2 ? 0 : 1;
    const std::string p = absl::StrCat("model.layers.", l, ".");
    RETURN_IF_ERROR(add(p + "input_layernorm.weight", {o.hidden}, 1.0, 0.05, shard));
    RETURN_IF_ERROR(
        add(p + "self_attn.q_proj.weight", {o.hidden, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(add(p + "self_attn.k_proj.weight", {kv, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(add(p + "self_attn.v_proj.weight", {kv, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(
        add(p + "self_attn.o_proj.weight", {o.hidden, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(add(p + "post_attention_layernorm.weight", {o.hidden}, 1.0, 0.05, shard));
    RETURN_IF_ERROR(
        add(p + "mlp.gate_proj.weight", {o.intermediate, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(
        add(p + "mlp.up_proj.weight", {o.intermediate, o.hidden}, 0, o.weight_std, shard));
    RETURN_IF_ERROR(
        add(p + "mlp.down_proj.weight", {o.hidden, o.intermediate}, 0, o.weight_std, shard));
  }
  RETURN_IF_ERROR(add("model.norm.weight", {o.hidden}, 1.0, 0.05, 1));
  RETURN_IF_ERROR(add("lm_head.weight", {o.vocab, o.hidden}, 0, o.weight_std, 1));

  const int num_shards = o.sharded ? 2 : 1;
  std::vector<std::vector<engine::TensorToWrite>> shards(num_shards);
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  auto shard_name = [&](int s) {
    return o.sharded ? absl::StrCat("model-0000", s + 1, "-of-00002.safetensors")
                     : std::string("model.safetensors");
  };
  for (const auto& [name, shard] : order) {
    const int s = o.sharded ? shard : 0;
    const Tensor& t = tensors[name];
    shards[s].push_back({name, o.dtype, t.shape, t.bytes});
    weight_map[name] = shard_name(s);
    total += t.bytes.size();
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  for (int s = 0; s < num_shards; ++s) {
    RETURN_IF_ERROR(
        engine::WriteSafetensors((fs::path(dir) / shard_name(s)).string(), shards[s], metadata));
  }
  if (o.sharded) {
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    RETURN_IF_ERROR(WriteText(fs::path(dir) / "model.safetensors.index.json", index.dump(2)));
  }
  return WriteText(fs::path(dir) / "config.json", ConfigJson(o).dump(2));
}

std::string ByteLevelTokenizerJson() {
  // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
  // the others for code points 256, 257, ... in byte order.
  nlohmann::json vocab = nlohmann::json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const unsigned cp = printable ? static_cast<unsigned>(b) : static_cast<unsigned>(next++);
    std::string utf8;
    if (cp < 0x80) {
      utf8 = std::string(1, static_cast<char>(cp));
    } else {
      utf8 = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    vocab[utf8] = b;
  }
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", true},
        {"use_regex", false}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return j.dump();
}

}  // namespace compressd::testing
