#include "workers/engine/nn/forward.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

absl::Status CheckShape(const Tensor& t, std::vector<int64_t> want, const std::string& name) {
  if (t.empty()) return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " is missing"));
  if (t.shape != want) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has shape [",
                                                   absl::StrJoin(t.shape, ","), "], expected [",
                                                   absl::StrJoin(want, ","), "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckConfig(const LlamaConfig& c) {
  if (c.n_layers <= 0 || c.hidden <= 0 || c.intermediate <= 0 || c.n_heads <= 0 ||
      c.n_kv_heads <= 0 || c.head_dim <= 0 || c.vocab <= 0) {
    return absl::InvalidArgumentError(
        "config: n_layers, hidden, intermediate, n_heads, n_kv_heads, head_dim and vocab must be > "
        "0");
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config: n_kv_heads (", c.n_kv_heads,
                                                   ") must divide n_heads (", c.n_heads, ")"));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: head_dim must be even, got ", c.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SequenceBatch> SequenceBatch::Pack(const std::vector<std::vector<int32_t>>& seqs) {
  if (seqs.empty()) return absl::InvalidArgumentError("batch has no sequences");
  SequenceBatch b;
  b.seq_start.push_back(0);
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (seqs[s].empty())
      return absl::InvalidArgumentError(absl::StrCat("sequence ", s, " is empty"));
    b.ids.insert(b.ids.end(), seqs[s].begin(), seqs[s].end());
    for (size_t p = 0; p < seqs[s].size(); ++p) b.positions.push_back(static_cast<int32_t>(p));
    b.seq_start.push_back(static_cast<int64_t>(b.ids.size()));
    b.max_len = std::max<int64_t>(b.max_len, static_cast<int64_t>(seqs[s].size()));
  }
  return b;
}

namespace {

// The RMSNorm weights to multiply by: Gemma stores them as w - 1, so (1 + w)
// in float32 as transformers computes it; other families use w as stored.
// Lives until the end of the full expression that uses get().
class NormWeight {
 public:
  NormWeight(const LlamaConfig& c, const Tensor& t) : data_(t.data) {
    if (!c.norm_offset || t.empty()) return;
    buf_.resize(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < buf_.size(); ++i) buf_[i] = 1.0f + t.data[i];
    data_ = buf_.data();
  }
  const float* get() const { return data_; }

 private:
  std::vector<float> buf_;
  const float* data_;
};

// Per-layer attention (Gemma's alternating windows) and per-layer MLPs
// (Qwen-MoE's dense layers) need the block's layer.
absl::Status CheckLayer(const LlamaConfig& c, const BlockWeights& w) {
  if ((c.sliding_layers.empty() && c.moe_layers.empty()) || (w.layer >= 0 && w.layer < c.n_layers))
    return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "block has layer index ", w.layer, " but this ", c.model_type,
      " model's layers differ (sliding_window or experts on some layers): the loader must set "
      "it"));
}

absl::Status CheckMlp(const LlamaConfig& c, const ExpertWeights& e, int64_t width,
                      const std::string& p) {
  RETURN_IF_ERROR(CheckShape(e.gate_proj, {width, c.hidden}, p + "gate_proj"));
  RETURN_IF_ERROR(CheckShape(e.up_proj, {width, c.hidden}, p + "up_proj"));
  return CheckShape(e.down_proj, {c.hidden, width}, p + "down_proj");
}

absl::Status CheckMoe(const LlamaConfig& c, const BlockWeights& w, const std::string& p) {
  RETURN_IF_ERROR(CheckShape(w.router, {c.n_experts, c.hidden}, p + "router"));
  if (static_cast<int>(w.experts.size()) != c.n_experts) {
    return absl::InvalidArgumentError(absl::StrCat(p, "experts: ", w.experts.size(),
                                                   " experts, config n_experts is ", c.n_experts));
  }
  for (int e = 0; e < c.n_experts; ++e) {
    RETURN_IF_ERROR(CheckMlp(c, w.experts[static_cast<size_t>(e)], c.expert_intermediate,
                             absl::StrCat(p, "experts.", e, ".")));
  }
  if (c.shared_expert_intermediate <= 0) return absl::OkStatus();
  RETURN_IF_ERROR(
      CheckMlp(c, w.shared_expert, c.shared_expert_intermediate, p + "shared_expert."));
  return CheckShape(w.shared_expert_gate, {1, c.hidden}, p + "shared_expert_gate");
}

}  // namespace

void ScaleEmbeddings(const LlamaConfig& c, int64_t t, float* hidden) {
  if (!c.scale_embeddings) return;
  // sqrt(hidden) rounded to float32 first, as transformers' embed_scale.
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden)));
  for (int64_t i = 0; i < t * c.hidden; ++i) hidden[i] *= scale;
}

absl::Status CheckBlockShapes(const LlamaConfig& c, const BlockWeights& w, int index) {
  const std::string p = absl::StrCat("blocks.", index, ".");
  const int64_t qd = int64_t{c.n_heads} * c.head_dim, kvd = int64_t{c.n_kv_heads} * c.head_dim;
  RETURN_IF_ERROR(CheckShape(w.attn_norm, {c.hidden}, p + "attn_norm"));
  RETURN_IF_ERROR(CheckShape(w.q_proj, {qd, c.hidden}, p + "q_proj"));
  RETURN_IF_ERROR(CheckShape(w.k_proj, {kvd, c.hidden}, p + "k_proj"));
  RETURN_IF_ERROR(CheckShape(w.v_proj, {kvd, c.hidden}, p + "v_proj"));
  RETURN_IF_ERROR(CheckShape(w.o_proj, {c.hidden, qd}, p + "o_proj"));
  if (c.attention_bias) {
    RETURN_IF_ERROR(CheckShape(w.q_bias, {qd}, p + "q_bias"));
    RETURN_IF_ERROR(CheckShape(w.k_bias, {kvd}, p + "k_bias"));
    RETURN_IF_ERROR(CheckShape(w.v_bias, {kvd}, p + "v_bias"));
  }
  if (c.qk_norm) {
    RETURN_IF_ERROR(CheckShape(w.q_norm, {c.qk_norm_whole ? qd : c.head_dim}, p + "q_norm"));
    RETURN_IF_ERROR(CheckShape(w.k_norm, {c.qk_norm_whole ? kvd : c.head_dim}, p + "k_norm"));
  }
  if (c.sandwich_norms) {
    RETURN_IF_ERROR(CheckShape(w.attn_post_norm, {c.hidden}, p + "attn_post_norm"));
    RETURN_IF_ERROR(CheckShape(w.mlp_post_norm, {c.hidden}, p + "mlp_post_norm"));
  }
  RETURN_IF_ERROR(CheckShape(w.mlp_norm, {c.hidden}, p + "mlp_norm"));
  if (LayerIsMoe(c, w.layer >= 0 ? w.layer : index)) return CheckMoe(c, w, p);
  return CheckMlp(c, ExpertWeights{w.gate_proj, w.up_proj, w.down_proj}, c.intermediate, p);
}

void BlockWorkspace::Reserve(const LlamaConfig& c, int64_t t, bool with_resid) {
  const int64_t qd = int64_t{c.n_heads} * c.head_dim, kvd = int64_t{c.n_kv_heads} * c.head_dim;
  norm.resize(t * c.hidden);
  q.resize(t * qd);
  k.resize(t * kvd);
  v.resize(t * kvd);
  attn.resize(t * qd);
  proj.resize(t * c.hidden);
  gate.resize(t * c.intermediate);
  up.resize(t * c.intermediate);
  if (with_resid) resid.resize(t * c.hidden);
}

size_t BlockWorkspace::bytes() const {
  size_t n = 0;
  for (const auto* b :
       {&norm, &q, &k, &v, &attn, &proj, &gate, &up, &resid, &router, &route_weights, &expert_x,
        &expert_gate, &expert_up, &expert_act, &expert_y, &act_in})
    n += b->capacity();
  return (n + route_ids.capacity()) * sizeof(float);
}

absl::StatusOr<LlamaForward> LlamaForward::Create(const LlamaModel* model, Backend* backend,
                                                  ForwardOptions options) {
  if (model == nullptr || backend == nullptr) {
    return absl::InvalidArgumentError("LlamaForward needs a model and a backend");
  }
  if (options.vocab_chunk <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_chunk must be > 0, got ", options.vocab_chunk));
  }
  const LlamaConfig& c = model->config;
  RETURN_IF_ERROR(CheckConfig(c));
  RETURN_IF_ERROR(BuildInvFreq(c).status());
  // Gemma's ops and a partial rotary exist on the CPU only (the CUDA backend
  // takes device pointers, so the (1 + w) norm weights could not be formed).
  // The experts' routing and gathers run on host memory.
  const bool cpu_only = c.norm_offset || c.gelu_gate || c.attn_softcap > 0 ||
                        c.final_softcap > 0 || c.query_pre_attn_scalar > 0 || c.rotary_dims > 0 ||
                        c.n_experts > 0 || c.qk_norm_whole;
  if (cpu_only && absl::StartsWith(backend->name(), "cuda")) {
    return absl::UnimplementedError(absl::StrCat(
        "model_type \"", c.model_type, "\" needs ops the ", backend->name(),
        " backend does not have (Gemma's norms, GeGLU, soft-capping; partial rotary; experts); "
        "run it on the CPU"));
  }
  if (static_cast<int>(model->blocks.size()) != c.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", model->blocks.size(),
                                                   " blocks, config n_layers is ", c.n_layers));
  }
  if (options.blocks_on_demand) return LlamaForward(model, backend, options);
  RETURN_IF_ERROR(CheckShape(model->embed_tokens, {c.vocab, c.hidden}, "embed_tokens"));
  for (int i = 0; i < c.n_layers; ++i) RETURN_IF_ERROR(CheckBlockShapes(c, model->blocks[i], i));
  RETURN_IF_ERROR(CheckShape(model->final_norm, {c.hidden}, "final_norm"));
  RETURN_IF_ERROR(CheckShape(model->lm_head, {c.vocab, c.hidden}, "lm_head"));
  return LlamaForward(model, backend, options);
}

absl::Status LlamaForward::EnsureRope(int64_t n_positions) const {
  // Longrope switches factor sets with the batch's length, as transformers does.
  const bool long_factors = UsesLongFactors(config(), n_positions);
  if (rope_.n_positions >= n_positions && rope_.long_factors == long_factors) {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(rope_, BuildRopeTable(config(), std::max<int64_t>(n_positions, 512),
                                         long_factors));
  if (config().local_rope_theta > 0) {  // Gemma 3's windowed layers: their theta, no scaling
    LlamaConfig local = config();
    local.rope_theta = local.local_rope_theta;
    local.rope_scaling = RopeScaling();
    ASSIGN_OR_RETURN(local_rope_, BuildRopeTable(local, rope_.n_positions));
  }
  return absl::OkStatus();
}

absl::Status LlamaForward::Embed(const SequenceBatch& batch, float* hidden) const {
  if (options_.blocks_on_demand) {
    return absl::FailedPreconditionError("LlamaForward: no embedding with blocks on demand");
  }
  const int vocab = config().vocab;
  for (int64_t r = 0; r < batch.tokens(); ++r) {
    if (batch.ids[r] < 0 || batch.ids[r] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", batch.ids[r], " at row ", r, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  backend_->Embed(model_->embed_tokens.data, config().hidden, batch.ids.data(), batch.tokens(),
                  hidden);
  ScaleEmbeddings(config(), batch.tokens(), hidden);
  return absl::OkStatus();
}

const float* LlamaForward::LinearIn(const BlockWeights& w, uint32_t which, const float* x,
                                    int64_t t, int64_t dim, BlockWorkspace* ws) const {
  if ((w.act_quant & which) == 0) return x;
  ws->act_in.resize(static_cast<size_t>(t * dim));
  backend_->QuantizeActivations(x, t, dim, w.act_fp8 ? ActQuantType::kFp8E4m3 : ActQuantType::kInt8,
                                ws->act_in.data());
  return ws->act_in.data();
}

void LlamaForward::AttentionHalf(const BlockWeights& w, const SequenceBatch& batch, const float* x,
                                 float* norm, float* attn, float* x_out, BlockWorkspace* ws) const {
  const LlamaConfig& c = config();
  const int64_t t = batch.tokens();
  const int64_t qd = int64_t{c.n_heads} * c.head_dim, kvd = int64_t{c.n_kv_heads} * c.head_dim;
  Backend& be = *backend_;
  be.RmsNorm(x, NormWeight(c, w.attn_norm).get(), t, c.hidden, c.rms_norm_eps, norm);
  const uint32_t aq = w.act_quant;
  const float* qkv_q = LinearIn(w, kActQProj | kActKProj | kActVProj, norm, t, c.hidden, ws);
  be.Linear(aq & kActQProj ? qkv_q : norm, t, c.hidden, w.q_proj.data, w.q_bias.data, qd,
            ws->q.data());
  be.Linear(aq & kActKProj ? qkv_q : norm, t, c.hidden, w.k_proj.data, w.k_bias.data, kvd,
            ws->k.data());
  be.Linear(aq & kActVProj ? qkv_q : norm, t, c.hidden, w.v_proj.data, w.v_bias.data, kvd,
            ws->v.data());
  if (c.qk_norm_whole) {  // OLMoE: q and k RMS-normalised over the whole projection
    be.RmsNorm(ws->q.data(), NormWeight(c, w.q_norm).get(), t, qd, c.rms_norm_eps, ws->q.data());
    be.RmsNorm(ws->k.data(), NormWeight(c, w.k_norm).get(), t, kvd, c.rms_norm_eps, ws->k.data());
  } else if (c.qk_norm) {  // Qwen3, Gemma 3: each head's q and k RMS-normalised over head_dim
    be.RmsNorm(ws->q.data(), NormWeight(c, w.q_norm).get(), t * c.n_heads, c.head_dim,
               c.rms_norm_eps, ws->q.data());
    be.RmsNorm(ws->k.data(), NormWeight(c, w.k_norm).get(), t * c.n_kv_heads, c.head_dim,
               c.rms_norm_eps, ws->k.data());
  }
  // Gemma: windowed layers alternate with full ones, and Gemma 3's have a rope of their own.
  const bool windowed = LayerIsWindowed(c, w.layer);
  const RopeTable& rope = windowed && c.local_rope_theta > 0 ? local_rope_ : rope_;
  be.Rope(ws->q.data(), t, c.n_heads, c.head_dim, batch.positions.data(), rope);
  be.Rope(ws->k.data(), t, c.n_kv_heads, c.head_dim, batch.positions.data(), rope);
  AttentionShape shape{c.n_heads, c.n_kv_heads, c.head_dim, windowed ? c.sliding_window : 0};
  if (c.query_pre_attn_scalar > 0) shape.scale = 1.0f / std::sqrt(c.query_pre_attn_scalar);
  shape.softcap = c.attn_softcap;
  be.Attention(ws->q.data(), ws->k.data(), ws->v.data(), batch.seq_start.data(), batch.n_seqs(),
               shape, attn);
  be.Linear(LinearIn(w, kActOProj, attn, t, qd, ws), t, qd, w.o_proj.data, nullptr, c.hidden,
            ws->proj.data());
  if (c.sandwich_norms) {
    be.RmsNorm(ws->proj.data(), NormWeight(c, w.attn_post_norm).get(), t, c.hidden,
               c.rms_norm_eps, ws->proj.data());
  }
  if (x_out != x) std::memcpy(x_out, x, sizeof(float) * t * c.hidden);
  be.Add(x_out, ws->proj.data(), t * c.hidden);
}

void LlamaForward::MlpHalf(const BlockWeights& w, int64_t t, const float* x, float* norm,
                           float* act, float* x_out, BlockWorkspace* ws,
                           const BlockTaps* taps) const {
  const LlamaConfig& c = config();
  Backend& be = *backend_;
  be.RmsNorm(x, NormWeight(c, w.mlp_norm).get(), t, c.hidden, c.rms_norm_eps, norm);
  if (LayerIsMoe(c, w.layer)) {
    MoeMlp(w, t, norm, ws->proj.data(), taps, ws);
    if (x_out == nullptr) return;
    if (c.sandwich_norms) {
      be.RmsNorm(ws->proj.data(), NormWeight(c, w.mlp_post_norm).get(), t, c.hidden,
                 c.rms_norm_eps, ws->proj.data());
    }
    if (x_out != x) std::memcpy(x_out, x, sizeof(float) * t * c.hidden);
    be.Add(x_out, ws->proj.data(), t * c.hidden);
    return;
  }
  const uint32_t aq = w.act_quant;
  const float* in_q = LinearIn(w, kActGateProj | kActUpProj, norm, t, c.hidden, ws);
  be.Linear(aq & kActGateProj ? in_q : norm, t, c.hidden, w.gate_proj.data, nullptr, c.intermediate,
            ws->gate.data());
  be.Linear(aq & kActUpProj ? in_q : norm, t, c.hidden, w.up_proj.data, nullptr, c.intermediate,
            ws->up.data());
  if (c.gelu_gate) {
    be.GeluTanhMul(ws->gate.data(), ws->up.data(), t * c.intermediate, act);
  } else {
    be.SiluMul(ws->gate.data(), ws->up.data(), t * c.intermediate, act);
  }
  if (x_out == nullptr) return;
  be.Linear(LinearIn(w, kActDownProj, act, t, c.intermediate, ws), t, c.intermediate,
            w.down_proj.data, nullptr, c.hidden, ws->proj.data());
  if (c.sandwich_norms) {
    be.RmsNorm(ws->proj.data(), NormWeight(c, w.mlp_post_norm).get(), t, c.hidden,
               c.rms_norm_eps, ws->proj.data());
  }
  if (x_out != x) std::memcpy(x_out, x, sizeof(float) * t * c.hidden);
  be.Add(x_out, ws->proj.data(), t * c.hidden);
}

absl::Status LlamaForward::RunBlock(const BlockWeights& w, const SequenceBatch& batch,
                                    float* hidden, BlockWorkspace* ws) const {
  RETURN_IF_ERROR(CheckLayer(config(), w));
  RETURN_IF_ERROR(EnsureRope(batch.max_len));
  ws->Reserve(config(), batch.tokens(), /*with_resid=*/false);
  AttentionHalf(w, batch, hidden, ws->norm.data(), ws->attn.data(), hidden, ws);
  MlpHalf(w, batch.tokens(), hidden, ws->norm.data(), ws->gate.data(), hidden, ws);
  return absl::OkStatus();
}

absl::Status LlamaForward::RunBlockParts(const BlockWeights& w, const BlockParts& parts,
                                         const SequenceBatch& batch, float* hidden,
                                         BlockWorkspace* ws) const {
  RETURN_IF_ERROR(CheckLayer(config(), w));
  RETURN_IF_ERROR(EnsureRope(batch.max_len));
  ws->Reserve(config(), batch.tokens(), /*with_resid=*/false);
  if (parts.attention) {
    AttentionHalf(w, batch, hidden, ws->norm.data(), ws->attn.data(), hidden, ws);
  }
  if (parts.mlp) MlpHalf(w, batch.tokens(), hidden, ws->norm.data(), ws->gate.data(), hidden, ws);
  return absl::OkStatus();
}

absl::Status LlamaForward::BlockLinearInputs(const BlockWeights& w, const SequenceBatch& batch,
                                             const float* hidden, const BlockTaps& taps,
                                             BlockWorkspace* ws) const {
  const LlamaConfig& c = config();
  RETURN_IF_ERROR(CheckLayer(c, w));
  const bool moe = LayerIsMoe(c, w.layer);
  if (!taps.attn_in || !taps.o_in || !taps.mlp_in || (!moe && !taps.down_in) ||
      (moe && (!taps.routes || !taps.expert_down_in ||
               (c.shared_expert_intermediate > 0 && !taps.shared_down_in)))) {
    return absl::InvalidArgumentError(
        "BlockLinearInputs needs a tap buffer for every linear input of the block");
  }
  RETURN_IF_ERROR(EnsureRope(batch.max_len));
  ws->Reserve(c, batch.tokens(), /*with_resid=*/true);
  AttentionHalf(w, batch, hidden, taps.attn_in, taps.o_in, ws->resid.data(), ws);
  MlpHalf(w, batch.tokens(), ws->resid.data(), taps.mlp_in, moe ? ws->gate.data() : taps.down_in,
          nullptr, ws, &taps);
  return absl::OkStatus();
}

void LlamaForward::FinalNorm(const float* hidden, int64_t t, float* out) const {
  backend_->RmsNorm(hidden, NormWeight(config(), model_->final_norm).get(), t, config().hidden,
                    config().rms_norm_eps, out);
}

absl::Status LlamaForward::LmHeadChunk(const float* normed, int64_t t, int64_t v0, int64_t n,
                                       float* logits) const {
  const int64_t hidden = config().hidden;
  const float* rows = model_->lm_head.data + v0 * hidden;
  if (options_.lm_head_rows) {
    lm_rows_.resize(n * hidden);
    RETURN_IF_ERROR(options_.lm_head_rows(v0, n, lm_rows_.data()));
    rows = lm_rows_.data();
  }
  backend_->Linear(normed, t, hidden, rows, nullptr, n, logits);
  if (config().final_softcap > 0) backend_->Softcap(logits, t * n, config().final_softcap);
  return absl::OkStatus();
}

absl::Status LlamaForward::LmHeadChunks(
    const float* normed, int64_t t,
    const std::function<absl::Status(int64_t, int64_t, const float*)>& fn) const {
  const int64_t vocab = config().vocab;
  const int64_t chunk = std::min(options_.vocab_chunk, vocab);
  std::vector<float> logits(t * chunk);
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t n = std::min(chunk, vocab - v0);
    RETURN_IF_ERROR(LmHeadChunk(normed, t, v0, n, logits.data()));
    RETURN_IF_ERROR(fn(v0, n, logits.data()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> LlamaForward::FinalHidden(const SequenceBatch& batch) const {
  const int64_t t = batch.tokens();
  std::vector<float> hidden(t * config().hidden);
  RETURN_IF_ERROR(Embed(batch, hidden.data()));
  BlockWorkspace ws;
  for (int i = 0; i < config().n_layers; ++i) {
    RETURN_IF_ERROR(RunBlock(model_->blocks[i], batch, hidden.data(), &ws));
  }
  std::vector<float> normed(t * config().hidden);
  FinalNorm(hidden.data(), t, normed.data());
  return normed;
}

absl::StatusOr<std::vector<float>> LlamaForward::Logits(const SequenceBatch& batch) const {
  ASSIGN_OR_RETURN(std::vector<float> normed, FinalHidden(batch));
  const int64_t t = batch.tokens(), vocab = config().vocab;
  std::vector<float> out(t * vocab);
  RETURN_IF_ERROR(LmHeadChunks(normed.data(), t, [&](int64_t v0, int64_t n, const float* chunk) {
    for (int64_t r = 0; r < t; ++r) {
      std::memcpy(&out[r * vocab + v0], chunk + r * n, sizeof(float) * n);
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace compressd::engine
