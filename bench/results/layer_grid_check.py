#!/usr/bin/env python3
"""One layer's GPTQ error on the dense model's inputs, float scales against scales on the
k-quant lattice (docs/results.md, "Scales on the k-quant lattice").

Captures W and H = 2 X X^T / n of each named linear on the dense SmolLM2 (transformers, GGUF
dequantized) over calib-sotu windows (32 x 512, seed 0, as tests/golden/algo_capture.py cuts
them), then runs the independent PyTorch reference (tests/golden/algo_reference.py) GPTQ 3-bit
g32: act-order with static groups, float scales and scale_bits 6, and without act-order (groups
chosen during the sweep). Prints each relative reconstruction error and the layer's largest
input energies H_jj.

Usage (repo root): .venv/bin/python bench/results/layer_grid_check.py [LAYER ...]
  default layers: model.layers.{5,20,27,28,29}.mlp.down_proj
"""
import glob
import os
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
import algo_reference as ref  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WINDOW, WINDOWS = 512, 32


def capture(model, windows, paths):
    sums, handles = {}, []
    for p in paths:
        m = model.get_submodule(p)
        sums[p] = torch.zeros(m.in_features, m.in_features, dtype=torch.float64)

        def hook(mod, inputs, p=p):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
            sums[p].add_(x.T @ x)
        handles.append(m.register_forward_pre_hook(hook))
    with torch.no_grad():
        for b in range(0, len(windows), 4):
            model.model(torch.from_numpy(windows[b:b + 4]))
    for h in handles:
        h.remove()
    n = len(windows) * windows.shape[1]
    return {p: (model.get_submodule(p).weight.detach().float(), (2.0 * s / n).float())
            for p, s in sums.items()}


def main():
    torch.set_num_threads(2)
    paths = sys.argv[1:] or [f"model.layers.{b}.mlp.down_proj" for b in (5, 20, 27, 28, 29)]
    models = os.path.join(ROOT, ".cache", "models")
    tok = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32).eval()
    texts = [open(p, encoding="utf-8").read()
             for p in sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "text", "sotu",
                                                    "*.txt")))]
    ids = np.asarray(tok("\n".join(texts), add_special_tokens=False)["input_ids"], dtype=np.int64)
    offsets = np.random.default_rng(0).integers(0, len(ids) - WINDOW + 1, WINDOWS)
    windows = np.stack([ids[o:o + WINDOW] for o in offsets])
    print("| layer | static, float | static, scale_bits 6 | no act-order, float | "
          "largest H_jj / median |")
    print("|---|---:|---:|---:|---|")
    for p, (w, h) in capture(model, windows, paths).items():
        errs = [ref.relative_error(w, ref.gptq(w, h, 3, 32, True, act_order=True,
                                               static_groups=True, scale_bits=sb)[0], h)
                for sb in (0, 6)]
        errs.append(ref.relative_error(w, ref.gptq(w, h, 3, 32, True)[0], h))
        d = torch.diag(h)
        top = torch.topk(d, 2).values / d.median()
        print(f"| {p} | {errs[0]:.5f} | {errs[1]:.5f} | {errs[2]:.5f} | "
              f"{top[0]:.0f}, {top[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
