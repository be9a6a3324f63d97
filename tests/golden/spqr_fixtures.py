#!/usr/bin/env python3
"""Golden fixtures for SpQR (Dettmers et al. 2023): an independent PyTorch
implementation written from the paper's Algorithm 1 (act-order GPTQ over
groups of beta1 inputs, leave-one-out outlier-aware group statistics, scales
and zero points quantized to stat_bits over beta2 outputs, outliers where the
OBS error e^2 exceeds tau * mean_j(var(W_j) / U_jj^2)), with the storage
choices docs/algorithms.md "SpQR" documents: second-level (scale, zero) in
float16, outliers kept as float16, a second-level group too narrow for
float16 stored as its midpoint. Inputs: the real SmolLM2 layers of
algo_capture.py (fixtures/algo_<layer>.{json,bin}: W then H, float32).

Writes tests/golden/fixtures/spqr_expected.json and spqr_expected.bin: per
(layer, configuration) the dequantized weight (float32 [rows, cols]), the
codes (uint8, input order) and the outlier mask (uint8), with the threshold,
the outlier count and the relative reconstruction error.
Usage (from the repo root): .venv/bin/python tests/golden/spqr_fixtures.py
"""
import json
import math
import os

import numpy as np
import torch

import algo_reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "golden", "fixtures")
LAYERS = ["l0_q_proj", "l5_down_proj"]
CONFIGS = [
    dict(name="w3_g16_s3_outliers", bits=3, group=16, stat_bits=3, stat_group=16, tau=0.2,
         act_order=True, percdamp=1.0),
    dict(name="w4_g16_s3_no_outliers", bits=4, group=16, stat_bits=3, stat_group=16,
         tau=math.inf, act_order=True, percdamp=1.0),
    dict(name="w2_g32_s4_b8_identity", bits=2, group=32, stat_bits=4, stat_group=8, tau=0.5,
         act_order=False, percdamp=0.1),
]


def half(x):
    return x.half().float()


def minmax(x, maxq):
    """Asymmetric min-max per row of x [n, k]: (scale, zero), zero not rounded."""
    lo, hi = x.min(dim=1).values, x.max(dim=1).values
    const = lo == hi
    lo = torch.where(const, torch.full_like(lo, -1.0), lo)
    hi = torch.where(const, torch.full_like(hi, 1.0), hi)
    scale = (hi - lo) / maxq
    return scale, -lo / scale


def qdq(x, scale, zero, maxq):
    code = torch.clamp(torch.round(x / scale.clamp_min(1e-9) + zero), 0, maxq)
    return code, scale * (code - zero)


def fit_groups(g, d, maxq, t):
    """Per-row grid of the group g [rows, k] fitted without its likely outliers."""
    rows, k = g.shape
    if math.isinf(t) or k < 2:
        return minmax(g, maxq)
    s, z = minmax(g, maxq)
    base = (((qdq(g, s[:, None], z[:, None], maxq)[1] - g) / d) ** 2).sum(1)
    likely = torch.zeros_like(g, dtype=torch.bool)
    for i in range(k):
        keep = [j for j in range(k) if j != i]
        x = g[:, keep]
        si, zi = minmax(x, maxq)
        loo = (((qdq(x, si[:, None], zi[:, None], maxq)[1] - x) / d[keep]) ** 2).sum(1)
        likely[:, i] = (base - loo) > t
    kept = (~likely).float()
    mean = (g * kept).sum(1, keepdim=True) / kept.sum(1, keepdim=True).clamp_min(1)
    return minmax(torch.where(likely, mean, g), maxq)


def quantize_stats(v, stat_group, smax):
    """Second level over consecutive runs of stat_group rows: dequantized values."""
    out = torch.empty_like(v)
    for r0 in range(0, v.numel(), stat_group):
        x = v[r0:r0 + stat_group]
        lo, hi = x.min(), x.max()
        scale = (hi - lo) / smax
        s2, z2 = half(scale), half(-lo / scale)
        if not (lo < hi) or not (s2 > 0) or not torch.isfinite(z2):
            s2, z2 = torch.tensor(1.0), -half((lo + hi) * 0.5)
        out[r0:r0 + stat_group] = qdq(x, s2, z2, smax)[1]
    return out


def spqr(w, h, bits, group, stat_bits, stat_group, tau, act_order, percdamp, block=128):
    rows, cols = w.shape
    maxq, smax = 2 ** bits - 1, 2 ** stat_bits - 1
    diag = torch.diag(h)
    perm = torch.arange(cols)
    if act_order:
        perm = torch.sort(torch.where(diag == 0, torch.ones_like(diag), diag), descending=True,
                          stable=True).indices
    w = w.clone()
    w[:, diag == 0] = 0
    w = w[:, perm]
    u = ref.hinv_upper(h[perm][:, perm], percdamp)
    d = torch.diag(u)
    t = math.inf
    if not math.isinf(tau):
        t = tau * (w.double().var(dim=0) / d.double() ** 2).mean().item()
    codes = torch.zeros(rows, cols, dtype=torch.uint8)
    outlier = torch.zeros(rows, cols, dtype=torch.bool)
    block = max(1, block // group) * group
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        err = torch.zeros(rows, i2 - i1)
        for p in range(i1, i2):
            if (p - i1) % group == 0:
                k = min(group, cols - p)
                s, z = fit_groups(w[:, p:p + k], d[p:p + k], maxq, t)
                s = quantize_stats(s, stat_group, smax)
                z = quantize_stats(z, stat_group, smax)
            x = w[:, p].clone()
            code, q = qdq(x, s, z, maxq)
            e = (x - q) / d[p]
            out = e.double() ** 2 > t
            q = torch.where(out, half(x), q)
            e = (x - q) / d[p]
            codes[:, p] = code.to(torch.uint8)
            outlier[:, p] = out
            w[:, p] = q
            err[:, p - i1] = e
            w[:, p + 1:i2] -= e[:, None] * u[p, p + 1:i2][None, :]
        w[:, i2:] -= err @ u[i1:i2, i2:]
    inv = torch.argsort(perm)
    return w[:, inv], codes[:, inv], outlier[:, inv], t


def main():
    torch.set_num_threads(2)
    entries, blob = [], bytearray()
    for layer in LAYERS:
        meta = json.load(open(os.path.join(FIX, f"algo_{layer}.json")))
        rows, cols = meta["rows"], meta["cols"]
        raw = np.fromfile(os.path.join(FIX, f"algo_{layer}.bin"), dtype="<f4")
        w = torch.from_numpy(raw[:rows * cols].reshape(rows, cols).copy())
        h = torch.from_numpy(raw[rows * cols:].reshape(cols, cols).copy())
        for c in CONFIGS:
            args = {k: v for k, v in c.items() if k != "name"}
            wq, codes, outlier, t = spqr(w, h, **args)
            arrays = {}
            for what, a in (("weights", wq.numpy().astype("<f4")), ("codes", codes.numpy()),
                            ("outliers", outlier.numpy().astype(np.uint8))):
                arrays[what] = dict(offset=len(blob), dtype=str(a.dtype))
                blob += a.tobytes()
            entries.append(dict(layer=layer, config=c["name"], options=args, rows=rows, cols=cols,
                                threshold=t, outlier_count=int(outlier.sum()),
                                relative_error=ref.relative_error(w, wq, h), arrays=arrays))
            print(layer, c["name"], "outliers", int(outlier.sum()), "error",
                  entries[-1]["relative_error"])
    for e in entries:
        for k in ("tau",):
            if math.isinf(e["options"][k]):
                e["options"][k] = None  # JSON has no infinity: no outliers
        if math.isinf(e["threshold"]):
            e["threshold"] = None
    json.dump(dict(source="tests/golden/spqr_fixtures.py", entries=entries),
              open(os.path.join(FIX, "spqr_expected.json"), "w"), indent=1)
    open(os.path.join(FIX, "spqr_expected.bin"), "wb").write(bytes(blob))


if __name__ == "__main__":
    main()
