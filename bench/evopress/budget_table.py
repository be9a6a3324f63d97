#!/usr/bin/env python3
"""The EvoPress-against-uniform table of docs/results.md from the job summaries of
bench/evopress/budgets.sh (one <row>-evo.json and <row>-uniform.json per budget, and <row>-owl.json for
OWL's non-uniform baseline at the sparsity budgets).

  bench/evopress/budget_table.py OUT_DIR

Prints one markdown row per configuration (perplexities, KL and top-1 agreement
on ppl-persuasion, the mean level reached, wall time split into database / search
/ evaluation), then, per searched unit group, the mean level EvoPress chose; then the 3.0-bit pair
on other texts (bits30-*-domains.json) when present."""
import json
import os
import sys
from collections import defaultdict

ROWS = [("sparsity60", "60% sparsity"), ("sparsity70", "70% sparsity"),
        ("bits30", "3.0 bits"), ("bits25", "2.5 bits")]
# Extra searches: <row>-evo-<suffix>.yaml, what differs from <row>-evo.yaml.
VARIANTS = {"t8k": "last selection step on 8192 tokens"}


def load(path):
    with open(path) as f:
        return json.load(f)


def ppl(summary, name):
    for d in summary["evaluation"]["datasets"]:
        if d["name"] == name:
            return d["perplexity"]["compressed"]
    raise KeyError(name)


def fmt(x):
    return f"{x:.3g}" if x >= 1e4 else f"{x:.2f}"


def owl_row(label, s):
    """OWL's allocation (SparseGPT at per-block sparsities): its OWL pass and
    solves are the calibration time, in the search column."""
    kl = s["evaluation"]["kl"]
    owl = s["calibration"]["owl"][0]
    t = s["timing_seconds"]
    calib = t["forward"] + t["hessian"] + t["solve"] + t["error"]
    return (f"| {label} | OWL (SparseGPT, lambda {owl['lambda']:g}, M {owl['m']:g}) | "
            f"{s['totals']['sparsity']:.4g} | {fmt(ppl(s, 'ppl-persuasion'))} | "
            f"{fmt(ppl(s, 'ppl-kjv'))} | {kl['mean_kl']:.3f} | {kl['top1_agreement']:.3f} | "
            f" | {calib:.0f} | {t['evaluate']:.0f} |")


def main():
    out = sys.argv[1]
    print("| budget | allocation | mean level | ppl-persuasion | ppl-kjv | KL | top-1 | "
          "database s | search s | evaluation s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups = {}
    for key, label in ROWS:
        results = {}
        for kind in ("uniform", "evo") + tuple(f"evo-{v}" for v in VARIANTS):
            path = os.path.join(out, f"{key}-{kind}.json")
            if os.path.exists(path) and os.path.getsize(path) > 0:
                results[kind] = load(path)
        for kind, s in results.items():
            e = s["evopress"]
            kl = s["evaluation"]["kl"]
            name = ("uniform start" if kind == "uniform"
                    else f"EvoPress, {e['generations']} generations"
                    + (f", {VARIANTS[kind[4:]]}" if kind.startswith("evo-") else ""))
            t = e["timing_seconds"]
            print(f"| {label} | {name} | {e['config']['mean_level']:.4g} | "
                  f"{fmt(ppl(s, 'ppl-persuasion'))} | {fmt(ppl(s, 'ppl-kjv'))} | "
                  f"{kl['mean_kl']:.3f} | {kl['top1_agreement']:.3f} | "
                  f"{t['levels_db']:.0f} | {t['search']:.0f} | "
                  f"{s['timing_seconds']['evaluate']:.0f} |")
        path = os.path.join(out, f"{key}-owl.json")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            print(owl_row(label, load(path)))
        for kind in [k for k in results if k.startswith("evo")]:
            e = results[kind]["evopress"]
            by_group = defaultdict(list)
            for u in e["config"]["units"]:
                block = int(u["name"].split(".")[2])
                by_group[u["group"]].append((block, u["level"]))
            groups[f"{label} ({kind})"] = (e["fitness_curve"], e["initial_fitness"], by_group)
    for label, (curve, initial, by_group) in groups.items():
        print(f"\n{label}: fitness {initial:.3f} at the start, then "
              + ", ".join(f"{c:.3f}" for c in curve))
        print("  mean level of blocks 0-9 / 10-19 / 20-29, and the levels by block:")
        for g, units in sorted(by_group.items()):
            thirds = []
            for lo in (0, 10, 20):
                v = [lv for b, lv in units if lo <= b < lo + 10]
                thirds.append(f"{sum(v) / len(v):.3g}" if v else "-")
            levels = " ".join(f"{lv:g}" for _, lv in sorted(units))
            print(f"  {g}: {' / '.join(thirds)}   [{levels}]")


def domains(out):
    """The 3.0-bit configurations on other texts (<row>-<kind>-domains.json)."""
    rows = []
    for kind in ("uniform", "evo"):
        path = os.path.join(out, f"bits30-{kind}-domains.json")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            rows.append((kind, load(path)))
    if not rows:
        return
    names = [d["name"] for d in rows[0][1]["evaluation"]["datasets"]]
    print("\n| 3.0 bits | " + " | ".join(f"{n} ppl" for n in names) + f" | KL ({names[0]}) | top-1 |")
    print("|---|" + "---:|" * (len(names) + 2))
    for kind, s in rows:
        ppls = " | ".join(fmt(ppl(s, n)) for n in names)
        kl = s["evaluation"]["kl"]
        print(f"| {'uniform start' if kind == 'uniform' else 'EvoPress'} | {ppls} | "
              f"{kl['mean_kl']:.3f} | {kl['top1_agreement']:.3f} |")


if __name__ == "__main__":
    main()
    domains(sys.argv[1])
