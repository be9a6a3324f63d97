#!/usr/bin/env python3
"""Turns bench/results/run.sh summaries (OUT_DIR/<config>.json) into the
Markdown tables of docs/results.md: perplexity on ppl-persuasion and ppl-kjv,
targeted sparsity, bits per parameter, and the job's phase split, in the
order of the issue (pruning: method x pattern; quantization: RTN vs GPTQ per
bit width and grid; the joint recipe). A configuration without a summary is
listed as "not run".

    python3 bench/results/make_table.py OUT_DIR > table.md
"""
import json
import pathlib
import sys

PRUNING = [("magnitude", "magnitude"), ("wanda", "Wanda"), ("sparsegpt", "SparseGPT")]
PATTERNS = [("50", "50%"), ("60", "60%"), ("2:4", "2:4"), ("4:8", "4:8")]
QUANT = [(b, g) for b in (4, 3, 2) for g in ("g128", "pc")]
HEADER = ("| config | ppl-persuasion | ppl-kjv | sparsity | bits/param (targets) | "
          "forward s | hessian s | solve s | error s | eval s | total s |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def load(out_dir):
    runs = {}
    for path in sorted(pathlib.Path(out_dir).glob("*.json")):
        try:
            runs[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"skipping {path}: not a summary (still running?)", file=sys.stderr)
    return runs


def ppl(summary, dataset, which):
    for d in summary.get("evaluation", {}).get("datasets", []):
        if d["name"] == dataset:
            return d["perplexity"].get(which)
    return None


def num(v):
    if v is None:
        return ""
    return f"{v:.3g}" if v >= 1e4 else f"{v:.2f}"


def row(label, s, which="compressed"):
    if s is None:
        return f"| {label} | not run | | | | | | | | | |"
    t = s["timing_seconds"]
    tot = s.get("totals", {})
    sparsity = f"{tot.get('sparsity', 0):.3f}" if tot else "0"
    bits = f"{tot['targeted_bits_per_parameter']:.3f}" if "targeted_bits_per_parameter" in tot \
        else "16"
    cells = [num(ppl(s, "ppl-persuasion", which)), num(ppl(s, "ppl-kjv", which)), sparsity, bits]
    cells += [f"{t[k]:.0f}" if t.get(k) else "" for k in ("forward", "hessian", "solve", "error")]
    cells += [f"{t['evaluate']:.0f}", f"{t['total']:.0f}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def main():
    runs = load(sys.argv[1])
    print("### Pruning\n")
    print(HEADER)
    print(row("dense", runs.get("dense"), "dense"))
    for key, label in PATTERNS:
        for method, name in PRUNING:
            print(row(f"{name} {label}", runs.get(f"{method}-{key}")))
    print("\n### Quantization (symmetric grids; g128: groups of 128, pc: per channel)\n")
    print(HEADER)
    for bits, grid in QUANT:
        for method, name in (("rtn", "RTN"), ("gptq", "GPTQ")):
            print(row(f"{name} {bits}-bit {grid}", runs.get(f"{method}-{bits}-{grid}")))
    print(row("SparseGPT 50% + GPTQ 4-bit g128", runs.get("sparsegpt-50+gptq-4-g128")))
    print("\n### GPTQ defaults: without act-order against act-order + static groups (the default)\n")
    print(HEADER)
    for bits, grid in (("4", "g128"), ("4", "pc"), ("3", "g128"), ("3", "pc")):
        print(row(f"GPTQ {bits}-bit {grid}, no act-order", runs.get(f"gptq-{bits}-{grid}")))
        print(row(f"GPTQ {bits}-bit {grid}, default", runs.get(f"gptq-{bits}-{grid}-act")))


if __name__ == "__main__":
    main()
