#!/usr/bin/env python3
"""Golden fixtures for AWQ (Lin et al. 2024, "AWQ: Activation-aware Weight
Quantization for LLM Compression and Acceleration"), written from the paper
(eq. 4-5: s = s_X^a, a on a grid in [0, 1), the error of the quantized linear
outputs ||Q(W diag(s)) (diag(s)^-1 X) - W X||^2) plus AutoAWQ's two additions
(duo scaling: s = s_X^a / s_W^(1-a), s_W the mean of |w| over its group's max;
normalising s by sqrt(max s * min s)), independent of the C++ engine.

Real inputs: SmolLM2-135M-Instruct (GGUF Q4_1 dequantized by transformers),
8 calib-sotu windows of 512 tokens (algo_capture.py's protocol), the inputs X
of two groups captured with forward pre-hooks:
  l0_qkv:  layer 0's q/k/v (their first 64 rows each), input: the attention norm's output
  l5_down: layer 5's down_proj (first 96 rows, first 512 inputs: the same problem
           on a subset of the inputs)
The reference computes every candidate's error with X itself (float64), where
the engine uses H = 2 X X^T / n; s_X = mean_t |x_tj| is stored (float32) and
both sides compute the scales from the stored values. The unscaled weights are
candidate 0 (the engine keeps them when no a does better).

Writes tests/golden/fixtures/awq_<name>.bin (float32 LE: W[rows, cols], H[cols,
cols], s_X[cols]) and awq_<name>.json (row counts per linear, and per
configuration: every candidate's relative error, the chosen candidate, its scales;
and per clipping configuration (clip_search, on the stacked unscaled W): the chosen
ratio of every (row, group) and the relative errors unclipped and clipped).
Usage (from the repo root, after scripts/fetch-model.sh):
  .venv/bin/python tests/golden/awq_fixtures.py
"""
import glob
import json
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from algo_reference import rtn  # noqa: E402  (round to nearest on the shared grid)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "fixtures")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOTU = os.path.join(ROOT, "..", "shared", "data", "text", "sotu")
WINDOWS, WINDOW = 8, 512
# name -> (input hook module, [(linear, rows kept)], cols kept)
GROUPS = {
    "l0_qkv": ("model.layers.0.self_attn.q_proj",
               [("model.layers.0.self_attn.q_proj", 64), ("model.layers.0.self_attn.k_proj", 64),
                ("model.layers.0.self_attn.v_proj", 64)], 576),
    "l5_down": ("model.layers.5.mlp.down_proj", [("model.layers.5.mlp.down_proj", 96)], 512),
}
# (bits, group_size, symmetric, duo_scaling, grid_points)
CONFIGS = [(4, 128, False, True, 20), (3, 64, True, False, 20), (4, -1, True, True, 10)]
# clipping searches on the stacked W: (bits, group_size, symmetric, grid_points)
CLIP_CONFIGS = [(4, 128, False, 20), (3, 64, True, 20), (4, -1, True, 10)]


def candidate_scales(x_mean, w_mean, a, duo):
    s = x_mean.pow(a)
    if duo:
        s = s / (w_mean.pow(1 - a) + 1e-4)
    s = s.clamp(min=1e-4)
    s = s / torch.sqrt(s.max() * s.min())
    s = s.float()
    s[~torch.isfinite(s) | (s <= 0)] = 1
    return s


def weight_mean(ws, group):
    w = torch.cat(ws).double()
    g = group if group > 0 else w.shape[1]
    parts = []
    for c in range(0, w.shape[1], g):
        blk = w[:, c:c + g].abs()
        parts.append(blk / (blk.max(1, keepdim=True).values + 1e-6))
    return torch.cat(parts, 1).mean(0)


def search(ws, x, x_mean, bits, group, sym, duo, n):
    """Every candidate's relative error on X, and the winner's index and scales."""
    dense = sum(float(((x @ w.double().T) ** 2).sum()) for w in ws)

    def error(s):
        total = 0.0
        for w in ws:
            ws_ = w if s is None else w * s[None, :]
            q = rtn(ws_.float(), bits, group, sym)[0].double()
            w_new = q if s is None else q / s.double()[None, :]
            total += float(((x @ (w.double() - w_new).T) ** 2).sum())
        return total / dense

    w_mean = weight_mean(ws, group) if duo else None
    errors, scales = [error(None)], [torch.ones(x.shape[1])]
    for k in range(n):
        s = candidate_scales(x_mean.double(), w_mean, k / n, duo)
        errors.append(error(s))
        scales.append(s)
    best = int(np.argmin(errors))
    return errors, best, scales[best]


def clip_search(w, x, bits, group, sym, n_grid, max_shrink=0.5):
    """AWQ's clipping (llm-awq / AutoAWQ auto_clip) written from X: per (row, group) the
    ratio r in {1, 1 - 1/n, ..., 1 - max_shrink} whose partial outputs X_g (w_g -
    Q(clamp(w_g, +-r max|w_g|)))^T have the least squared error (first minimum: the
    larger r). Returns the ratios [rows, groups] and the relative errors unclipped and
    chosen (sum over pairs / sum ||X_g w_g||^2)."""
    rows, cols = w.shape
    g = group if group > 0 else cols
    starts = list(range(0, cols, g))
    ratios = [1 - i / n_grid for i in range(int(max_shrink * n_grid) + 1)]

    def group_errors(e):
        return torch.stack([((x[:, c:c + g] @ e[:, c:c + g].T) ** 2).sum(0) for c in starts], 1)

    errs = []
    for r in ratios:
        wc = w.clone()
        for c in starts:
            lim = w[:, c:c + g].abs().amax(1, keepdim=True) * torch.tensor(r, dtype=torch.float32)
            wc[:, c:c + g] = torch.maximum(torch.minimum(w[:, c:c + g], lim), -lim)
        q = rtn(wc, bits, group, sym)[0]
        errs.append(group_errors((w - q).double()))
    errs = torch.stack(errs)  # [ratios, rows, groups]
    best = torch.argmin(errs, 0)  # the first minimum
    dense = float(group_errors(w.double()).sum())
    chosen = errs.gather(0, best[None])[0]
    ratio = torch.tensor(ratios, dtype=torch.float32)[best]
    return ratio, float(errs[0].sum()) / dense, float(chosen.sum()) / dense


def capture(model, tok):
    texts = [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(SOTU, "*.txt")))]
    ids = np.asarray(tok("\n".join(texts), add_special_tokens=False)["input_ids"], dtype=np.int64)
    offsets = np.random.default_rng(0).integers(0, len(ids) - WINDOW + 1, WINDOWS)
    xs, hooks = {}, []
    for name, (path, _, _) in GROUPS.items():
        def hook(_mod, inputs, name=name):
            xs.setdefault(name, []).append(inputs[0].reshape(-1, inputs[0].shape[-1]).double())
        hooks.append(model.get_submodule(path).register_forward_pre_hook(hook))
    with torch.no_grad():
        for o in offsets:
            model.model(torch.from_numpy(ids[o:o + WINDOW])[None])
    for h in hooks:
        h.remove()
    return {k: torch.cat(v) for k, v in xs.items()}, offsets


def main():
    torch.set_num_threads(2)
    models = os.path.join(ROOT, ".cache", "models")
    tok = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32).eval()
    xs, offsets = capture(model, tok)
    for name, (_, linears, cols) in GROUPS.items():
        x = xs[name][:, :cols]
        ws = [model.get_submodule(p).weight.detach().float()[:rows, :cols] for p, rows in linears]
        x_mean = x.abs().mean(0).float()
        h = (2.0 * x.T @ x / x.shape[0]).float()
        with open(os.path.join(OUT, f"awq_{name}.bin"), "wb") as f:
            for a in (torch.cat(ws), h, x_mean):
                f.write(np.ascontiguousarray(a.numpy(), dtype="<f4").tobytes())
        configs = []
        for bits, group, sym, duo, n in CONFIGS:
            errors, best, s = search(ws, x, x_mean, bits, group, sym, duo, n)
            configs.append(dict(bits=bits, group_size=group, symmetric=sym, duo_scaling=duo,
                                grid_points=n, errors=errors, best=best,
                                scales=[float(v) for v in s]))
            print(name, bits, group, sym, duo, "best", best, "unscaled %.5f best %.5f" %
                  (errors[0], errors[best]))
        clips = []
        for bits, group, sym, n in CLIP_CONFIGS:
            w = torch.cat(ws)
            ratio, before, after = clip_search(w, x, bits, group, sym, n)
            clips.append(dict(bits=bits, group_size=group, symmetric=sym, grid_points=n,
                              max_shrink=0.5, ratio=[float(v) for v in ratio.flatten()],
                              error_unclipped=before, error=after))
            print(name, "clip", bits, group, sym, "unclipped %.5f clipped %.5f (%.0f%% shrunk)" %
                  (before, after, 100 * float((ratio < 1).float().mean())))
        meta = dict(what="AWQ golden group (awq_fixtures.py)",
                    linears=[p for p, _ in linears], rows=[r for _, r in linears], cols=cols,
                    layout="float32 LE: W[sum rows, cols] (the linears stacked), H[cols, cols], "
                           "x_mean[cols]",
                    tokens=int(x.shape[0]), window=WINDOW, offsets=offsets.tolist(),
                    configs=configs, clip_configs=clips)
        with open(os.path.join(OUT, f"awq_{name}.json"), "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
