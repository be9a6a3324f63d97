#!/usr/bin/env python3
"""PyTorch side of bench/forward/run.sh: the same prompt-processing forward
(batch x seq tokens from the same token file, logits at every position) on the
same GGUF model dequantized to float32 by transformers, with the same threads.
Prints "key: value" lines and one "RESULT {json}" line."""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", default="tests/golden/fixtures/nn_ppl_persuasion_tokens.bin")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(args.model), gguf_file=os.path.basename(args.model),
        dtype=torch.float32).eval()
    n = args.batch * args.seq
    ids = np.fromfile(args.tokens, dtype="<i4")[:n].astype(np.int64)
    x = torch.from_numpy(ids.reshape(args.batch, args.seq))
    times = []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(args.reps):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"torch: {torch.__version__} threads: {torch.get_num_threads()} "
          f"attention: {model.config._attn_implementation}")
    print(f"forward_seconds_median: {median:.3f} (best {min(times):.3f})")
    print(f"tokens_per_second: {n / median:.1f}")
    print("RESULT " + json.dumps({"tokens_per_second": n / median}))


if __name__ == "__main__":
    main()
