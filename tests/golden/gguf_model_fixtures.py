#!/usr/bin/env python3
"""Golden fixture for GGUF -> LlamaModel, from Hugging Face transformers.

transformers loads the SmolLM2 GGUF as a float32 HF Llama (gguf-py
dequantizes; transformers maps llama.cpp's tensor names to HF names and undoes
llama.cpp's Q/K row permutation itself). For a set of tensors this stores the
HF name and shape, two float64 checksums over the whole tensor (the plain sum,
and a position-weighted sum that changes when rows or columns move) and a few
full rows. The C++ test loads the same file with LoadModel() and compares:
rows bit-exactly, checksums to 1e-9 relative (summation order differs).

Output: tests/golden/fixtures/gguf_model_smollm2.json
Usage:  gguf_model_fixtures.py [MODEL.gguf]
"""
import json
import pathlib
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/golden/fixtures/gguf_model_smollm2.json"
DEFAULT_MODEL = ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"

LAYER_TENSORS = ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                 "self_attn.o_proj.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight",
                 "input_layernorm.weight", "post_attention_layernorm.weight"]


def weighted_sum(w):
    w = w.to(torch.float64)
    if w.dim() == 1:
        w = w.reshape(1, -1)
    i = torch.arange(w.shape[0], dtype=torch.float64).remainder(7).add(1).reshape(-1, 1)
    j = torch.arange(w.shape[1], dtype=torch.float64).remainder(5).add(1).reshape(1, -1)
    return float((w * i * j).sum())


def sample_rows(n_rows):
    rows = [0, 1, 31, 32, 69, n_rows - 1]
    return sorted({r for r in rows if 0 <= r < n_rows})


def main():
    model_path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    kw = dict(gguf_file=model_path.name)
    config = AutoConfig.from_pretrained(model_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(model_path.parent, dtype=torch.float32, **kw)
    state = model.state_dict()
    names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for layer in (0, config.num_hidden_layers - 1):
        names += [f"model.layers.{layer}.{t}" for t in LAYER_TENSORS]
    tensors = []
    for name in names:
        w = state[name].detach().to(torch.float32)
        w2 = w.reshape(1, -1) if w.dim() == 1 else w
        rows = sample_rows(w2.shape[0]) if name != "model.embed_tokens.weight" else [0, 1, 2, 1000, 49151]
        tensors.append({
            "name": name,
            "shape": list(w.shape),
            "sum": float(w.to(torch.float64).sum()),
            "weighted_sum": weighted_sum(w),
            "rows": {str(r): [float(x) for x in w2[r].tolist()] for r in rows},
        })
    out = {
        "model": model_path.name,
        "generator": "transformers " + __import__("transformers").__version__,
        "config": {
            "num_hidden_layers": config.num_hidden_layers, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": config.num_key_value_heads, "vocab_size": config.vocab_size,
            "rms_norm_eps": config.rms_norm_eps,
            "rope_theta": getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"],
            "tie_word_embeddings": config.tie_word_embeddings,
            "max_position_embeddings": config.max_position_embeddings,
        },
        "tensors": tensors,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
