#!/usr/bin/env python3
"""Perplexity of an HF model directory by transformers, against ours.

Usage: check_logits.py MODEL_DIR TEXT_FILE WINDOW WINDOWS OUR_SUMMARY.json

Loads MODEL_DIR with AutoModelForCausalLM (float32, CPU), tokenizes TEXT_FILE
with MODEL_DIR/tokenizer.json as the worker does (the `tokenizers` library on
that file, no special tokens: AutoTokenizer would pick a class by model_type,
e.g. Qwen2Tokenizer, whose own pre-tokenizer differs from a test model's
borrowed tokenizer.json), cuts WINDOWS
consecutive windows of WINDOW tokens from the start, and computes
the perplexity of the next-token predictions inside each window. OUR_SUMMARY
is `compress-worker run`'s summary of an evaluate-only recipe on the same
directory, text and windows; the two perplexities must agree to 1e-4
(relative): the same logits, up to float32 summation order.
"""
import json
import math
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    model_dir, text_file, window, windows, summary = sys.argv[1:6]
    window, windows = int(window), int(windows)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = tok.encode(open(text_file, encoding="utf-8").read(), add_special_tokens=False).ids
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    nll, n = 0.0, 0
    with torch.no_grad():
        for w in range(windows):
            x = torch.tensor([ids[w * window:(w + 1) * window]])
            logits = model(x).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= logp.gather(1, x[0, 1:].unsqueeze(1)).sum().item()
            n += window - 1
    theirs = math.exp(nll / n)
    ours = json.load(open(summary))["evaluation"]["datasets"][0]["perplexity"]["dense"]
    rel = abs(theirs - ours) / ours
    print(f"perplexity: transformers {theirs:.6f}, ours {ours:.6f} (relative difference {rel:.2e})")
    sys.exit(0 if rel < 1e-4 else 1)


if __name__ == "__main__":
    main()
