#!/usr/bin/env python3
"""ppl-persuasion measured by llama.cpp (through llama-cpp-python) on the real
SmolLM2-135M-Instruct GGUF, to compare with our engine and with transformers.

Not part of the test suite (llama-cpp-python builds llama.cpp from source: ~30
min on 2 busy cores), so it is not in tests/python/requirements.txt. Install:
  nice -n 10 env CMAKE_BUILD_PARALLEL_LEVEL=2 /tmp/venvtest/bin/pip install llama-cpp-python
Usage (from the repo root, after scripts/fetch-model.sh):
  nice /tmp/venvtest/bin/python tests/golden/llamacpp_perplexity.py \
      [--variants default,flash,f32kv,f32w_f16kv,f32w,owntok] [--windows 64] [--threads 2] [--json OUT]

Protocol (docs/benchmarks.md, /work/shared/data/README.md): the token ids are
OUR ids, read from tests/golden/fixtures/nn_ppl_persuasion_tokens.bin (int32 LE,
persuasion.txt tokenized whole by the GGUF's tokenizer through transformers, no
BOS), cut into non-overlapping 512-token windows; every window is evaluated from
an empty KV cache starting at its first token (no BOS added), all 511 next-token
predictions of every window are counted, NLL = log-softmax in float64 of
llama.cpp's float32 logits, perplexity = exp(mean NLL). Per-window NLL sums are
compared with the transformers ones stored in nn_real_smollm2.json.

Variants (each a full pass over the windows):
  default  llama-cpp-python defaults: F16 KV cache, flash attention off
  flash    flash attention on (F16 KV cache)
  f32kv    F32 KV cache (type_k = type_v = GGML_TYPE_F32), flash attention off
  f32w     the GGUF converted to all-F32 weights by llama.cpp's own quantizer
           (llama_model_quantize, ftype ALL_F32, pure), plus F32 KV cache: the
           matmuls then run in float32 instead of Q4_1/Q8_0 weights x Q8_1/Q8_0
           quantized activations; written to a temporary file, deleted after
  f32w_f16kv  the same F32 weights with the default F16 KV cache
  owntok   default settings, but the ids come from llama.cpp's tokenizer
           (Llama.tokenize on the whole text, no BOS) instead of the fixture;
           only evaluated when they differ from the fixture's first windows
"""
import argparse
import ctypes
import json
import math
import os
import sys
import tempfile
import time

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "golden", "fixtures")
MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TEXT = os.path.join(ROOT, "..", "shared", "data", "text", "austen", "persuasion.txt")
GGML_TYPE_F32 = 0


def load(path, threads, **kw):
    return llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=512, n_ubatch=512,
                           logits_all=True, n_threads=threads, n_threads_batch=threads,
                           verbose=False, **kw)


def window_nlls(llm, windows):
    """NLL sum of the 511 predictions of every window, float64."""
    out = []
    for w in windows:
        llm.reset()
        llm.eval(w.tolist())
        logits = np.asarray(llm.scores[:len(w)], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        nll = lse[:-1] - logits[np.arange(len(w) - 1), w[1:]]
        out.append(float(nll.sum()))
    return out


def convert_f32(src, dst, threads):
    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = threads
    p.ftype = llama_cpp.LLAMA_FTYPE_ALL_F32
    p.allow_requantize = True
    p.pure = True
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError("llama_model_quantize -> F32 failed: %d" % rc)


def summarize(name, sums, n_pred, ref_sums, seconds, extra=None):
    mean = sum(sums) / n_pred
    r = dict(variant=name, perplexity=math.exp(mean), mean_nll=mean, seconds=round(seconds, 1))
    if ref_sums is not None:
        ref_mean = sum(ref_sums) / n_pred
        d = np.asarray(sums) - np.asarray(ref_sums)
        per_tok = d / (n_pred / len(sums))
        r.update(rel_diff_vs_transformers=math.exp(mean) / math.exp(ref_mean) - 1,
                 window_nll_per_token_diff=dict(mean=float(per_tok.mean()),
                                                max_abs=float(np.abs(per_tok).max()),
                                                n_positive=int((per_tok > 0).sum())))
    if extra:
        r.update(extra)
    r["window_nll_sums"] = sums
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="default,flash,f32kv,f32w_f16kv,f32w,owntok")
    ap.add_argument("--json", help="write all results (with per-window NLL sums) here")
    args = ap.parse_args()

    n_tok = args.windows * args.window
    ids = np.fromfile(os.path.join(FIX, "nn_ppl_persuasion_tokens.bin"), dtype="<i4")
    assert len(ids) >= n_tok, (len(ids), n_tok)
    windows = ids[:n_tok].astype(np.int64).reshape(args.windows, args.window)
    n_pred = args.windows * (args.window - 1)
    meta = json.load(open(os.path.join(FIX, "nn_real_smollm2.json")))["ppl_persuasion"]
    ref = None
    if meta["window"] == args.window and meta["n_windows"] >= args.windows:
        ref = meta["window_nll_sums"][:args.windows]
        print("transformers: ppl %.6f" % math.exp(sum(ref) / n_pred), file=sys.stderr)

    results = dict(llama_cpp_python=llama_cpp.__version__,
                   ggml_system_info=llama_cpp.llama_print_system_info().decode(),
                   n_windows=args.windows, window=args.window, n_predicted=n_pred,
                   transformers_perplexity=math.exp(sum(ref) / n_pred) if ref else None,
                   variants=[])
    for v in args.variants.split(","):
        kw, path, tmp, extra, wins = {}, args.model, None, None, windows
        if v == "flash":
            kw = dict(flash_attn=True)
        elif v == "f32kv":
            kw = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
        elif v in ("f32w", "f32w_f16kv"):
            tmp = tempfile.mkdtemp(prefix="llamacpp_f32_")
            path = os.path.join(tmp, "model.F32.gguf")
            convert_f32(args.model, path, args.threads)
            if v == "f32w":
                kw = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
        elif v != "default" and v != "owntok":
            raise SystemExit("unknown variant " + v)
        llm = load(path, args.threads, **kw)
        if v == "owntok":
            with open(TEXT, encoding="utf-8") as f:
                own = np.asarray(llm.tokenize(f.read().encode("utf-8"), add_bos=False), np.int64)
            k = min(len(own), len(ids))
            diff = np.nonzero(own[:k] != ids[:k])[0]
            extra = dict(own_n_tokens_text=int(len(own)), fixture_n_tokens=int(len(ids)),
                         first_mismatch=int(diff[0]) if len(diff) else None,
                         identical_first_n=bool(len(own) >= n_tok and
                                                np.array_equal(own[:n_tok], ids[:n_tok])))
            assert len(own) >= n_tok
            if extra["identical_first_n"]:  # same ids: the pass would repeat `default`
                results["variants"].append(dict(variant=v, **extra))
                print(json.dumps(results["variants"][-1]), flush=True)
                continue
            wins = own[:n_tok].reshape(args.windows, args.window)
        t0 = time.time()
        sums = window_nlls(llm, wins)
        r = summarize(v, sums, n_pred, ref, time.time() - t0, extra)
        del llm
        if tmp:
            os.remove(path)
            os.rmdir(tmp)
        results["variants"].append(r)
        print(json.dumps({k: x for k, x in r.items() if k != "window_nll_sums"}), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
