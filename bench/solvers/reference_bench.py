#!/usr/bin/env python3
"""PyTorch side of bench/solvers/run.sh: times tests/golden/algo_reference.py's
SparseGPT and GPTQ on the whole layers of algo_capture.py --full-dir DIR, on
the same configurations as solver_bench.cc, with torch.set_num_threads(THREADS).
Prints "RESULT <layer> <config> <seconds> <rel_error>" (median of --repeats) for
algo_reference.py (the golden reference: general, with the mask/grid bookkeeping
the C++ has) and "LEAN ..." for a minimal PyTorch transcription of the papers'
Algorithm 1 (float32 factor, fewest ops per column, no codes or masks kept;
symmetric grid, SparseGPT mask ties not broken by index) as a stronger baseline.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "golden"))
import algo_reference as ref  # noqa: E402

CONFIGS = {
    "sparsegpt_50": lambda w, h: ref.sparsegpt(w, h, 0.5)[0],
    "sparsegpt_2:4": lambda w, h: ref.sparsegpt(w, h, 0, 2, 4)[0],
    "gptq_w4_g128": lambda w, h: ref.gptq(w, h, 4, 128, True)[0],
    "gptq_w4_g128_act": lambda w, h: ref.gptq(w, h, 4, 128, True, act_order=True)[0],
}


def lean_factor(h):
    """float32 chol -> inverse -> upper chol, as the papers' released code does."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h += 0.01 * torch.mean(torch.diag(h)) * torch.eye(h.shape[0])
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def lean_gptq(w, h, bits, group, act_order=False, block=128):
    """GPTQ Algorithm 1 with the fewest torch ops per column (symmetric grid)."""
    w = w.clone()
    w[:, torch.diag(h) == 0] = 0
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
        w, h = w[:, perm], h[perm][:, perm]
    u, cols, maxq = lean_factor(h), w.shape[1], 2 ** bits - 1
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, err = w[:, i1:i2].clone(), torch.zeros(w.shape[0], i2 - i1)
        for i in range(i2 - i1):
            if (i1 + i) % group == 0:
                amax = w[:, i1 + i:i1 + i + group].abs().amax(1).clamp(min=1e-8)
                scale, zero = (2 * amax / maxq)[:, None], (maxq + 1) // 2
            x = w1[:, i:i + 1]
            q = scale * (torch.clamp(torch.round(x / scale) + zero, 0, maxq) - zero)
            e = (x - q) / u[i1 + i, i1 + i]
            w1[:, i:] -= e * u[i1 + i, i1 + i:i2][None]
            err[:, i:i + 1] = e
            w1[:, i:i + 1] = q
        w[:, i1:i2] = w1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return w[:, torch.argsort(perm)] if act_order else w


def lean_sparsegpt(w, h, sparsity=0.5, n=0, m=0, block=128):
    """SparseGPT Algorithm 1 with the fewest torch ops per column."""
    w = w.clone()
    w[:, torch.diag(h) == 0] = 0
    u, cols = lean_factor(h), w.shape[1]
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, err = w[:, i1:i2].clone(), torch.zeros(w.shape[0], i2 - i1)
        d = torch.diag(u)[i1:i2]
        mask = torch.zeros_like(w1, dtype=torch.bool)
        if not n:
            s = (w1 / d) ** 2
            mask = s <= torch.kthvalue(s.flatten(), max(1, int(s.numel() * sparsity)))[0]
        for i in range(i2 - i1):
            if n and i % m == 0:
                s = (w1[:, i:i + m] / d[i:i + m]) ** 2
                mask[:, i:i + m].scatter_(1, torch.topk(s, m - n, 1, largest=False)[1], True)
            x = w1[:, i:i + 1]
            q = x * ~mask[:, i:i + 1]
            e = (x - q) / d[i]
            w1[:, i:] -= e * u[i1 + i, i1 + i:i2][None]
            err[:, i:i + 1] = e
            w1[:, i:i + 1] = q
        w[:, i1:i2] = w1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return w


LEAN = {
    "sparsegpt_50": lambda w, h: lean_sparsegpt(w, h, 0.5),
    "sparsegpt_2:4": lambda w, h: lean_sparsegpt(w, h, 0, 2, 4),
    "gptq_w4_g128": lambda w, h: lean_gptq(w, h, 4, 128),
    "gptq_w4_g128_act": lambda w, h: lean_gptq(w, h, 4, 128, act_order=True),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="/tmp/algo_bench_layers")
    ap.add_argument("--names", default="l0_q_proj,l5_down_proj,l29_gate_proj")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in args.names.split(","):
        with open(os.path.join(args.layers, name + ".json")) as f:
            meta = json.load(f)
        rows, cols = meta["rows"], meta["cols"]
        raw = np.fromfile(os.path.join(args.layers, name + ".bin"), dtype="<f4")
        w = torch.from_numpy(raw[:rows * cols].reshape(rows, cols).copy())
        h = torch.from_numpy(raw[rows * cols:].reshape(cols, cols).copy())
        for tag, table in (("RESULT", CONFIGS), ("LEAN", LEAN)):
            for cfg, fn in table.items():
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    out = fn(w, h)
                    times.append(time.perf_counter() - t0)
                err = ref.relative_error(w, out, h)
                print(f"{tag} {name} {cfg} {statistics.median(times):.6f} {err:.6f}", flush=True)


if __name__ == "__main__":
    main()
