#!/usr/bin/env python3
"""Golden fixtures for the forward pass (tests/unit/nn): tiny random Llama-family
models run through transformers in float32.

For each variant it writes tests/golden/fixtures/nn_tiny_<name>.json (config,
tensor table, token sequences) and nn_tiny_<name>.bin (little-endian float32:
the tensors, then the logits of every sequence, each run alone with batch 1,
concatenated row-wise [sum T, vocab]). Tensor names follow
workers/engine/model/llama_model.h (embed_tokens, blocks.<i>.q_proj, ...,
final_norm, lm_head); Q/K rows are in HF order.

For the variants of W8A8_VARIANTS it also writes nn_tiny_<name>_w8a8.bin: the
same sequences' logits with every nn.Linear's input but lm_head's quantized
per token as vLLM's W8A8 runtime does (dynamic symmetric int8: x * 127 /
max|x|, round half to even, clamp to [-128, 127], times max|x| / 127),
written here from that formula as forward pre-hooks; and nn_tiny_<name>_fp8.bin,
the same with fp8 W8A8's per-token E4M3 quantization (s = max|x| / 448,
PyTorch's float8_e4m3fn cast of x / s, times s).

Usage: .venv/bin/python tests/golden/nn_reference.py [VARIANT...]  (deterministic, seed 0)
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig,
                          LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM,
                          Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen2MoeConfig,
                          Qwen2MoeForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
W8A8_VARIANTS = ("llama_gqa", "qwen2_bias", "qwen3_qk_norm")


def quantize_input_per_token(module, inputs):
    x = inputs[0]
    m = x.abs().amax(dim=-1, keepdim=True)
    q = torch.clamp(torch.round(x * (127.0 / m)), -128, 127) * (m / 127.0)
    return (torch.where(m == 0, torch.zeros_like(x), q),)


def quantize_input_per_token_fp8(module, inputs):
    """vLLM's dynamic per-token fp8: s = max(max|x| / 448, 1 / (448 * 512)),
    PyTorch's float8_e4m3fn cast of clamp(x * (1 / s), +-448), times s."""
    x = inputs[0]
    m = x.abs().amax(dim=-1, keepdim=True)
    s = torch.clamp(m / 448.0, min=1.0 / (448.0 * 512.0))
    q = torch.clamp(x * (1.0 / s), -448.0, 448.0).to(torch.float8_e4m3fn).to(x.dtype) * s
    return (torch.where(m == 0, torch.zeros_like(x), q),)


def w8a8_logits(model, seqs, hook=quantize_input_per_token):
    hooks = [m.register_forward_pre_hook(hook)
             for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    with torch.no_grad():
        out = [model(torch.tensor([s])).logits[0].numpy() for s in seqs]
    for h in hooks:
        h.remove()
    return np.concatenate(out, axis=0).astype("<f4")
SEQ_LENS = [37, 64, 9]  # cover partial, exact and tiny attention tiles

VARIANTS = {
    # GQA 4/2, untied LM head, no rope scaling.
    "llama_gqa": dict(cls="llama", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                      rope_parameters=dict(rope_type="default", rope_theta=10000.0),
                      rms_norm_eps=1e-5, tie_word_embeddings=False),
    # Group of 3, tied embeddings, Llama 3 rope scaling active at these lengths.
    "llama3_tied": dict(cls="llama", hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                        num_attention_heads=6, num_key_value_heads=2, vocab_size=200,
                        rms_norm_eps=1e-6, tie_word_embeddings=True,
                        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                             low_freq_factor=1.0, high_freq_factor=4.0,
                                             original_max_position_embeddings=32)),
    # Qwen2: q/k/v biases, multi-query (1 kv head).
    "qwen2_bias": dict(cls="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, vocab_size=160,
                       rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
                       rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Qwen3: RMSNorm of each head's q and k before RoPE, head_dim (24) not
    # hidden / heads (16), GQA 4/2, tied embeddings.
    "qwen3_qk_norm": dict(cls="qwen3", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                          vocab_size=192, rms_norm_eps=1e-6, tie_word_embeddings=True,
                          rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
    # Mistral: every layer attends to the last 16 positions (the sequences are
    # 37 and 64 long, so the window cuts through tiles of 16 and 128).
    "mistral_window": dict(cls="mistral", hidden_size=64, intermediate_size=96,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           vocab_size=128, rms_norm_eps=1e-5, tie_word_embeddings=False,
                           sliding_window=16,
                           rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    # Phi-3: fused qkv_proj / gate_up_proj (split into our tensors), partial
    # rotary (12 of 16 dims), longrope. Every sequence is at most 64 long, so
    # original_max_position_embeddings 128 uses the short factors and 8 the
    # long ones (with an attention factor > 1) for all of them, in one batch
    # as when each runs alone.
    "phi3_longrope_short": dict(cls="phi3", hidden_size=64, intermediate_size=96,
                                num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, vocab_size=144, rms_norm_eps=1e-5,
                                tie_word_embeddings=False, partial_rotary_factor=0.75,
                                original_max_position_embeddings=128,
                                rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                                     partial_rotary_factor=0.75,
                                                     short_factor=[1 + 0.3 * i for i in range(6)],
                                                     long_factor=[1 + 2.0 * i for i in range(6)])),
    "phi3_longrope_long": dict(cls="phi3", hidden_size=64, intermediate_size=96,
                               num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=144, rms_norm_eps=1e-5,
                               tie_word_embeddings=True, partial_rotary_factor=0.75,
                               original_max_position_embeddings=8,
                               rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                                    partial_rotary_factor=0.75,
                                                    short_factor=[1 + 0.3 * i for i in range(6)],
                                                    long_factor=[1 + 2.0 * i for i in range(6)])),
    # Gemma 2: (1 + w) norms, GeGLU, sandwich norms, scaled embeddings, soft-capped
    # scores and logits, query_pre_attn_scalar 12 (head_dim 16), layers 0 and 2
    # windowed to 16 positions.
    "gemma2_softcap": dict(cls="gemma2", hidden_size=64, intermediate_size=96,
                           num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                           head_dim=16, vocab_size=112, rms_norm_eps=1e-6,
                           tie_word_embeddings=True, query_pre_attn_scalar=12,
                           sliding_window=16, attn_logit_softcapping=4.0,
                           final_logit_softcapping=6.0,
                           rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    # Gemma 3: q/k norms with the offset, windowed layers 0 and 2 with a rope of
    # their own, a linear-scaled global rope, no soft-capping.
    "gemma3_local_rope": dict(cls="gemma3", hidden_size=64, intermediate_size=96,
                              num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                              head_dim=24, vocab_size=112, rms_norm_eps=1e-6,
                              tie_word_embeddings=True, query_pre_attn_scalar=20,
                              sliding_window=16,
                              layer_types=["sliding_attention", "full_attention",
                                           "sliding_attention"],
                              rope_parameters={
                                  "full_attention": dict(rope_type="linear", factor=4.0,
                                                         rope_theta=1000000.0),
                                  "sliding_attention": dict(rope_type="default",
                                                            rope_theta=10000.0)}),
}


MOE = {"mixtral": (MixtralConfig, MixtralForCausalLM), "qwen2_moe": (Qwen2MoeConfig, Qwen2MoeForCausalLM),
       "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM), "olmoe": (OlmoeConfig, OlmoeForCausalLM)}
MOE_COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  vocab_size=160, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0))
VARIANTS.update({
    # Mixtral: 8 experts of intermediate_size, top-2 renormalised.
    "mixtral_moe": dict(cls="mixtral", intermediate_size=48, num_local_experts=8,
                        num_experts_per_tok=2, **MOE_COMMON),
    # Qwen2-MoE: q/k/v biases, narrow experts, top-3 not renormalised, a
    # shared expert behind a sigmoid gate.
    "qwen2_moe_shared": dict(cls="qwen2_moe", intermediate_size=96, num_experts=6,
                             num_experts_per_tok=3, moe_intermediate_size=32,
                             shared_expert_intermediate_size=80, norm_topk_prob=False,
                             use_sliding_window=False, **MOE_COMMON),
    # Qwen3-MoE: per-head q/k norms, top-2 renormalised, layer 0 dense.
    "qwen3_moe_dense_layer": dict(cls="qwen3_moe", intermediate_size=96, head_dim=24,
                                  num_experts=4, num_experts_per_tok=2, moe_intermediate_size=40,
                                  norm_topk_prob=True, mlp_only_layers=[0],
                                  use_sliding_window=False, **MOE_COMMON),
    # OLMoE: q/k norms over the whole projection, top-2 not renormalised.
    "olmoe_whole_norm": dict(cls="olmoe", intermediate_size=40, num_experts=6,
                             num_experts_per_tok=2, norm_topk_prob=False, **MOE_COMMON),
})


def moe_tensors(model, cfg):
    """Our tensor names for a mixture-of-experts model, read from the
    checkpoint transformers writes (one tensor per expert)."""
    import tempfile
    from safetensors.numpy import load_file
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        sd = {}
        for f in sorted(os.listdir(d)):
            if f.endswith(".safetensors"):
                sd.update(load_file(os.path.join(d, f)))
    mixtral = cfg.model_type == "mixtral"
    out = [("embed_tokens", sd["model.embed_tokens.weight"])]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names = [("attn_norm", "input_layernorm.weight"), ("q_proj", "self_attn.q_proj.weight"),
                 ("k_proj", "self_attn.k_proj.weight"), ("v_proj", "self_attn.v_proj.weight"),
                 ("o_proj", "self_attn.o_proj.weight"), ("mlp_norm", "post_attention_layernorm.weight")]
        if cfg.model_type == "qwen2_moe":
            names += [(b, f"self_attn.{b[0]}_proj.bias") for b in ("q_bias", "k_bias", "v_bias")]
        if cfg.model_type in ("qwen3_moe", "olmoe"):
            names += [("q_norm", "self_attn.q_norm.weight"), ("k_norm", "self_attn.k_norm.weight")]
        moe = p + ("block_sparse_moe." if mixtral else "mlp.")
        if moe + "gate.weight" not in sd:  # a dense layer
            names += [(n, f"mlp.{n}.weight") for n in ("gate_proj", "up_proj", "down_proj")]
        out += [(f"blocks.{i}.{ours}", sd[p + theirs]) for ours, theirs in names]
        if moe + "gate.weight" not in sd:
            continue
        out.append((f"blocks.{i}.router", sd[moe + "gate.weight"]))
        stored = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
        n_experts = getattr(cfg, "num_local_experts", None) or cfg.num_experts
        for e in range(n_experts):
            for ours, theirs in zip(("gate_proj", "up_proj", "down_proj"), stored):
                out.append((f"blocks.{i}.experts.{e}.{ours}", sd[f"{moe}experts.{e}.{theirs}.weight"]))
        if p + "mlp.shared_expert_gate.weight" in sd:
            for n in ("gate_proj", "up_proj", "down_proj"):
                out.append((f"blocks.{i}.shared_expert.{n}", sd[f"{p}mlp.shared_expert.{n}.weight"]))
            out.append((f"blocks.{i}.shared_expert_gate", sd[p + "mlp.shared_expert_gate.weight"]))
    out.append(("final_norm", sd["model.norm.weight"]))
    out.append(("lm_head", sd["lm_head.weight"]))
    return out


def moe_config(cfg):
    """The mixture-of-experts fields of the fixture's config."""
    n_experts = getattr(cfg, "num_local_experts", None) or cfg.num_experts
    dense = getattr(cfg, "mlp_only_layers", None) or []
    return dict(n_experts=n_experts, experts_per_token=cfg.num_experts_per_tok,
                expert_intermediate=getattr(cfg, "moe_intermediate_size", None)
                or cfg.intermediate_size,
                norm_topk_prob=cfg.model_type == "mixtral" or bool(cfg.norm_topk_prob),
                shared_expert_intermediate=getattr(cfg, "shared_expert_intermediate_size", 0) or 0,
                moe_layers=[i not in dense for i in range(cfg.num_hidden_layers)] if dense else [],
                qk_norm_whole=cfg.model_type == "olmoe", mixtral_names=cfg.model_type == "mixtral")


def build(name, spec, gen):
    spec = dict(spec)
    cls = spec.pop("cls")
    common = dict(max_position_embeddings=128, attn_implementation="eager", **spec)
    if cls in MOE:
        config_cls, model_cls = MOE[cls]
        model = model_cls(config_cls(**common))
    elif cls == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif cls == "mistral":
        model = MistralForCausalLM(MistralConfig(**common))
    elif cls == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**common))
    elif cls == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common))
    elif cls == "phi3":
        model = Phi3ForCausalLM(Phi3Config(pad_token_id=None, **common))
    elif cls == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(use_sliding_window=False, attention_bias=False,
                                             **common))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(use_sliding_window=False, **common))
    model = model.float().eval()
    with torch.no_grad():  # larger than HF's init so attention is far from uniform
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))
    return cls, model


def tensors_of(model, cfg, cls):
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = [("embed_tokens", sd["model.embed_tokens.weight"])]
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        if cls == "phi3":  # split the fused projections by rows, as our loader does
            qd = cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads)
            kvd = cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads)
            qkv, gate_up = sd[p + "self_attn.qkv_proj.weight"], sd[p + "mlp.gate_up_proj.weight"]
            for name, rows in (("q_proj", qkv[:qd]), ("k_proj", qkv[qd:qd + kvd]),
                               ("v_proj", qkv[qd + kvd:])):
                sd[p + f"self_attn.{name}.weight"] = rows
            sd[p + "mlp.gate_proj.weight"] = gate_up[:cfg.intermediate_size]
            sd[p + "mlp.up_proj.weight"] = gate_up[cfg.intermediate_size:]
        names = [("attn_norm", "input_layernorm.weight"), ("q_proj", "self_attn.q_proj.weight"),
                 ("k_proj", "self_attn.k_proj.weight"), ("v_proj", "self_attn.v_proj.weight"),
                 ("o_proj", "self_attn.o_proj.weight")]
        if cls == "qwen2":
            names += [("q_bias", "self_attn.q_proj.bias"), ("k_bias", "self_attn.k_proj.bias"),
                      ("v_bias", "self_attn.v_proj.bias")]
        if cls == "qwen3":
            names += [("q_norm", "self_attn.q_norm.weight"), ("k_norm", "self_attn.k_norm.weight")]
        if cls == "gemma3":
            names += [("q_norm", "self_attn.q_norm.weight"), ("k_norm", "self_attn.k_norm.weight")]
        if cls.startswith("gemma"):  # the norm before the MLP, and the two after
            names += [("mlp_norm", "pre_feedforward_layernorm.weight"),
                      ("attn_post_norm", "post_attention_layernorm.weight"),
                      ("mlp_post_norm", "post_feedforward_layernorm.weight")]
        else:
            names += [("mlp_norm", "post_attention_layernorm.weight")]
        names += [("gate_proj", "mlp.gate_proj.weight"), ("up_proj", "mlp.up_proj.weight"),
                  ("down_proj", "mlp.down_proj.weight")]
        out += [(f"blocks.{i}.{ours}", sd[p + theirs]) for ours, theirs in names]
    out.append(("final_norm", sd["model.norm.weight"]))
    out.append(("lm_head", sd["lm_head.weight"] if "lm_head.weight" in sd
                else sd["model.embed_tokens.weight"]))
    return out


def meta_head_dim(cfg):
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def longrope_attention(cfg, rs):
    """transformers' longrope attention factor (1 for other rope types)."""
    if rs.get("rope_type") != "longrope":
        return 1.0
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    return float(ROPE_INIT_FUNCTIONS["longrope"](cfg, None)[1])


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    only = set(sys.argv[1:])  # variant names; none: all
    for name, spec in VARIANTS.items():
        if only and name not in only:
            continue
        gen = torch.Generator().manual_seed(0)
        cls, model = build(name, spec, gen)
        cfg = model.config
        seqs = [torch.randint(0, cfg.vocab_size, (n,), generator=gen).tolist() for n in SEQ_LENS]
        with torch.no_grad():
            logits = [model(torch.tensor([s])).logits[0].numpy() for s in seqs]
        table, blobs, offset = [], [], 0
        for tname, arr in (moe_tensors(model, cfg) if cls in MOE else tensors_of(model, cfg, cls)):
            table.append(dict(name=tname, shape=list(arr.shape), offset=offset))
            blobs.append(arr.astype("<f4").ravel())
            offset += arr.size
        logits_all = np.concatenate(logits, axis=0).astype("<f4")
        rs = dict(cfg.rope_parameters)  # transformers >= 5 keeps theta and scaling here
        local_theta = 0.0
        if "full_attention" in rs:  # Gemma 3: one rope per layer type
            local_theta = rs["sliding_attention"]["rope_theta"]
            rs = dict(rs["full_attention"])
        if rs.get("rope_type") == "default":
            rs["rope_type"] = ""
        meta = dict(
            variant=name, model_type=cls,
            config=dict(n_layers=cfg.num_hidden_layers, hidden=cfg.hidden_size,
                        intermediate=cfg.intermediate_size, n_heads=cfg.num_attention_heads,
                        n_kv_heads=cfg.num_key_value_heads,
                        head_dim=getattr(cfg, "head_dim", None)
                        or cfg.hidden_size // cfg.num_attention_heads,
                        vocab=cfg.vocab_size, max_position=cfg.max_position_embeddings,
                        rms_norm_eps=cfg.rms_norm_eps, rope_theta=rs["rope_theta"],
                        tie_word_embeddings=bool(cfg.tie_word_embeddings),
                        attention_bias=cls in ("qwen2", "qwen2_moe"),
                        qk_norm=cls in ("qwen3", "gemma3", "qwen3_moe", "olmoe"),
                        sliding_window=getattr(cfg, "sliding_window", None) or 0,
                        rotary_dims=int(meta_head_dim(cfg) * rs.get("partial_rotary_factor", 1.0)),
                        gemma=cls.startswith("gemma"),
                        query_pre_attn_scalar=getattr(cfg, "query_pre_attn_scalar", 0) or 0,
                        attn_softcap=getattr(cfg, "attn_logit_softcapping", None) or 0,
                        final_softcap=getattr(cfg, "final_logit_softcapping", None) or 0,
                        sliding_layers=[t == "sliding_attention"
                                        for t in getattr(cfg, "layer_types", None) or []]
                        if cls.startswith("gemma") else [],
                        local_rope_theta=local_theta,
                        rope_scaling=dict(type=rs.get("rope_type", ""),
                                          factor=rs.get("factor", 1.0),
                                          low_freq_factor=rs.get("low_freq_factor", 1.0),
                                          high_freq_factor=rs.get("high_freq_factor", 4.0),
                                          original_max_position_embeddings=rs.get(
                                              "original_max_position_embeddings", 8192),
                                          short_factor=rs.get("short_factor", []),
                                          long_factor=rs.get("long_factor", []),
                                          attention_factor=longrope_attention(cfg, rs))),
            moe=moe_config(cfg) if cls in MOE else None,
            tensors=table, sequences=seqs, logits_offset=offset,
            logits_shape=list(logits_all.shape),
            generator="tests/golden/nn_reference.py (transformers float32, eager attention)")
        with open(os.path.join(OUT, f"nn_tiny_{name}.bin"), "wb") as f:
            for b in blobs:
                f.write(b.tobytes())
            f.write(logits_all.tobytes())
        with open(os.path.join(OUT, f"nn_tiny_{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(name, "tensors", offset, "floats; logits", logits_all.shape)
        if name in W8A8_VARIANTS:
            with open(os.path.join(OUT, f"nn_tiny_{name}_w8a8.bin"), "wb") as f:
                f.write(w8a8_logits(model, seqs).tobytes())
            with open(os.path.join(OUT, f"nn_tiny_{name}_fp8.bin"), "wb") as f:
                f.write(w8a8_logits(model, seqs, quantize_input_per_token_fp8).tobytes())


if __name__ == "__main__":
    main()
