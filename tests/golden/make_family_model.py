#!/usr/bin/env python3
"""Writes a tiny random-weight model of one decoder family, built offline from
that family's transformers config class (no hub): float32 HF safetensors,
config.json, and SmolLM2's real tokenizer (from its GGUF), so text from
../shared/data tokenizes as it would for a real model.

Weights are N(0, 0.15) and norm weights 1 + N(0, 0.2) (as
tests/golden/nn_reference.py), large enough that attention is far from
uniform and every family-specific op (q/k/v biases, per-head q/k norms)
changes the logits.

usage: make_family_model.py FAMILY OUT_DIR --tokenizer-from MODEL.gguf [--seed N]
  FAMILY: llama | mistral | phi3 | qwen2 | qwen3 | gemma2 | gemma3 |
          mixtral | qwen2_moe | qwen3_moe | olmoe

--dead-experts N (mixture-of-experts families): the last N experts of every
MoE layer can never be routed a token, whatever the text: residual dimension 0
is held at 1 (its embedding column is 1, every output projection's row 0 is 0),
its MLP-norm weight is 30, and those experts' router rows are -5 there and 0
elsewhere (the others' are 0 there), so their logits are below -40 while the
others' are O(1). The
calibration then routes them nothing, which is what the service's fallback
for starved experts is tested on.
"""
import argparse
import os

import torch
import transformers

COMMON = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
              max_position_embeddings=2048, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)
FAMILIES = {
    # Llama 3 style: untied head.
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(tie_word_embeddings=False, rope_theta=500000.0)),
    # Mistral 7B v0.1 style: every layer attends to the last 32 positions
    # (the evaluation windows are 128 long).
    "mistral": ("MistralConfig", "MistralForCausalLM",
                dict(tie_word_embeddings=False, rope_theta=10000.0, sliding_window=32)),
    # Qwen2 / 2.5: q/k/v biases, tied embeddings.
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
    # Qwen3: per-head q/k RMSNorm, head_dim (48) other than hidden / heads (32).
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM",
              dict(tie_word_embeddings=True, rope_theta=1000000.0, head_dim=48,
                   attention_bias=False, use_sliding_window=False)),
    # Phi-3.5 / Phi-4-mini: fused qkv_proj and gate_up_proj, longrope (the
    # 128-token windows pass original_max_position_embeddings = 96, so the
    # long factors and the attention factor apply), partial rotary (24 of 32
    # dims) and a sliding window.
    "phi3": ("Phi3Config", "Phi3ForCausalLM",
             dict(tie_word_embeddings=False, sliding_window=64,
                  original_max_position_embeddings=96, partial_rotary_factor=0.75,
                  rope_scaling=dict(rope_type="longrope", rope_theta=10000.0,
                                    partial_rotary_factor=0.75,
                                    short_factor=[1.0 + 0.1 * i for i in range(12)],
                                    long_factor=[1.0 + 0.7 * i for i in range(12)]))),
    # Gemma 2: norms stored as w - 1, GeGLU, norms after attention and MLP,
    # scaled embeddings, attention and logit soft-capping (small caps so they
    # bite), query_pre_attn_scalar other than head_dim, every other layer
    # windowed (32 of the 128-token windows).
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               dict(head_dim=32, query_pre_attn_scalar=24, sliding_window=32,
                    attn_logit_softcapping=5.0, final_logit_softcapping=10.0,
                    tie_word_embeddings=True, rope_theta=10000.0)),
    # Gemma 3 (text): per-head q/k norms, no soft-capping, windowed layers with
    # their own rope (theta 10000) and a linear-scaled global rope.
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM",
               dict(head_dim=32, query_pre_attn_scalar=32, sliding_window=32,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                    tie_word_embeddings=True,
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0,
                                                        "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default",
                                                           "rope_theta": 10000.0}})),
    # Mixtral: 8 experts of width intermediate_size, top-2, renormalised.
    "mixtral": ("MixtralConfig", "MixtralForCausalLM",
                dict(tie_word_embeddings=False, rope_theta=1000000.0, num_local_experts=8,
                     num_experts_per_tok=2, intermediate_size=64)),
    # Qwen1.5/2-MoE: q/k/v biases, narrow experts, a shared expert with a
    # sigmoid gate, top-2 probabilities not renormalised.
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(tie_word_embeddings=False, rope_theta=1000000.0, num_experts=8,
                       num_experts_per_tok=2, moe_intermediate_size=64,
                       shared_expert_intermediate_size=96, norm_topk_prob=False,
                       use_sliding_window=False)),
    # Qwen3-MoE: per-head q/k norms, top-2 renormalised, layer 1 a dense MLP
    # (mlp_only_layers).
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(tie_word_embeddings=False, rope_theta=1000000.0, head_dim=48,
                       num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64,
                       norm_topk_prob=True, mlp_only_layers=[1], use_sliding_window=False)),
    # OLMoE: q/k norms over the whole projection, top-2 not renormalised; no
    # grouped-query attention, as OLMoE-1B-7B (llama.cpp's olmoe needs it).
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM",
              dict(tie_word_embeddings=False, rope_theta=10000.0, num_experts=8,
                   num_key_value_heads=4,
                   num_experts_per_tok=2, intermediate_size=64, norm_topk_prob=False)),
}


def starve_experts(model, n):
    """Makes the last n experts of every MoE layer unreachable (see --dead-experts)."""
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for name, p in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p[0, :] = 0.0
            elif name.endswith("experts.down_proj"):  # [experts, hidden, width] in memory
                p[:, 0, :] = 0.0
        for layer in model.model.layers:
            router = getattr(layer.mlp, "gate", None)
            if not hasattr(layer.mlp, "experts"):
                continue  # a dense layer
            layer.post_attention_layernorm.weight[0] = 30.0
            router.weight[:, 0] = 0.0  # the others route on the other dimensions only
            router.weight[-n:, :] = 0.0
            router.weight[-n:, 0] = -5.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True, help="a GGUF whose tokenizer to use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dead-experts", type=int, default=0)
    ap.add_argument("--all-moe", action="store_true",
                    help="no dense MLP layers (mlp_only_layers empty), as llama.cpp's qwen3moe needs")
    ap.add_argument("--llamacpp", action="store_true",
                    help="as llama.cpp fixes the family: Gemma's query_pre_attn_scalar = head_dim, "
                         "Gemma 3's 6 layers with the default window pattern (5 windowed, "
                         "1 full) and norm weights centred on 0 (scales 1 + w near 1), Phi-3 "
                         "without a sliding window")
    args = ap.parse_args()
    config_cls, model_cls, extra = FAMILIES[args.family]
    if args.all_moe:
        extra = {**extra, "mlp_only_layers": []}
    if args.llamacpp and args.family == "phi3":  # llama.cpp's phi3 runs without a window
        extra = {**extra, "sliding_window": None}
    if args.llamacpp and args.family == "gemma2":
        extra = {**extra, "query_pre_attn_scalar": extra["head_dim"]}
    norm_centre = 1.0
    if args.llamacpp and args.family == "gemma3":
        extra = {k: v for k, v in extra.items() if k != "layer_types"}
        extra["num_hidden_layers"] = 6
        # Gemma scales by 1 + w: norm weights near 1 double every normalized
        # activation (q and k after their norms: attention scores x4), and
        # without soft-capping this random model then turns llama.cpp's 8-bit
        # activation rounding into a 2% perplexity change that depends on the
        # CPU's kernels. Centred on 0 the two agree to 0.05%.
        norm_centre = 0.0
    config = getattr(transformers, config_cls)(**{**COMMON, **extra})
    torch.manual_seed(args.seed)
    model = getattr(transformers, model_cls)(config).float().eval()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(norm_centre + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    if args.dead_experts:
        starve_experts(model, args.dead_experts)
    model.save_pretrained(args.out, safe_serialization=True)
    d, f = os.path.split(os.path.abspath(args.tokenizer_from))
    transformers.AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.family}: {n / 1e6:.1f}M parameters at {args.out}")


if __name__ == "__main__":
    main()
