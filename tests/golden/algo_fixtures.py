#!/usr/bin/env python3
"""Golden outputs of the layer solvers: runs algo_reference.py (independent
PyTorch GPTQ / SparseGPT / RTN / Wanda, float32) on the real layers captured
by algo_capture.py and writes, per layer, tests/golden/fixtures/
algo_<name>_expected.json (one entry per configuration: solver options, the
relative reconstruction error tr(D H D^T) / tr(W H W^T), and where each output
array lies in the .bin) and algo_<name>_expected.bin (codes uint8, grids
float32, group index int32, masks numpy.packbits, some float32 weights).
Usage (from the repo root): /tmp/venvtest/bin/python tests/golden/algo_fixtures.py
"""
import json
import os

import numpy as np
import torch

import algo_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "golden", "fixtures")
LAYERS = ["l0_q_proj", "l5_down_proj", "l29_gate_proj"]
DEAD = [3, 100, 257]  # inputs made dead (H row and column zeroed) in "gptq_dead"


def gptq(name, bits, group, sym, act=False, static=False, dead=False, scale_bits=0):
    return dict(name=name, solver="gptq", bits=bits, group=group, sym=sym, act_order=act,
                static_groups=static, dead=DEAD if dead else [], scale_bits=scale_bits)


CONFIGS = [
    gptq("gptq_w4_g128_sym", 4, 128, True),
    gptq("gptq_w3_pc_asym", 3, -1, False),
    gptq("gptq_w4_g32_asym", 4, 32, False),
    gptq("gptq_w3_g128_act", 3, 128, False, act=True),
    gptq("gptq_w4_g128_act_static", 4, 128, True, act=True, static=True),
    gptq("gptq_w2_g64_asym", 2, 64, False),
    gptq("gptq_w8_pc_sym", 8, -1, True),
    gptq("gptq_w4_g96_sym", 4, 96, True),
    gptq("gptq_dead_w4_g128", 4, 128, False, act=True, dead=True),
    gptq("gptq_w3_g16_act_static_sb6", 3, 16, True, act=True, static=True, scale_bits=6),
    gptq("gptq_w3_g32_sb6", 3, 32, True, scale_bits=6),
    gptq("gptq_w2_g16_asym_sb4", 2, 16, False, scale_bits=4),
    gptq("gptq_w4_g32_asym_act_static_sb6", 4, 32, False, act=True, static=True, scale_bits=6),
    dict(name="rtn_w4_g128_sym", solver="rtn", bits=4, group=128, sym=True),
    dict(name="rtn_w6_g16_sb8", solver="rtn", bits=6, group=16, sym=True, scale_bits=8),
    dict(name="rtn_w3_pc_asym", solver="rtn", bits=3, group=-1, sym=False),
    dict(name="rtn_w2_g16_asym_sb4", solver="rtn", bits=2, group=16, sym=False, scale_bits=4),
    dict(name="sgpt_50_block", solver="sparsegpt", sparsity=0.5, n=0, m=0, scope="block",
         values=True),
    dict(name="sgpt_50_row", solver="sparsegpt", sparsity=0.5, n=0, m=0, scope="row"),
    dict(name="sgpt_24", solver="sparsegpt", sparsity=0, n=2, m=4, scope="block", values=True),
    dict(name="sgpt_48", solver="sparsegpt", sparsity=0, n=4, m=8, scope="block"),
    dict(name="sgpt_50_q4_g128", solver="sparsegpt", sparsity=0.5, n=0, m=0, scope="block",
         quant=dict(bits=4, group=128, sym=False)),
    dict(name="sgpt_24_then_gptq_w4_g128", solver="sparsegpt+gptq", sparsity=0, n=2, m=4,
         scope="block", bits=4, group=128, sym=False),
    dict(name="wanda_50", solver="wanda", sparsity=0.5, n=0, m=0),
    dict(name="wanda_24", solver="wanda", sparsity=0, n=2, m=4),
    # FP8 E4M3 per channel (last, so the earlier entries keep their offsets in the .bin)
    dict(gptq("gptq_fp8_pc", 8, -1, True), fp8=True),
    dict(gptq("gptq_fp8_pc_act", 8, -1, True, act=True), fp8=True),
    dict(name="rtn_fp8_pc", solver="rtn", bits=8, group=-1, sym=True, fp8=True),
]


def bits_of(cfg):
    return "fp8" if cfg.get("fp8") else cfg["bits"]


class Blob:
    def __init__(self):
        self.parts, self.size = [], 0

    def add(self, arr, dtype):
        if dtype == "bits":
            data = np.packbits(arr.numpy().astype(np.uint8).ravel()).tobytes()
        else:
            data = arr.numpy().astype({"u1": "u1", "f4": "<f4", "i4": "<i4"}[dtype]).tobytes()
        entry = dict(offset=self.size, dtype=dtype, shape=list(arr.shape))
        self.parts.append(data)
        self.size += len(data)
        return entry


def run(cfg, w, h, blob):
    arrays = {}
    if cfg["solver"] in ("gptq", "rtn", "sparsegpt+gptq"):
        if cfg["solver"] == "rtn":
            out, codes, scales, zeros = ref.rtn(w, bits_of(cfg), cfg["group"], cfg["sym"],
                                                cfg.get("scale_bits", 0))
        else:
            base = w
            if cfg["solver"] == "sparsegpt+gptq":
                base, mask = ref.sparsegpt(w, h, cfg["sparsity"], cfg["n"], cfg["m"])[:2]
                arrays["mask"] = blob.add(mask, "bits")
            hh = h.clone()
            for j in cfg.get("dead", []):
                hh[j, :] = 0
                hh[:, j] = 0
            out, codes, scales, zeros, gidx = ref.gptq(
                base, hh, bits_of(cfg), cfg["group"], cfg["sym"], cfg.get("act_order", False),
                cfg.get("static_groups", False), scale_bits=cfg.get("scale_bits", 0))
            arrays["gidx"] = blob.add(gidx, "i4")
        arrays["codes"] = blob.add(codes, "u1")
        arrays["scales"] = blob.add(scales, "f4")
        arrays["zeros"] = blob.add(zeros, "f4")
    elif cfg["solver"] == "sparsegpt":
        q = cfg.get("quant")
        out, mask, codes, scales, zeros = ref.sparsegpt(
            w, h, cfg["sparsity"], cfg["n"], cfg["m"], cfg["scope"],
            quant=(q["bits"], q["group"], q["sym"]) if q else None)
        arrays["mask"] = blob.add(mask, "bits")
        if q:
            arrays["codes"] = blob.add(codes, "u1")
            arrays["scales"] = blob.add(scales, "f4")
            arrays["zeros"] = blob.add(zeros, "f4")
        if cfg.get("values"):
            arrays["values"] = blob.add(out, "f4")
    else:
        mask = ref.wanda(w, h, cfg["sparsity"], cfg["n"], cfg["m"])
        out = w * ~mask
        arrays["mask"] = blob.add(mask, "bits")
    return dict(cfg, rel_error=ref.relative_error(w, out, h), arrays=arrays)


def main():
    torch.set_num_threads(2)
    for name in LAYERS:
        with open(os.path.join(FIX, f"algo_{name}.json")) as f:
            meta = json.load(f)
        rows, cols = meta["rows"], meta["cols"]
        raw = np.fromfile(os.path.join(FIX, f"algo_{name}.bin"), dtype="<f4")
        w = torch.from_numpy(raw[:rows * cols].reshape(rows, cols).copy())
        h = torch.from_numpy(raw[rows * cols:].reshape(cols, cols).copy())
        blob, out = Blob(), []
        for cfg in CONFIGS:
            out.append(run(cfg, w, h, blob))
            print(name, cfg["name"], "rel_error %.6f" % out[-1]["rel_error"])
        with open(os.path.join(FIX, f"algo_{name}_expected.bin"), "wb") as f:
            for part in blob.parts:
                f.write(part)
        with open(os.path.join(FIX, f"algo_{name}_expected.json"), "w") as f:
            json.dump(dict(layer=name, reference="tests/golden/algo_reference.py",
                           block=128, percdamp=0.01, configs=out), f, indent=1)
        print(name, "expected.bin", blob.size, "bytes")


if __name__ == "__main__":
    main()
