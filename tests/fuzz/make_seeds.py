#!/usr/bin/env python3
"""Writes the small seed corpora for the fuzz targets into tests/fuzz/corpus/.

gguf/: tiny llama-architecture GGUFs written by gguf-py's GGUFWriter (an
independent writer): Q8_0 + F32 tied, F32 untied with GQA, and one with a
llama3 rope_freqs tensor. safetensors/: a tiny checkpoint (F32/BF16/F16).
hf_config/: config.json variants. dequant/: a few blocks of each type.
upload/: upload streams (fuzz_upload.cc's framing) of an HF model, a GGUF
model and a dataset, built from the seeds above.
Usage: make_seeds.py [upload]   (needs gguf, numpy, safetensors; "upload": only upload/)
"""
import json
import math
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.quants import quantize

OUT = pathlib.Path(__file__).resolve().parent / "corpus"
RNG = np.random.default_rng(5)


def tiny_llama(path, hidden=32, ff=32, heads=2, kv=1, vocab=8, layers=1, q8=True, tied=True, rope_freqs=False):
    w = GGUFWriter(str(path), "llama")
    hd = hidden // heads
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])

    def mat(name, rows, cols):
        x = RNG.standard_normal((rows, cols)).astype(np.float32)
        if q8 and cols % 32 == 0:
            w.add_tensor(name, quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
        else:
            w.add_tensor(name, x)

    def vec(name, n):
        w.add_tensor(name, RNG.standard_normal(n).astype(np.float32))

    mat("token_embd.weight", vocab, hidden)
    for i in range(layers):
        p = f"blk.{i}."
        vec(p + "attn_norm.weight", hidden)
        mat(p + "attn_q.weight", heads * hd, hidden)
        mat(p + "attn_k.weight", kv * hd, hidden)
        mat(p + "attn_v.weight", kv * hd, hidden)
        mat(p + "attn_output.weight", hidden, heads * hd)
        vec(p + "ffn_norm.weight", hidden)
        mat(p + "ffn_gate.weight", ff, hidden)
        mat(p + "ffn_up.weight", ff, hidden)
        mat(p + "ffn_down.weight", hidden, ff)
    vec("output_norm.weight", hidden)
    if not tied:
        mat("output.weight", vocab, hidden)
    if rope_freqs:
        factors = []
        for i in range(0, hd, 2):
            wavelen = 2 * math.pi * 10000.0 ** (i / hd)
            factors.append(1.0 if wavelen < 2048 else 8.0 if wavelen > 8192 else
                           1 / ((1 - (8192 / wavelen - 1) / 3) / 8 + (8192 / wavelen - 1) / 3))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    for sub in ("gguf", "safetensors", "hf_config", "dequant"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    tiny_llama(OUT / "gguf/llama_q8_tied.gguf")
    tiny_llama(OUT / "gguf/llama_f32_untied_gqa.gguf", heads=4, kv=2, q8=False, tied=False)
    tiny_llama(OUT / "gguf/llama_rope_freqs.gguf", hidden=64, heads=1, kv=1, rope_freqs=True)

    from safetensors.numpy import save_file
    save_file({"a": RNG.standard_normal((2, 3)).astype(np.float32),
               "b": RNG.standard_normal(4).astype(np.float16)},
              str(OUT / "safetensors/tiny.safetensors"), metadata={"format": "pt"})

    base = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 40, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": [2, 3]}
    configs = {
        "llama3.json": dict(base, rope_theta=500000.0, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}),
        "v5.json": dict(base, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
        "qwen2.json": dict(base, model_type="qwen2", rope_theta=1e6),
        "mistral.json": dict(base, model_type="mistral", head_dim=16, sliding_window=4096),
    }
    for name, c in configs.items():
        (OUT / "hf_config" / name).write_text(json.dumps(c))

    for type_index in range(11):  # fuzz_dequant: first byte picks the type
        (OUT / f"dequant/type{type_index}.bin").write_bytes(
            bytes([type_index]) + RNG.integers(0, 256, 420, dtype=np.uint8).tobytes())
    print(f"wrote seeds under {OUT}")


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, value):
    """One protobuf field: an int (varint) or bytes/str (length-delimited)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def upload_stream(dataset, files, name):
    """fuzz_upload's input: flags (bit 0 dataset, bit 1 fix up digests), then
    length-prefixed UploadModelRequest messages: the header, a chunk per file."""
    header = _field(1, name)
    if not dataset:  # format: GGUF = 2, HF_SAFETENSORS = 1
        header += _field(2, 2 if files[0][0].endswith(".gguf") else 1)
    header += b"".join(_field(2 if dataset else 3, _field(1, path)) for path, _ in files)
    messages = [_field(1, header)]
    for index, (_, data) in enumerate(files):
        messages.append(_field(2, (_field(1, index) if index else b"") + _field(2, data)))
    out = bytes([2 | (1 if dataset else 0)])
    for m in messages:
        out += len(m).to_bytes(2, "little") + m
    return out


def upload_seeds():
    (OUT / "upload").mkdir(parents=True, exist_ok=True)
    config = (OUT / "hf_config/llama3.json").read_bytes()
    weights = (OUT / "safetensors/tiny.safetensors").read_bytes()
    gguf = (OUT / "gguf/llama_q8_tied.gguf").read_bytes()
    seeds = {
        "hf_model.bin": upload_stream(False, [("config.json", config), ("model.safetensors", weights)], "m"),
        "gguf_model.bin": upload_stream(False, [("model.gguf", gguf)], "g"),
        "dataset.bin": upload_stream(True, [("sotu/a.txt", b"We the people."), ("b.txt", b"")], "d"),
    }
    for name, data in seeds.items():
        assert len(data) < 1 << 16, name
        (OUT / "upload" / name).write_bytes(data)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["upload"]:
        upload_seeds()
    else:
        main()
        upload_seeds()
