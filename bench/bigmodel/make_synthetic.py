#!/usr/bin/env python3
"""Writes a synthetic Hugging Face Llama checkpoint with the exact shapes of a
real one, without ever holding it in memory: BF16 safetensors shards
(model-0000i-of-0000N.safetensors + model.safetensors.index.json, as
save_pretrained writes them), config.json, and SmolLM2's real tokenizer
(49152 ids, which fit any of these vocabularies).

Weights are seeded N(0, 0.02) like a trained network's projections and
embeddings (initializer_range of the Llama configs); RMSNorm weights are 1.
Each tensor is generated and written in row chunks, so memory stays at one
chunk whatever the model size.

usage: make_synthetic.py SHAPE OUT_DIR --tokenizer-from MODEL.gguf [--seed N]
  SHAPE: llama-3.1-8b | llama-3.2-1b | tiny (2 layers, for tests)
"""
import argparse
import json
import os
import struct

import numpy as np

SHAPES = {
    # https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         tie_word_embeddings=False, rope_theta=500000.0,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}),
    # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                         tie_word_embeddings=True, rope_theta=500000.0,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}),
    "tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
                 tie_word_embeddings=True, rope_theta=10000.0, rope_scaling=None),
}
MAX_SHARD_BYTES = 5_000_000_000  # save_pretrained's default "5GB"
CHUNK_ELEMENTS = 1 << 24


def tensors(c):
    """(name, shape, kind) in save order: embedding, blocks, norm, lm_head."""
    h, ff = c["hidden_size"], c["intermediate_size"]
    hd = h // c["num_attention_heads"]
    qd, kvd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (c["vocab_size"], h), "w")]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,), "norm"),
                (p + "self_attn.q_proj.weight", (qd, h), "w"),
                (p + "self_attn.k_proj.weight", (kvd, h), "w"),
                (p + "self_attn.v_proj.weight", (kvd, h), "w"),
                (p + "self_attn.o_proj.weight", (h, qd), "w"),
                (p + "post_attention_layernorm.weight", (h,), "norm"),
                (p + "mlp.gate_proj.weight", (ff, h), "w"),
                (p + "mlp.up_proj.weight", (ff, h), "w"),
                (p + "mlp.down_proj.weight", (h, ff), "w")]
    out.append(("model.norm.weight", (h,), "norm"))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (c["vocab_size"], h), "w"))
    return out


def to_bf16(x):
    """float32 -> bfloat16 bits, round to nearest even (as torch does)."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_shard(path, entries, rng):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in entries:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for name, shape, kind in entries:
            total = int(np.prod(shape))
            for start in range(0, total, CHUNK_ELEMENTS):
                n = min(CHUNK_ELEMENTS, total - start)
                x = np.ones(n, np.float32) if kind == "norm" else rng.normal(0, 0.02, n).astype(np.float32)
                f.write(to_bf16(x).tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True, help="a GGUF whose tokenizer to use")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    c = dict(SHAPES[args.shape])
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    shards, size = [[]], 0
    for t in tensors(c):
        n = int(np.prod(t[1])) * 2
        if shards[-1] and size + n > MAX_SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += n
    weight_map, total = {}, 0
    for i, entries in enumerate(shards):
        name = (f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" if len(shards) > 1
                else "model.safetensors")
        write_shard(os.path.join(args.out, name), entries, rng)
        for t in entries:
            weight_map[t[0]] = name
            total += int(np.prod(t[1])) * 2
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = dict(c, model_type="llama", architectures=["LlamaForCausalLM"], torch_dtype="bfloat16",
                  rms_norm_eps=1e-5, max_position_embeddings=131072, bos_token_id=1, eos_token_id=2,
                  hidden_act="silu", attention_bias=False, mlp_bias=False, initializer_range=0.02,
                  head_dim=c["hidden_size"] // c["num_attention_heads"])
    if config["rope_scaling"] is None:
        del config["rope_scaling"]
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(args.tokenizer_from))
    AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(args.out)
    params = sum(int(np.prod(t[1])) for t in tensors(c))
    print(f"{args.shape}: {params / 1e9:.2f}B parameters, {total / 2**30:.2f} GiB BF16 "
          f"in {len(shards)} file(s) at {args.out}")


if __name__ == "__main__":
    main()
