"""Records and compares the outputs of tests/regression/outputs_identical.sh.

usage: outputs_identical.py has-record EXPECTED   exit 0 if EXPECTED holds this CPU's record, else 77
       outputs_identical.py record WORK EXPECTED  stores this run as this CPU's record
       outputs_identical.py compare WORK EXPECTED compares this run with this CPU's record

Float results depend on the CPU's kernels (OpenBLAS picks them per CPU), so
EXPECTED holds one record per CPU (name and SIMD flags); a CPU without one
is skipped, visibly, before any job runs.
"""
import hashlib
import json
import os
import sys

# Wall-clock figures and memory are not outputs of the computation.
SKIP = ("seconds", "_s", "peak_rss_bytes", "timing", "per_minute", "per_second")


def cpu():
    info = open("/proc/cpuinfo").read().split("\n")
    name = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), [])
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    return f"{name} [{' '.join(simd)}]"


def records(path):
    if not os.path.exists(path):
        return []
    data = json.load(open(path))
    return data["records"] if "records" in data else [data]  # the one-CPU layout of before


def numbers(node, path, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if any(k == s or k.endswith(s) for s in SKIP):
                continue
            numbers(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            numbers(v, f"{path}[{i}]", out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out[path] = node


def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if n == "summary.json":
                continue  # holds timings; its numbers are compared below
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def this_run(work):
    got = {}
    for name in sorted(f[:-13] for f in os.listdir(work) if f.endswith(".summary.json")):
        nums = {}
        numbers(json.load(open(os.path.join(work, name + ".summary.json"))), "", nums)
        got[name] = {"files": files(os.path.join(work, "out", name)), "summary": nums}
    return got


def compare(want, got):
    bad = 0
    for name in sorted(set(want) | set(got)):
        w, g = want.get(name), got.get(name)
        if w is None or g is None:
            print(f"{name}: {'not run' if g is None else 'not recorded'}")
            bad += 1
            continue
        for kind in ("files", "summary"):
            for key in sorted(set(w[kind]) | set(g[kind])):
                if w[kind].get(key) != g[kind].get(key):
                    print(f"{name} {kind} {key}: expected {w[kind].get(key)}, got {g[kind].get(key)}")
                    bad += 1
        print(f"{name}: {len(g['files'])} files, {len(g['summary'])} numbers compared")
    return bad


def main(argv):
    mode, expected_path = argv[1], argv[-1]
    mine = [r for r in records(expected_path) if r["cpu"] == cpu()]
    if mode == "has-record":
        if mine:
            return 0
        known = "; ".join(r["cpu"] for r in records(expected_path)) or "none"
        print(f"outputs_identical: SKIPPED: no record for this CPU ({cpu()}); recorded: {known}. "
              "Record one with --record from a known-good commit")
        return 77
    got = this_run(argv[2])
    if mode == "record":
        others = [r for r in records(expected_path) if r["cpu"] != cpu()]
        json.dump({"records": others + [{"cpu": cpu(), "runs": got}]}, open(expected_path, "w"),
                  indent=1, sort_keys=True)
        print(f"recorded {len(got)} runs for {cpu()} in {expected_path}")
        return 0
    bad = compare(mine[0]["runs"], got)
    print(f"outputs_identical: {'FAILED, ' + str(bad) + ' differences' if bad else 'all identical'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
