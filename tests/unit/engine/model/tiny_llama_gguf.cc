#include "tests/unit/engine/model/tiny_llama_gguf.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/gguf/gguf_model.h"

namespace compressd::engine::testing {
namespace {

struct Builder {
  const TinyLlamaSpec& spec;
  GgufWriter w;
  TinyLlama out;
  std::mt19937 rng;

  void Key(const std::string& key, uint32_t v) {
    if (key != spec.drop_key) w.AddU32(key, v);
  }
  void KeyF(const std::string& key, float v) {
    if (key != spec.drop_key) w.AddF32(key, v);
  }

  // Adds HF tensor `hf_name` [rows, cols] (cols = 0 for 1-D) as GGUF tensor
  // `gguf_name`, rows permuted with `head_dim` when non-zero.
  void Tensor(const std::string& gguf_name, const std::string& hf_name, int rows, int cols,
              int head_dim, bool quantizable) {
    if (gguf_name == spec.drop_tensor) return;
    if (gguf_name == spec.widen_tensor) ++rows;
    const int width = cols == 0 ? 1 : cols;
    const int64_t n = int64_t{rows} * width;
    const bool q8 = spec.quantize && quantizable && cols % 32 == 0 && cols > 0;
    std::vector<int8_t> q(n);
    std::vector<float> hf(n);
    for (int64_t i = 0; i < n; ++i) {
      q[i] = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      hf[i] = q[i] / 64.0f;  // exact in Q8_0 with d = 2^-6, and in F32
    }
    if (gguf_name != spec.widen_tensor) {
      out.hf[hf_name] = hf;
      out.hf_shape[hf_name] =
          cols == 0 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
    }
    // GGUF element order: row g holds HF row UnpermutedRow(g) when permuted.
    std::vector<int8_t> gq(n);
    for (int g = 0; g < (cols == 0 ? n : rows); ++g) {
      const int src = head_dim ? static_cast<int>(UnpermutedRow(g, head_dim)) : g;
      for (int c = 0; c < width; ++c) gq[int64_t{g} * width + c] = q[int64_t{src} * width + c];
    }
    std::vector<uint64_t> ne = cols == 0 ? std::vector<uint64_t>{uint64_t(rows)}
                                         : std::vector<uint64_t>{uint64_t(cols), uint64_t(rows)};
    if (!q8) {
      std::vector<float> f(n);
      for (int64_t i = 0; i < n; ++i) f[i] = gq[i] / 64.0f;
      w.AddF32Tensor(gguf_name, ne, f);
      return;
    }
    std::string data;
    const uint16_t d = 0x2400;  // 2^-6 as fp16
    for (int64_t b = 0; b < n / 32; ++b) {
      Put<uint16_t>(&data, d);
      data.append(reinterpret_cast<const char*>(&gq[b * 32]), 32);
    }
    w.AddTensor(gguf_name, ne, static_cast<uint32_t>(GgmlType::kQ8_0), data);
  }
};

}  // namespace

TinyLlama BuildTinyLlama(const TinyLlamaSpec& s, unsigned seed) {
  Builder b{s, GgufWriter(), TinyLlama(), std::mt19937(seed)};
  const int hd = s.hidden / s.n_heads;
  if (s.drop_key != "general.architecture") b.w.AddString("general.architecture", "llama");
  b.Key("llama.block_count", s.n_layers);
  b.Key("llama.context_length", 256);
  b.Key("llama.embedding_length", s.hidden);
  b.Key("llama.feed_forward_length", s.intermediate);
  b.Key("llama.attention.head_count", s.n_heads);
  b.Key("llama.attention.head_count_kv", s.n_kv_heads);
  b.KeyF("llama.rope.freq_base", s.rope_theta);
  b.KeyF("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  b.Key("llama.rope.dimension_count", hd);
  b.Key("tokenizer.ggml.bos_token_id", 1);
  b.Key("tokenizer.ggml.eos_token_id", 2);
  b.Tensor("token_embd.weight", "model.embed_tokens.weight", s.vocab, s.hidden, 0, true);
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string g = absl::StrCat("blk.", l, "."), h = absl::StrCat("model.layers.", l, ".");
    b.Tensor(g + "attn_norm.weight", h + "input_layernorm.weight", s.hidden, 0, 0, false);
    b.Tensor(g + "attn_q.weight", h + "self_attn.q_proj.weight", s.n_heads * hd, s.hidden, hd,
             true);
    b.Tensor(g + "attn_k.weight", h + "self_attn.k_proj.weight", s.n_kv_heads * hd, s.hidden, hd,
             true);
    b.Tensor(g + "attn_v.weight", h + "self_attn.v_proj.weight", s.n_kv_heads * hd, s.hidden, 0,
             true);
    b.Tensor(g + "attn_output.weight", h + "self_attn.o_proj.weight", s.hidden, s.n_heads * hd, 0,
             true);
    b.Tensor(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", s.hidden, 0, 0, false);
    b.Tensor(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", s.intermediate, s.hidden, 0, true);
    b.Tensor(g + "ffn_up.weight", h + "mlp.up_proj.weight", s.intermediate, s.hidden, 0, true);
    b.Tensor(g + "ffn_down.weight", h + "mlp.down_proj.weight", s.hidden, s.intermediate, 0, true);
    if (s.attention_bias) {
      b.Tensor(g + "attn_q.bias", h + "self_attn.q_proj.bias", s.n_heads * hd, 0, hd, false);
      b.Tensor(g + "attn_k.bias", h + "self_attn.k_proj.bias", s.n_kv_heads * hd, 0, hd, false);
      b.Tensor(g + "attn_v.bias", h + "self_attn.v_proj.bias", s.n_kv_heads * hd, 0, 0, false);
    }
    if (s.qk_norm) {
      b.Tensor(g + "attn_q_norm.weight", h + "self_attn.q_norm.weight", hd, 0, 0, false);
      b.Tensor(g + "attn_k_norm.weight", h + "self_attn.k_norm.weight", hd, 0, 0, false);
    }
  }
  b.Tensor("output_norm.weight", "model.norm.weight", s.hidden, 0, 0, false);
  if (!s.tied) b.Tensor("output.weight", "lm_head.weight", s.vocab, s.hidden, 0, true);
  if (!s.rope_freqs.empty()) {
    b.w.AddF32Tensor("rope_freqs.weight", {s.rope_freqs.size()}, s.rope_freqs);
  }
  if (!s.extra_tensor.empty()) b.w.AddF32Tensor(s.extra_tensor, {4}, {1, 2, 3, 4});
  b.out.bytes = b.w.Build();
  return std::move(b.out);
}

}  // namespace compressd::engine::testing
