#!/usr/bin/env python3
"""A GGUF written by compressd, checked by an independent consumer: llama.cpp
(through llama-cpp-python) loads it and measures perplexity, which must match
an expected value (ours, from `compress-worker run` on the same file).

Protocol (the shared ppl-persuasion one, as tests/golden/llamacpp_perplexity.py):
the text is tokenized whole with the model's own tokenizer (llama.cpp's, from
the GGUF's tokenizer.* keys), no BOS, cut into non-overlapping windows of 512
from its start; every window is evaluated from an empty KV cache (n_ctx 512,
logits for every position), all 511 next-token predictions per window count,
perplexity = exp(mean NLL) with the log-softmax in float64.

llama.cpp multiplies quantized weights with quantized activations (Q8_0/Q8_1)
and keeps an F16 KV cache, so its perplexity differs from our float32 engine's
by a few tenths of a percent on SmolLM2 (docs/benchmarks.md): the default
tolerance is 1% relative.

Usage:
  /tmp/venvtest/bin/python tests/python/check_gguf_llamacpp.py MODEL.gguf \\
      --expect PPL [--tolerance 0.01] [--windows 4] [--threads 2] [--text PATH]
Exits 1 when |ppl / expect - 1| > tolerance (or the model does not load).
Not part of ctest yet (llama-cpp-python is not in tests/python/requirements.txt).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
from llamacpp_perplexity import TEXT, load, window_nlls  # noqa: E402  (shares the protocol)


def perplexity(model_path, text_path, n_windows, window, threads):
    llm = load(model_path, threads)
    with open(text_path, encoding="utf-8") as f:
        ids = np.asarray(llm.tokenize(f.read().encode("utf-8"), add_bos=False), np.int64)
    need = n_windows * window
    if len(ids) < need:
        raise SystemExit(f"{text_path}: {len(ids)} tokens, {need} needed")
    t0 = time.time()
    sums = window_nlls(llm, ids[:need].reshape(n_windows, window))
    mean = sum(sums) / (n_windows * (window - 1))
    return dict(perplexity=math.exp(mean), mean_nll=mean, n_vocab=llm.n_vocab(),
                n_text_tokens=int(len(ids)), seconds=round(time.time() - t0, 1),
                window_nll_sums=sums)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--expect", type=float, required=True, help="expected perplexity")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--text", default=TEXT)
    args = ap.parse_args()
    r = perplexity(args.model, args.text, args.windows, args.window, args.threads)
    rel = r["perplexity"] / args.expect - 1.0
    ok = math.isfinite(rel) and abs(rel) <= args.tolerance
    out = {k: v for k, v in r.items() if k != "window_nll_sums"}
    out.update(model=args.model, windows=args.windows, expect=args.expect, rel_diff=rel,
               tolerance=args.tolerance, ok=ok)
    print(json.dumps(out))
    if not ok:
        print(f"llama.cpp perplexity {r['perplexity']:.4f} is {rel:+.2%} from the expected "
              f"{args.expect:.4f} (tolerance {args.tolerance:.2%})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
