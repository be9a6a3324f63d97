#!/usr/bin/env python3
"""Golden fixtures for the ggml quantizers (workers/engine/export/ggml_quantize.h).

Inputs: float32 rows: synthetic (Gaussian, heavy-tailed, half-pruned with
exact zeros, values on a 1/16 grid that make rounding ties, constant and
all-zero blocks) and, when the model is there, real rows of the SmolLM2 GGUF
(blk.0.ffn_down, dequantized by gguf-py).

Outputs per input:
  * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 from gguf-py's `gguf.quants.quantize`
    (source 0). The script also quantizes them with ggml itself and asserts
    the bytes are the same, so these are llama.cpp's bytes too. The C++ test
    requires byte equality.
  * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K from ggml's reference quantizers (source 1), called through
    ctypes from the libggml-base.so bundled with llama-cpp-python (gguf-py
    cannot quantize k-quants). Our k-quant search is our own, so the C++ test
    compares reconstruction error, not bytes.

Output: tests/golden/fixtures/ggml_quantize.bin, little-endian:
  b"CGQF", u32 version (1), u32 input count, then per input:
    u32 name length, name (utf-8), u32 rows, u32 row length, rows*row_len float32;
  u32 output count, then per output:
    u32 input index, u32 ggml type, u32 source (0 gguf-py, 1 ggml), u32 byte count, bytes.

Usage: /tmp/venvtest/bin/python tests/golden/ggml_quantize_fixtures.py [MODEL.gguf]
"""
import ctypes
import os
import pathlib
import struct
import sys

import llama_cpp
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/golden/fixtures/ggml_quantize.bin"
DEFAULT_MODEL = ROOT / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
LEGACY = [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
KQUANTS = [T.Q4_K, T.Q5_K, T.Q6_K, T.Q2_K, T.Q3_K]


def ggml_lib():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    f = lib.ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                  ctypes.c_int64, ctypes.c_void_p]
    return lib


def ggml_quantize(lib, x, qtype):
    x = np.ascontiguousarray(x, np.float32)
    rows, n = x.shape
    block, size = GGML_QUANT_SIZES[qtype]
    out = np.zeros(rows * n // block * size, np.uint8)
    wrote = lib.ggml_quantize_chunk(int(qtype), x.ctypes.data, out.ctypes.data, 0, rows, n, None)
    assert wrote == out.size, (qtype.name, wrote, out.size)
    return out


def synthetic_inputs(rng):
    n = 512
    yield "gaussian", (rng.standard_normal((3, n)) * 0.02).astype(np.float32)
    yield "student_t3", (rng.standard_t(3, (2, n)) * 0.01).astype(np.float32)
    pruned = (rng.standard_normal((2, n)) * 0.05).astype(np.float32)
    pruned[rng.random(pruned.shape) < 0.5] = 0.0
    yield "half_pruned", pruned
    yield "grid_1_16", (rng.integers(-40, 41, (2, n)) / 16.0).astype(np.float32)
    special = (rng.standard_normal((1, n)) * 0.1).astype(np.float32)
    special[0, :32] = 0.0        # an all-zero legacy block
    special[0, 32:64] = 0.25     # a constant positive block
    special[0, 64:96] = -0.125   # a constant negative block
    special[0, 256:512] = 0.0    # an all-zero k-quant super-block
    yield "special_blocks", special
    yield "large_mixed", (rng.standard_normal((1, n)) * rng.uniform(0.001, 30.0, n)).astype(np.float32)


def model_inputs(path):
    if not path.exists():
        print(f"note: {path} missing, no real-model rows", file=sys.stderr)
        return
    t = {t.name: t for t in GGUFReader(str(path)).tensors}["blk.0.ffn_down.weight"]
    rows = dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0]))
    yield "model:blk.0.ffn_down:0:2", rows[:2].astype(np.float32)


def main():
    model = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    rng = np.random.default_rng(20250517)
    lib = ggml_lib()
    inputs = list(synthetic_inputs(rng)) + list(model_inputs(model))
    out = bytearray(b"CGQF" + struct.pack("<II", 1, len(inputs)))
    outputs = []
    for i, (name, x) in enumerate(inputs):
        out += struct.pack("<I", len(name)) + name.encode()
        out += struct.pack("<II", *x.shape) + np.ascontiguousarray(x, np.float32).tobytes()
        for qtype in LEGACY:
            py = quantize(x, qtype).reshape(-1).view(np.uint8)
            assert np.array_equal(py, ggml_quantize(lib, x, qtype)), (name, qtype.name)
            outputs.append((i, qtype, 0, py))
        for qtype in KQUANTS:
            outputs.append((i, qtype, 1, ggml_quantize(lib, x, qtype)))
    out += struct.pack("<I", len(outputs))
    for i, qtype, source, raw in outputs:
        out += struct.pack("<IIII", i, int(qtype), source, raw.size) + raw.tobytes()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(bytes(out))
    print(f"wrote {OUT} ({len(out)} bytes, {len(inputs)} inputs, {len(outputs)} outputs)")


if __name__ == "__main__":
    main()
