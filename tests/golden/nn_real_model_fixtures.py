#!/usr/bin/env python3
"""Golden fixtures for the forward pass on the real SmolLM2-135M-Instruct
(GGUF Q4_1, dequantized to float32 by transformers): logits of a few 128-token
sequences of persuasion.txt and the ppl-persuasion perplexity.

Writes to tests/golden/fixtures/:
  nn_ppl_persuasion_tokens.bin  int32 LE: the first n_windows*window token ids of
                                text/austen/persuasion.txt, tokenized whole with
                                the GGUF's tokenizer (no BOS, add_bos is false)
  nn_real_smollm2.bin           float32 LE: per sequence the full logits of the
                                last position [vocab], then logits at `sample_ids`
                                for every position [128, n_sample], then the top-k
                                values [128, k]
  nn_real_smollm2.json          offsets of the sequences into the token file,
                                sample ids, top-k ids, the perplexity and how it
                                was computed (with the NLL sum of every window,
                                so a test may check the first few windows only)
Usage (from the repo root, after scripts/fetch-model.sh):
  /tmp/venvtest/bin/python tests/golden/nn_real_model_fixtures.py [--windows 64]
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "fixtures")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = os.path.join(ROOT, "..", "shared", "data", "text", "austen", "persuasion.txt")
SEQ_LEN = 128
SEQ_OFFSETS = [0, 4096, 17000, 30000]
N_SAMPLE = 64
TOP_K = 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = os.path.join(ROOT, ".cache", "models")
    tok = AutoTokenizer.from_pretrained(models, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=GGUF, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n_tok = args.windows * args.window
    assert len(ids) >= n_tok, (len(ids), n_tok)
    tokens = np.asarray(ids[:n_tok], dtype="<i4")
    tokens.tofile(os.path.join(OUT, "nn_ppl_persuasion_tokens.bin"))

    vocab = model.config.vocab_size
    sample_ids = np.random.default_rng(0).choice(vocab, N_SAMPLE, replace=False)
    sample_ids.sort()
    blobs, top_ids = [], []
    with torch.no_grad():
        for off in SEQ_OFFSETS:
            seq = torch.from_numpy(tokens[off:off + SEQ_LEN].astype(np.int64))[None]
            logits = model(seq).logits[0]
            top = torch.topk(logits, TOP_K, dim=-1)
            blobs += [logits[-1].numpy(), logits[:, sample_ids].numpy().ravel(),
                      top.values.numpy().ravel()]
            top_ids.append(top.indices.tolist())

        t0 = time.time()
        nll_sum, count, window_nll = 0.0, 0, []
        windows = tokens.reshape(args.windows, args.window).astype(np.int64)
        for b in range(0, args.windows, args.batch):
            x = torch.from_numpy(windows[b:b + args.batch])
            logp = torch.log_softmax(model(x).logits.double(), dim=-1)
            nll = -logp[:, :-1].gather(-1, x[:, 1:, None]).squeeze(-1)
            window_nll += nll.sum(dim=1).tolist()
            nll_sum += nll.sum().item()
            count += nll.numel()
        ppl_seconds = time.time() - t0
    with open(os.path.join(OUT, "nn_real_smollm2.bin"), "wb") as f:
        for b in blobs:
            f.write(np.asarray(b, dtype="<f4").tobytes())
    meta = dict(
        model=GGUF, vocab=vocab, seq_len=SEQ_LEN, seq_offsets=SEQ_OFFSETS,
        sample_ids=sample_ids.tolist(), top_k=TOP_K, top_ids=top_ids,
        ppl_persuasion=dict(window=args.window, n_windows=args.windows, n_predicted=count,
                            mean_nll=nll_sum / count, perplexity=math.exp(nll_sum / count),
                            torch_threads=args.threads, seconds=round(ppl_seconds, 1),
                            window_nll_sums=window_nll),
        n_tokens_file=int(n_tok),
        generator="tests/golden/nn_real_model_fixtures.py (transformers %s, torch %s, float32, "
                  "eager attention)" % (__import__("transformers").__version__, torch.__version__))
    with open(os.path.join(OUT, "nn_real_smollm2.json"), "w") as f:
        json.dump(meta, f)
    print(json.dumps(meta["ppl_persuasion"]))


if __name__ == "__main__":
    main()
