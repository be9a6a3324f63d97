#!/usr/bin/env python3
"""Golden fixture for a recipe's `compute: bf16` (workers/engine/nn/bf16_gemm.h)
on the real SmolLM2-135M-Instruct: transformers in float32 with every
nn.Linear (the LM head included) replaced by its BF16 definition, written
independently of our code: the input and the weight are rounded to bfloat16
(round to nearest even: torch's .to(torch.bfloat16)), and the product is taken
in float32 (a bf16 x bf16 product is exact in float32, so only the order of the
float32 sums differs from ours). Attention, norms and the softmax stay float32,
as in our engine.

Writes tests/golden/fixtures/nn_real_smollm2_bf16.json:
  window, windows, window_nll_sums_bf16 / _fp32: the NLL sum of each of the
  first `windows` windows of nn_ppl_persuasion_tokens.bin, with BF16 linears
  and in plain float32 (the same model and code, for the test's check that
  BF16 changes the result at all);
  seq_len, positions, sample_ids, logits_bf16 / _fp32: one 128-token
  sequence's logits at `positions` x `sample_ids`, BF16 and float32.
And nn_real_smollm2_bf16_block0.bin: the hidden state after block 0 of the
first block0_tokens tokens, float32 LE [block0_tokens, hidden], BF16 then
float32. After one block the two implementations differ only where a float32
rounding difference moves a value across a bfloat16 rounding boundary (rare);
deeper, SmolLM2's large activations make BF16 results chaotic in such flips
(a 1e-7 change of the norm weights moves BF16 logits by 0.05 RMS, as much as
BF16 itself moves them from float32), so the whole-model values here are
checked statistically and block 0 exactly.
Usage: .venv/bin/python tests/golden/bf16_reference.py [--windows 4]
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "fixtures")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BLOCK0_TOKENS = 32


def bf16_linear(self, x):
    w = self.weight.to(torch.bfloat16).float()
    return F.linear(x.to(torch.bfloat16).float(), w, self.bias)


def window_nlls(model, windows):
    out = []
    for w in windows:
        x = torch.from_numpy(w.astype(np.int64))[None]
        logp = torch.log_softmax(model(x).logits.double(), dim=-1)
        out.append(-logp[0, :-1].gather(-1, x[0, 1:, None]).sum().item())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(2)
    models = os.path.join(ROOT, ".cache", "models")
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    tokens = np.fromfile(os.path.join(OUT, "nn_ppl_persuasion_tokens.bin"), dtype="<i4")
    windows = tokens[:args.windows * args.window].reshape(args.windows, args.window)
    with torch.no_grad():
        fp32 = window_nlls(model, windows)
        seq = torch.from_numpy(tokens[:128].astype(np.int64))[None]
        logits_fp32 = model(seq).logits[0]
        short = seq[:, :BLOCK0_TOKENS]
        block0_fp32 = model(short, output_hidden_states=True).hidden_states[1][0]
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        for m in linears:
            m.forward = bf16_linear.__get__(m)
        bf16 = window_nlls(model, windows)
        logits = model(seq).logits[0]
        block0_bf16 = model(short, output_hidden_states=True).hidden_states[1][0]
    with open(os.path.join(OUT, "nn_real_smollm2_bf16_block0.bin"), "wb") as f:
        f.write(block0_bf16.numpy().astype("<f4").tobytes())
        f.write(block0_fp32.numpy().astype("<f4").tobytes())
    positions = list(range(0, 128, 8))
    sample_ids = sorted(np.random.default_rng(1).choice(model.config.vocab_size, 32,
                                                        replace=False).tolist())
    meta = dict(window=args.window, windows=args.windows, linears=len(linears),
                window_nll_sums_bf16=bf16, window_nll_sums_fp32=fp32, seq_len=128,
                positions=positions, sample_ids=sample_ids, block0_tokens=BLOCK0_TOKENS,
                logits_bf16=logits[positions][:, sample_ids].tolist(),
                logits_fp32=logits_fp32[positions][:, sample_ids].tolist(),
                generator="tests/golden/bf16_reference.py (transformers %s, torch %s)" % (
                    __import__("transformers").__version__, torch.__version__))
    with open(os.path.join(OUT, "nn_real_smollm2_bf16.json"), "w") as f:
        json.dump(meta, f)
    n = args.windows * (args.window - 1)
    print("ppl fp32 %.6f bf16 %.6f over %d linears" % (np.exp(sum(fp32) / n), np.exp(sum(bf16) / n),
                                                      len(linears)))


if __name__ == "__main__":
    main()
