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

With --gguf-q8_0 it writes one GGUF file instead (OUT_DIR/model.gguf, as
llama.cpp's converter lays it out: ggml dims, Q8_0 matrices, F32 norms,
rope_freqs.weight for llama3 scaling), its tokenizer SmolLM2's GGUF tokenizer
padded with unused tokens to the shape's vocabulary (a GGUF's token list must
cover it).

usage: make_synthetic.py SHAPE OUT_DIR --tokenizer-from MODEL.gguf [--seed N] [--gguf-q8_0]
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


def q8_0(x):
    """float32 [n] (n % 32 == 0) -> Q8_0 blocks: f16 scale max|x|/127, 32 int8 (as ggml)."""
    b = x.reshape(-1, 32)
    d = np.abs(b).max(axis=1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
    q = np.round(b * inv[:, None]).astype(np.int8)
    out = np.empty((b.shape[0], 34), np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)


def llama3_factors(c):
    s, hd = c["rope_scaling"], c["hidden_size"] // c["num_attention_heads"]
    low = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high = s["original_max_position_embeddings"] / s["high_freq_factor"]
    out = []
    for i in range(0, hd, 2):
        wavelen = 2 * np.pi / (c["rope_theta"] ** (-i / hd))
        f = s["factor"]
        if wavelen < high:
            f = 1.0
        elif wavelen <= low:
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
                s["high_freq_factor"] - s["low_freq_factor"])
            f = 1.0 / ((1 - smooth) / s["factor"] + smooth)
        out.append(f)
    return np.array(out, np.float32)


GGUF_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    layer, rest = hf[len("model.layers."):].split(".", 1)
    return f"blk.{layer}.{GGUF_NAMES[rest[:-len('.weight')]]}.weight"


def write_gguf(c, path, tokenizer_from, rng):
    """One GGUF, tensor by tensor (memory: one tensor's Q8_0 bytes)."""
    import gguf
    src = gguf.GGUFReader(tokenizer_from)
    field = lambda k: src.fields[k].contents()
    h, hd = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("synthetic")
    w.add_context_length(131072)
    w.add_embedding_length(h)
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_rope_freq_base(c["rope_theta"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(c["vocab_size"])
    w.add_file_type(7)  # MOSTLY_Q8_0
    w.add_quantization_version(2)
    tokens, types = list(field("tokenizer.ggml.tokens")), list(field("tokenizer.ggml.token_type"))
    pad = c["vocab_size"] - len(tokens)
    w.add_tokenizer_model(field("tokenizer.ggml.model"))
    w.add_tokenizer_pre(field("tokenizer.ggml.pre"))
    w.add_token_list(tokens + [f"<|unused_{i}|>" for i in range(pad)])
    w.add_token_types(types + [5] * pad)  # LLAMA_TOKEN_TYPE_UNUSED
    w.add_token_merges(list(field("tokenizer.ggml.merges")))
    w.add_bos_token_id(field("tokenizer.ggml.bos_token_id"))
    w.add_eos_token_id(field("tokenizer.ggml.eos_token_id"))
    w.add_add_bos_token(field("tokenizer.ggml.add_bos_token"))
    entries = []
    if c["rope_scaling"]:
        entries.append(("rope_freqs.weight", (hd // 2,), "rope"))
    entries += [(gguf_name(n), shape, kind) for n, shape, kind in tensors(c)]
    for name, shape, kind in entries:
        n = int(np.prod(shape))
        quant = kind == "w"
        nbytes = n // 32 * 34 if quant else n * 4
        byte_shape = (*shape[:-1], shape[-1] // 32 * 34) if quant else shape
        w.add_tensor_info(name, byte_shape, np.dtype(np.uint8 if quant else np.float32), nbytes,
                          raw_dtype=gguf.GGMLQuantizationType.Q8_0 if quant else
                          gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, shape, kind in entries:
        n = int(np.prod(shape))
        if kind == "rope":
            data = llama3_factors(c)
        elif kind == "norm":
            data = np.ones(n, np.float32)
        else:
            data = np.empty(n // 32 * 34, np.uint8)
            for start in range(0, n, CHUNK_ELEMENTS):
                m = min(CHUNK_ELEMENTS, n - start)
                data[start // 32 * 34:(start + m) // 32 * 34] = q8_0(
                    rng.normal(0, 0.02, m).astype(np.float32))
        w.write_tensor_data(data)
    w.close()
    return sum(int(np.prod(e[1])) for e in entries if e[2] != "rope")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True, help="a GGUF whose tokenizer to use")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gguf-q8_0", action="store_true", help="write OUT_DIR/model.gguf (Q8_0)")
    args = ap.parse_args()
    c = dict(SHAPES[args.shape])
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    if args.gguf_q8_0:
        path = os.path.join(args.out, "model.gguf")
        params = write_gguf(c, path, args.tokenizer_from, rng)
        print(f"{args.shape}: {params / 1e9:.2f}B parameters, "
              f"{os.path.getsize(path) / 2**30:.2f} GiB GGUF Q8_0 at {path}")
        return
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
