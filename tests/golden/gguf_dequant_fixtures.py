#!/usr/bin/env python3
"""Golden fixtures for GGUF dequantization, from gguf-py (PyPI `gguf`).

For each ggml type the engine dequantizes, builds random blocks (through
gguf.quants.quantize where gguf-py can quantize that type, plus raw random
bytes with sane fp16 scales for every type) and stores the raw bytes with the
float32 values gguf.quants.dequantize gives for them. It also stores a few rows
of real tensors of the SmolLM2 GGUF (Q8_0, Q4_1, F32) as gguf-py's GGUFReader
reads and dequantizes them; the C++ test reads those rows through its own
parser. The C++ test requires bit-exact equality.

Output: tests/golden/fixtures/gguf_dequant.bin, little-endian:
  b"CDQF", u32 version (1), u32 record count, then per record:
  u32 name length, name (utf-8), u32 ggml type, u32 element count,
  u32 raw byte count, raw bytes, element count float32 values.
Random records are named "<TYPE>/<how>" and carry their raw bytes. Real-model
records are named "model:<tensor>:<first row>:<row count>" and carry no raw
bytes (the test dequantizes those rows from the model file itself).

Usage: gguf_dequant_fixtures.py [MODEL.gguf]   (default: .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf)
"""
import pathlib
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/golden/fixtures/gguf_dequant.bin"
DEFAULT_MODEL = ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"

QUANTIZABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16]
# Byte offsets of the fp16 scale fields within one block, per type.
SCALE_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.Q2_K: [80, 82], T.Q3_K: [108],
}


def sane_halves(rng, n):
    """fp16 scales: mostly moderate, some tiny/subnormal, zero and negative."""
    v = rng.uniform(-2.0, 2.0, n).astype(np.float32)
    v[rng.random(n) < 0.1] *= np.float32(1e-6)  # subnormal halves
    v[rng.random(n) < 0.05] = 0.0
    return v.astype(np.float16).view(np.uint8).reshape(n, 2)


def random_blocks(rng, qtype, n_blocks):
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in SCALE_FIELDS[qtype]:
        raw[:, off:off + 2] = sane_halves(rng, n_blocks)
    return raw.reshape(-1), n_blocks * block_size


def random_f16_bits(rng, n):
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    nan = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0)
    bits[nan] |= 0x0200  # quiet NaNs only: signalling ones may be quieted by hardware converts
    specials = np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00],
                        dtype=np.uint16)
    bits[:len(specials)] = specials
    return bits.view(np.uint8)


def records(rng):
    for qtype in QUANTIZABLE:
        n = 4096 if qtype in (T.BF16, T.F16) else 1024
        x = (rng.standard_normal(n) * rng.uniform(0.01, 3.0)).astype(np.float32).reshape(4, -1)
        q = quantize(x, qtype)
        yield f"{qtype.name}/quantize", qtype, q.reshape(-1).view(np.uint8), n, dequantize(q, qtype).reshape(-1)
    for qtype in SCALE_FIELDS:
        n_blocks = 8 if GGML_QUANT_SIZES[qtype][0] == 256 else 32
        raw, n = random_blocks(rng, qtype, n_blocks)
        yield f"{qtype.name}/random", qtype, raw, n, dequantize(raw, qtype).reshape(-1)
    f16 = random_f16_bits(rng, 4096)
    yield "F16/random", T.F16, f16, 4096, dequantize(f16, T.F16).reshape(-1)
    bf16 = rng.integers(0, 256, size=8192, dtype=np.uint8)
    yield "BF16/random", T.BF16, bf16, 4096, dequantize(bf16, T.BF16).reshape(-1)
    f32 = rng.standard_normal(1024).astype(np.float32).view(np.uint8)
    yield "F32/random", T.F32, f32, 1024, dequantize(f32, T.F32).reshape(-1)


MODEL_ROWS = [  # (tensor, first row, row count): rows in GGUF order
    ("token_embd.weight", 0, 3),          # Q8_0
    ("token_embd.weight", 49150, 2),
    ("blk.0.attn_q.weight", 0, 2),        # Q4_1
    ("blk.0.attn_k.weight", 190, 2),
    ("blk.29.ffn_down.weight", 575, 1),
    ("blk.0.attn_norm.weight", 0, 1),     # F32
    ("output_norm.weight", 0, 1),
]


def model_records(model_path):
    reader = GGUFReader(str(model_path))
    tensors = {t.name: t for t in reader.tensors}
    for name, first, count in MODEL_ROWS:
        t = tensors[name]
        values = dequantize(t.data, t.tensor_type)
        values = values.reshape(-1, values.shape[-1])[first:first + count]
        yield (f"model:{name}:{first}:{count}", t.tensor_type, np.zeros(0, np.uint8), values.size,
               values.reshape(-1))


def main():
    model = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    rng = np.random.default_rng(20240601)
    recs = list(records(rng)) + list(model_records(model))
    out = bytearray(b"CDQF" + struct.pack("<II", 1, len(recs)))
    for name, qtype, raw, n, values in recs:
        values = np.ascontiguousarray(values, dtype=np.float32)
        assert values.size == n, name
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        out += struct.pack("<I", len(name)) + name.encode()
        out += struct.pack("<III", int(qtype), n, raw.size) + raw.tobytes() + values.tobytes()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(bytes(out))
    print(f"wrote {OUT} ({len(out)} bytes, {len(recs)} records)")


if __name__ == "__main__":
    main()
