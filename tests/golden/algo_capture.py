#!/usr/bin/env python3
"""Real layer inputs for the solver golden tests: W and H = 2 X X^T / n of a
few SmolLM2-135M-Instruct linear layers (GGUF Q4_1 dequantized to float32 by
transformers), captured with forward pre-hooks on calib-sotu windows.

calib-sotu here: text/sotu/*.txt concatenated in file-name order (joined with
"\n"), tokenized whole with the GGUF's tokenizer (no BOS), windows of
--window tokens at offsets numpy.random.default_rng(0).integers(0,
n_tokens - window + 1, n_windows). H is accumulated in float64 over every
token of every window (n = n_windows * window) and stored as float32.

Writes tests/golden/fixtures/algo_<name>.bin (float32 LE: W[rows, cols] then
H[cols, cols]) and algo_<name>.json (shapes, which slice of the real layer the
fixture holds, the window offsets). To stay under 2 MB a fixture keeps the
first `rows` output rows and, for wide inputs, the first `cols` inputs (the
Hessian of a subset of inputs is that block of H, so it is still a real one).
With --full-dir DIR it also writes the whole layers there (DIR/<name>.bin, same
layout, and DIR/<name>.json) for bench/solvers; those are not fixtures.
Usage (from the repo root, after scripts/fetch-model.sh):
  /tmp/venvtest/bin/python tests/golden/algo_capture.py [--windows 16] [--full-dir DIR]
"""
import argparse
import glob
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "fixtures")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOTU = os.path.join(ROOT, "..", "shared", "data", "text", "sotu")
# name -> (module path, rows kept, cols kept)
LAYERS = {
    "l0_q_proj": ("model.layers.0.self_attn.q_proj", 128, 576),
    "l5_down_proj": ("model.layers.5.mlp.down_proj", 128, 512),
    "l29_gate_proj": ("model.layers.29.mlp.gate_proj", 128, 576),
}


def write(stem, path, w, h, full_shape, what, n, args, offsets):
    with open(stem + ".bin", "wb") as f:
        f.write(np.ascontiguousarray(w, dtype="<f4").tobytes())
        f.write(np.ascontiguousarray(h, dtype="<f4").tobytes())
    meta = dict(module=path, rows=w.shape[0], cols=w.shape[1], full_shape=list(full_shape),
                layout="float32 LE: W[rows, cols] row-major, then H[cols, cols]", slice=what,
                n_tokens=n, window=args.window, offsets=offsets.tolist(),
                protocol="calib-sotu, numpy default_rng(0) offsets, H float64-accumulated")
    with open(stem + ".json", "w") as f:
        json.dump(meta, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full-dir", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = os.path.join(ROOT, ".cache", "models")
    tok = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32).eval()
    texts = []
    for path in sorted(glob.glob(os.path.join(SOTU, "*.txt"))):
        with open(path, encoding="utf-8") as f:
            texts.append(f.read())
    ids = np.asarray(tok("\n".join(texts), add_special_tokens=False)["input_ids"], dtype=np.int64)
    offsets = np.random.default_rng(0).integers(0, len(ids) - args.window + 1, args.windows)
    windows = np.stack([ids[o:o + args.window] for o in offsets])

    sums, hooks = {}, []
    for name, (path, _, _) in LAYERS.items():
        module = model.get_submodule(path)
        sums[name] = torch.zeros(module.in_features, module.in_features, dtype=torch.float64)

        def hook(mod, inputs, name=name):
            x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
            sums[name] += x.T @ x
        hooks.append(module.register_forward_pre_hook(hook))
    with torch.no_grad():
        for b in range(0, args.windows, args.batch):
            model.model(torch.from_numpy(windows[b:b + args.batch]))
    n = args.windows * args.window
    for name, (path, rows, cols) in LAYERS.items():
        w = model.get_submodule(path).weight.detach().float().numpy()
        h = (2.0 * sums[name] / n).float().numpy()
        write(os.path.join(OUT, f"algo_{name}"), path, w[:rows, :cols], h[:cols, :cols], w.shape,
              f"W[:{rows}, :{cols}], H[:{cols}, :{cols}]", n, args, offsets)
        if args.full_dir:
            os.makedirs(args.full_dir, exist_ok=True)
            write(os.path.join(args.full_dir, name), path, w, h, w.shape, "whole layer", n, args,
                  offsets)
        print(name, w.shape, "->", (rows, cols), "trace H", float(np.trace(h)))


if __name__ == "__main__":
    main()
