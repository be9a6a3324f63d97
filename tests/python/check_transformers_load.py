#!/usr/bin/env python3
"""Checks a pruned model against its original with Hugging Face transformers.

Usage:
  check_transformers_load.py ORIGINAL PRUNED_DIR [--sparsity S | --pattern N:M]
                             [--include REGEX] [--ignore REGEX ...]

ORIGINAL is an HF model directory or a .gguf file (transformers dequantizes it
to float32 itself, so the comparison also checks the worker's GGUF reading).
Loads both with AutoModelForCausalLM on the CPU and checks:
  * both load with no missing or unexpected weights, in the same dtypes;
  * every targeted weight (2-D "<module>.weight" whose module name fully
    matches --include and no --ignore, as the worker selects them) has the
    expected zeros: exactly round(S * numel) for unstructured pruning (more
    only where the original already had zeros), or at least M-N zeros in each
    group of M along the input dimension; the pruned weights are the
    smallest-magnitude ones and every kept weight equals the original;
  * every other tensor is bit-identical to the original;
  * a forward pass on a few token ids gives finite logits.
Prints a summary; exits 1 on any failure, 2 on bad usage.
"""
import argparse
import math
import os
import re
import sys

import torch
from transformers import AutoModelForCausalLM


def load(path):
    if path.endswith(".gguf"):
        directory, name = os.path.split(os.path.abspath(path))
        model, info = AutoModelForCausalLM.from_pretrained(
            directory, gguf_file=name, torch_dtype=torch.float32, output_loading_info=True)
    else:
        model, info = AutoModelForCausalLM.from_pretrained(
            path, torch_dtype="auto", output_loading_info=True)
    model.eval()
    problems = [f"{path}: {k}: {v}" for k, v in info.items()
                if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v]
    return model, problems


def is_target(name, shape, include, ignore):
    if len(shape) != 2 or not name.endswith(".weight"):
        return False
    module = name[: -len(".weight")]
    return (re.fullmatch(include, module) is not None
            and not any(re.fullmatch(p, module) for p in ignore))


def check_unstructured(name, orig, pruned, sparsity):
    o, p = orig.flatten().float(), pruned.flatten().float()
    n = o.numel()
    expected = min(n, math.floor(sparsity * n + 0.5))  # llround: halves away from zero
    zeros = int((p == 0).sum())
    orig_zeros = int((o == 0).sum())
    errors = []
    if zeros != max(expected, orig_zeros):
        errors.append(f"{name}: {zeros} zeros, expected {expected} of {n}")
    kept = p != 0
    if not torch.equal(p[kept], o[kept]):
        errors.append(f"{name}: kept weights differ from the original")
    pruned_mask = (p == 0) & (o != 0)
    if pruned_mask.any() and kept.any():
        if o[pruned_mask].abs().max() > o[kept].abs().min():
            errors.append(f"{name}: a pruned weight is larger than a kept one")
    return errors, zeros / n


def check_nm(name, orig, pruned, n_keep, m):
    o, p = orig.float(), pruned.float()
    if o.shape[1] % m:
        return [f"{name}: input dimension {o.shape[1]} is not a multiple of {m}"], 0.0
    groups_o = o.reshape(-1, m)
    groups_p = p.reshape(-1, m)
    zeros_per_group = (groups_p == 0).sum(dim=1)
    errors = []
    if (zeros_per_group < m - n_keep).any():
        errors.append(f"{name}: a group of {m} has fewer than {m - n_keep} zeros")
    kept = groups_p != 0
    if not torch.equal(groups_p[kept], groups_o[kept]):
        errors.append(f"{name}: kept weights differ from the original")
    # The N kept per group must be the N largest magnitudes.
    top = groups_o.abs().topk(n_keep, dim=1).values[:, -1:]
    if ((groups_p != 0) & (groups_o.abs() < top)).any():
        errors.append(f"{name}: a kept weight is not among the {n_keep} largest of its group")
    return errors, float((p == 0).float().mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("original")
    ap.add_argument("pruned")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--sparsity", type=float, default=None)
    mode.add_argument("--pattern", default=None, help='"N:M", e.g. 2:4')
    ap.add_argument("--include", default=r".*_proj$")
    ap.add_argument("--ignore", action="append", default=[])
    args = ap.parse_args()
    if args.pattern is None and args.sparsity is None:
        args.sparsity = 0.5
    n_keep = m = None
    if args.pattern:
        match = re.fullmatch(r"(\d+):(\d+)", args.pattern)
        if not match or not 0 < int(match[1]) < int(match[2]):
            ap.error("--pattern must be N:M with 0 < N < M")
        n_keep, m = int(match[1]), int(match[2])

    torch.manual_seed(0)
    original, errors = load(args.original)
    pruned, problems = load(args.pruned)
    errors += problems
    sd_o, sd_p = original.state_dict(), pruned.state_dict()
    if set(sd_o) != set(sd_p):
        errors.append(f"tensor names differ: {sorted(set(sd_o) ^ set(sd_p))}")

    targeted, untouched = [], 0
    for name in sorted(set(sd_o) & set(sd_p)):
        o, p = sd_o[name], sd_p[name]
        if o.dtype != p.dtype or o.shape != p.shape:
            errors.append(f"{name}: {p.dtype}{list(p.shape)} != original {o.dtype}{list(o.shape)}")
            continue
        if is_target(name, o.shape, args.include, args.ignore):
            if m is not None:
                errs, frac = check_nm(name, o, p, n_keep, m)
            else:
                errs, frac = check_unstructured(name, o, p, args.sparsity)
            errors += errs
            targeted.append((name, frac))
        else:
            untouched += 1
            if not torch.equal(o, p):
                errors.append(f"{name}: not targeted but differs from the original")
    if not targeted:
        errors.append(f"no tensor matches --include {args.include!r}")

    vocab = original.config.vocab_size
    ids = torch.tensor([[1, 5, 17, 42, 99, 3]]) % vocab
    with torch.no_grad():
        logits_o = original(ids).logits
        logits_p = pruned(ids).logits
    for label, logits in (("original", logits_o), ("pruned", logits_p)):
        if not torch.isfinite(logits).all():
            errors.append(f"{label}: logits are not all finite")
    diff = float((logits_o.float() - logits_p.float()).abs().max())

    print(f"model:      {type(pruned).__name__}, dtype {next(pruned.parameters()).dtype}")
    print(f"targeted:   {len(targeted)} tensors, untouched: {untouched} (bit-identical)")
    for name, frac in targeted:
        print(f"  {name}: {frac:.4f} zeros")
    print(f"forward:    logits {tuple(logits_p.shape)}, finite; max |pruned - original| = {diff:.4g}")
    if errors:
        print(f"FAILED: {len(errors)} problem(s)")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
