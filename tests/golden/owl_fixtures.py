#!/usr/bin/env python3
"""Golden fixture for OWL (Yin et al. 2024) on the real SmolLM2-135M-Instruct,
written from the paper and its reference code's procedure, independent of the
C++ engine: transformers' float32 forward of the dense model (GGUF Q4_1
dequantized by transformers) on 16 sequences of 128 tokens of persuasion.txt
(nn_ppl_persuasion_tokens.bin, sequence i at token 128 * i), forward hooks
summing x_j^2 over every token at the input of each decoder layer's
nn.Linear, then per layer
  A_ij = |W_ij| * sqrt(sum x_j^2)            (Wanda's score; all 7 linears)
  R_l  = 100 * #{A > m * mean(A)} / #A       (one pool per layer)
and the allocation s_l = S - (D_l - mean D), D = 2 lambda (R - min R) / (max R - min R).

Writes tests/golden/fixtures/owl_smollm2.json: the sequences, and for each m
the per-layer R, and for a few (S, lambda, m) the per-layer sparsity.
Usage (from the repo root, after scripts/fetch-model.sh):
  .venv/bin/python tests/golden/owl_fixtures.py
"""
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "golden", "fixtures")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SEQS, SEQ_LEN = 16, 128
MS = [3.0, 5.0, 7.0]
ALLOCATIONS = [(0.5, 0.08, 5.0), (0.7, 0.08, 5.0), (0.6, 0.2, 3.0)]


def allocation(r, sparsity, lam):
    r = np.asarray(r, dtype=np.float64)
    span = r.max() - r.min()
    d = (r - r.min()) / span * 2 * lam if span > 0 else np.zeros_like(r)
    return sparsity - (d - d.mean())


def main():
    torch.set_num_threads(2)
    models = os.path.join(ROOT, ".cache", "models")
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    tokens = np.fromfile(os.path.join(FIX, "nn_ppl_persuasion_tokens.bin"), dtype="<i4")
    sums = {}

    def hook(name):
        def run(_module, inputs, _output):
            x = inputs[0].detach().to(torch.float64).reshape(-1, inputs[0].shape[-1])
            sums[name] = sums.get(name, 0) + (x * x).sum(dim=0)
        return run

    handles = []
    for i, layer in enumerate(model.model.layers):
        for name, mod in layer.named_modules():
            if isinstance(mod, torch.nn.Linear):
                handles.append(mod.register_forward_hook(hook((i, name))))
    offsets = [SEQ_LEN * s for s in range(SEQS)]
    with torch.no_grad():
        for off in offsets:
            model(torch.from_numpy(tokens[off:off + SEQ_LEN].astype(np.int64))[None])
    for h in handles:
        h.remove()

    percent = {m: [] for m in MS}
    for i, layer in enumerate(model.model.layers):
        scores = []
        for name, mod in layer.named_modules():
            if isinstance(mod, torch.nn.Linear):
                w = mod.weight.detach().to(torch.float64)
                scores.append((w.abs() * sums[(i, name)].sqrt()[None, :]).flatten())
        a = torch.cat(scores)
        mean = a.mean()
        for m in MS:
            percent[m].append(float((a > m * mean).sum()) / a.numel() * 100)
    out = {
        "what": "OWL outlier ratios of SmolLM2-135M-Instruct's dense layers (owl_fixtures.py)",
        "tokens": "nn_ppl_persuasion_tokens.bin",
        "offsets": offsets,
        "seq_len": SEQ_LEN,
        "outlier_percent": {str(m): percent[m] for m in MS},
        "allocations": [{"sparsity": s, "lambda": lam, "m": m,
                         "block_sparsity": allocation(percent[m], s, lam).tolist()}
                        for s, lam, m in ALLOCATIONS],
    }
    with open(os.path.join(FIX, "owl_smollm2.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("R(m=5):", " ".join(f"{v:.3f}" for v in percent[5.0]))


if __name__ == "__main__":
    main()
