#!/usr/bin/env python3
"""Turns bench/results/run.sh summaries (OUT_DIR/<config>.json) into the
Markdown tables of docs/results.md: perplexity on ppl-persuasion and ppl-kjv,
targeted sparsity, bits per parameter, and the job's phase split.

    python3 bench/results/make_table.py OUT_DIR > table.md
"""
import json
import pathlib
import sys


def load(out_dir):
    runs = {}
    for path in sorted(pathlib.Path(out_dir).glob("*.json")):
        try:
            runs[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"skipping {path}: not a summary", file=sys.stderr)
    return runs


def ppl(summary, dataset, which):
    for d in summary.get("evaluation", {}).get("datasets", []):
        if d["name"] == dataset:
            return d["perplexity"].get(which)
    return None


def main():
    runs = load(sys.argv[1])
    dense = runs.get("dense")
    print("| config | ppl-persuasion | ppl-kjv | sparsity | bits/param (targets) | "
          "forward s | hessian s | solve s | error s | eval s | total s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    if dense:
        t = dense["timing_seconds"]
        print(f"| dense | {ppl(dense, 'ppl-persuasion', 'dense'):.3f} | "
              f"{ppl(dense, 'ppl-kjv', 'dense'):.3f} | 0 | 32 (F32) | | | | | "
              f"{t['evaluate']:.0f} | {t['total']:.0f} |")
    for name, s in runs.items():
        if name == "dense":
            continue
        t = s["timing_seconds"]
        tot = s.get("totals", {})
        print(f"| {name} | {ppl(s, 'ppl-persuasion', 'compressed'):.3f} | "
              f"{ppl(s, 'ppl-kjv', 'compressed'):.3f} | {tot.get('sparsity', 0):.3f} | "
              f"{tot.get('targeted_bits_per_parameter', 0):.3f} | {t.get('forward', 0):.0f} | "
              f"{t.get('hessian', 0):.0f} | {t.get('solve', 0):.0f} | {t.get('error', 0):.0f} | "
              f"{t['evaluate']:.0f} | {t['total']:.0f} |")


if __name__ == "__main__":
    main()
