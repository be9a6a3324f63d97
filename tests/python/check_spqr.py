#!/usr/bin/env python3
"""Checks an spqr output written by compressd, decoding it independently of
the C++ reader (numpy, from the layout docs/algorithms.md "SpQR" gives):

Usage:
  check_spqr.py SPQR_DIR --expect PPL (--tokens IDS.bin | --text FILE --tokenizer GGUF)
                [--windows N] [--window L] [--ppl-tolerance REL] [--expect-bits B]
                [--expect-modules K]

  * config.json's quantization_config says quant_method compressd-spqr,
    format_version 1; every block file exists;
  * each SpQR module (a __metadata__ entry of its block file) has its nine
    parts with the documented dtypes and shapes; the codes are < 2^bits, the
    order a permutation, the outlier CSR well formed; with --expect-modules,
    that many modules;
  * the stored bits of the SpQR modules (every part's bytes) per weight
    equal config.json's bits_per_parameter; with --expect-bits every module
    has B-bit codes (and the bits per weight exceed B: statistics, order and
    outliers on top);
  * the decoded weights, with the dense tensors, load into the family's
    transformers class, whose perplexity on N windows of L tokens of IDS.bin
    (int32 LE; or FILE tokenized by the GGUF's tokenizer, no BOS) is within
    --ppl-tolerance of PPL (the job's own figure).
Exits 1 on any failure, 2 on bad usage.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_gptq_load import load_tokens, make_model, perplexity  # noqa: E402

PARTS = ["codes", "perm", "scale_codes", "zero_codes", "scale_stats", "zero_stats",
         "outlier_rows", "outlier_cols", "outlier_values"]


def unpack(data, n, bits):
    """n values of `bits` bits packed lowest bit first."""
    bitstream = np.unpackbits(data.astype(np.uint8), bitorder="little")[: n * bits]
    weights = (1 << np.arange(bits)).astype(np.int64)
    return (bitstream.reshape(n, bits).astype(np.int64) * weights).sum(1)


def statistics(codes, stats, meta, groups):
    """Dequantized scales (or zeros) [groups, rows] from their codes and (scale2, zero2)."""
    rows = meta["rows"]
    c = unpack(codes, groups * rows, meta["stat_bits"]).reshape(groups, rows).astype(np.float32)
    chunk = np.arange(rows) // meta["stat_group"]
    s2 = stats[:, chunk, 0].astype(np.float32)
    z2 = stats[:, chunk, 1].astype(np.float32)
    return s2 * (c - z2)


def decode(t, module, meta, errors):
    rows, cols, bits, g = meta["rows"], meta["cols"], meta["bits"], meta["group_size"]
    groups = -(-cols // g)
    chunks = -(-rows // meta["stat_group"])
    index = np.uint16 if cols <= 65536 else np.int32
    want = {"codes": (np.uint8, (-(-rows * cols * bits // 8),)), "perm": (index, (cols,)),
            "scale_codes": (np.uint8, (-(-groups * rows * meta["stat_bits"] // 8),)),
            "scale_stats": (np.float16, (groups, chunks, 2)),
            "outlier_rows": (np.int32, (rows + 1,)), "outlier_cols": (index, (meta["outliers"],)),
            "outlier_values": (np.float16, (meta["outliers"],))}
    want["zero_codes"], want["zero_stats"] = want["scale_codes"], want["scale_stats"]
    p = {}
    for part in PARTS:
        a = t.get(f"{module}.spqr.{part}")
        dtype, shape = want[part]
        if a is None or a.dtype != dtype or a.shape != shape:
            errors.append(f"{module}.spqr.{part}: {None if a is None else (a.dtype, a.shape)}, "
                          f"expected {(np.dtype(dtype), shape)}")
            return None, 0
        p[part] = a
    perm = p["perm"].astype(np.int64)
    if sorted(perm.tolist()) != list(range(cols)):
        errors.append(f"{module}: perm is not a permutation")
    rp = p["outlier_rows"]
    if rp[0] != 0 or rp[-1] != meta["outliers"] or np.any(np.diff(rp) < 0):
        errors.append(f"{module}: bad outlier row pointers")
    scale = statistics(p["scale_codes"], p["scale_stats"], meta, groups)
    zero = statistics(p["zero_codes"], p["zero_stats"], meta, groups)
    codes = unpack(p["codes"], rows * cols, bits).reshape(rows, cols).astype(np.float32)
    group_of = np.arange(cols) // g
    w = np.empty((rows, cols), dtype=np.float32)
    w[:, perm] = scale[group_of].T * (codes - zero[group_of].T)
    r = np.repeat(np.arange(rows), np.diff(rp))
    w[r, p["outlier_cols"].astype(np.int64)] = p["outlier_values"].astype(np.float32)
    return w, sum(a.nbytes for a in p.values()) * 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spqr_dir")
    ap.add_argument("--expect", type=float, required=True)
    ap.add_argument("--tokens")
    ap.add_argument("--text")
    ap.add_argument("--tokenizer")
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--ppl-tolerance", type=float, default=0.01)
    ap.add_argument("--expect-bits", type=int)
    ap.add_argument("--expect-modules", type=int)
    args = ap.parse_args()
    if not args.tokens and not (args.text and args.tokenizer):
        ap.error("give --tokens, or --text with --tokenizer")
    errors = []
    config = json.load(open(os.path.join(args.spqr_dir, "config.json")))
    qc = config.get("quantization_config", {})
    if qc.get("quant_method") != "compressd-spqr" or qc.get("format_version") != 1:
        errors.append(f"quantization_config: {qc}")
    sd = {k: torch.from_numpy(v.astype(np.float32))
          for k, v in load_file(os.path.join(args.spqr_dir, "model.safetensors")).items()}
    modules, stored_bits, params = 0, 0, 0
    from safetensors import safe_open
    for i in range(config["num_hidden_layers"]):
        path = os.path.join(args.spqr_dir, qc.get("blocks", "") % i)
        with safe_open(path, "np") as f:
            metadata = f.metadata() or {}
        t = load_file(path)
        for name, a in t.items():
            if ".spqr." not in name:
                sd[name] = torch.from_numpy(a.astype(np.float32))
        for module, text in metadata.items():
            if module == "format":
                continue
            meta = json.loads(text)
            if args.expect_bits is not None and meta["bits"] != args.expect_bits:
                errors.append(f"{module}: {meta['bits']}-bit codes, expected {args.expect_bits}")
            w, bits = decode(t, module, meta, errors)
            if w is None:
                continue
            sd[module + ".weight"] = torch.from_numpy(w)
            modules += 1
            stored_bits += bits
            params += meta["rows"] * meta["cols"]
    bpp = stored_bits / max(params, 1)
    print(f"spqr: {modules} modules, {params} weights, {bpp:.4f} bits per weight "
          f"(config.json: {qc.get('bits_per_parameter')}), outliers {qc.get('outliers')}")
    if args.expect_modules is not None and modules != args.expect_modules:
        errors.append(f"{modules} SpQR modules, expected {args.expect_modules}")
    if abs(bpp - qc.get("bits_per_parameter", -1)) > 1e-9:
        errors.append(f"stored bits per weight {bpp} != config.json's {qc.get('bits_per_parameter')}")
    if args.expect_bits is not None and not bpp > args.expect_bits:
        errors.append(f"{bpp} bits per weight for {args.expect_bits}-bit codes")
    model = make_model(config, sd, errors, "decoded spqr")
    ids = load_tokens(args)
    n = min(args.windows, len(ids) // args.window)
    ppl = perplexity(model, ids[: n * args.window].reshape(n, args.window))
    rel = abs(ppl - args.expect) / args.expect
    print(f"perplexity: transformers on the decoded weights {ppl:.4f}, the job's {args.expect:.4f} "
          f"(relative {rel:.2e}, {n} windows of {args.window})")
    if not rel <= args.ppl_tolerance:
        errors.append(f"perplexity differs by {rel:.3%} > {args.ppl_tolerance:.1%}")
    for e in errors:
        print("FAIL:", e)
    print("OK" if not errors else f"{len(errors)} failure(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
