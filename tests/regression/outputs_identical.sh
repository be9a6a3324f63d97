#!/usr/bin/env bash
# Byte-identical outputs across a refactor: runs a fixed set of recipes with
# `compress-worker run` on the real model (SmolLM2-135M GGUF) and compares the
# sha256 of every output file and every numeric field of each summary (timings,
# peak RSS and other wall-clock figures excepted) with the values recorded in
# expected.json before the change.
#
# usage: tests/regression/outputs_identical.sh WORKER MODEL.gguf [--record]
#   WORKER  the compress-worker binary; MODEL the real model's GGUF.
#   --record  writes expected.json from this run instead of comparing.
# Every recipe pins its thread counts. Float results also depend on the CPU's
# kernels (OpenBLAS picks them per CPU), so expected.json names the CPU it was
# recorded on; on another CPU the comparison is skipped (exit 77), visibly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
worker=$1; model=$2; mode=${3:-compare}
data=${COMPRESSD_SHARED_DATA:-$here/../../../shared/data}
[ -f "$data/text/austen/persuasion.txt" ] || { echo "no shared data at $data" >&2; exit 2; }
py=${COMPRESSD_PYTHON:-python3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

calib="calibration: {path: $data/text/sotu, samples: 4, seq_len: 128, threads: 2}"
evalp="evaluation: {threads: 2, kl: true, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}"

recipe() { printf '%s\n' "$2" > "$work/$1.yaml"; }
recipe evaluate "evaluation: {threads: 2, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}"
recipe magnitude "stages: [{magnitude: {sparsity: 0.5}}]
targets: {include: '.*_proj\$'}
$evalp"
recipe sparsegpt_gptq_gguf "stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}, act_order: false}}]
$calib
output: {format: gguf}
$evalp"
# massive_fallback: false: the arithmetic these outputs were recorded with
# (before the fallback existed, on an AMD CPU this test cannot be re-recorded on).
recipe gptq_packed "stages: [{gptq: {grid: {bits: 4, group_size: 64}, act_order: true, static_groups: true,
  massive_fallback: false}}]
$calib
output: {format: gptq}"
recipe evopress "stages: [{evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], generations: 2, offspring: 4, survivors: [2, 1], step_tokens: [128, 256], seed: 7}}]
targets: {include: 'model\\.layers\\.[0-1]\\..*_proj\$'}
$calib
output: {format: gguf}
$evalp"
# The HF tensor-by-tensor path: N:M magnitude on the F32 HF export of the first job.
recipe hf_nm "stages: [{magnitude: {pattern: '2:4'}}]
targets: {include: '.*_proj\$', ignore: ['lm_head']}"

run() {  # name input
  echo "== $1" >&2
  "$worker" run --model "$2" --recipe "$work/$1.yaml" --out "$work/out/$1" \
    > "$work/$1.summary.json" 2> "$work/$1.log" || { tail -20 "$work/$1.log" >&2; exit 1; }
}
for r in evaluate magnitude sparsegpt_gptq_gguf gptq_packed evopress; do run "$r" "$model"; done
run hf_nm "$work/out/magnitude"

"$py" - "$work" "$here/expected.json" "$mode" <<'PY'
import hashlib, json, os, sys
work, expected_path, mode = sys.argv[1:4]
def cpu():
    info = open("/proc/cpuinfo").read().split("\n")
    name = next((l.split(":", 1)[1].strip() for l in info if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info if l.startswith("flags")), [])
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    return f"{name} [{' '.join(simd)}]"
# Wall-clock figures and memory are not outputs of the computation.
SKIP = ("seconds", "_s", "peak_rss_bytes", "timing", "per_minute", "per_second")
def numbers(node, path, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if any(k == s or k.endswith(s) for s in SKIP): continue
            numbers(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node): numbers(v, f"{path}[{i}]", out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out[path] = node
def files(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if n == "summary.json": continue  # holds timings; its numbers are compared below
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out
got = {}
for name in sorted(f[:-13] for f in os.listdir(work) if f.endswith(".summary.json")):
    nums = {}
    numbers(json.load(open(os.path.join(work, name + ".summary.json"))), "", nums)
    got[name] = {"files": files(os.path.join(work, "out", name)), "summary": nums}
if mode == "--record":
    json.dump({"cpu": cpu(), "runs": got}, open(expected_path, "w"), indent=1, sort_keys=True)
    print(f"recorded {len(got)} runs in {expected_path}"); sys.exit(0)
recorded = json.load(open(expected_path))
if recorded["cpu"] != cpu():
    print(f"outputs_identical: SKIPPED: recorded on {recorded['cpu']}, this CPU is {cpu()}; "
          "record again with --record from a known-good commit")
    sys.exit(77)
want = recorded["runs"]
bad = 0
for name in sorted(set(want) | set(got)):
    w, g = want.get(name), got.get(name)
    if w is None or g is None:
        print(f"{name}: {'not run' if g is None else 'not recorded'}"); bad += 1; continue
    for kind in ("files", "summary"):
        for key in sorted(set(w[kind]) | set(g[kind])):
            if w[kind].get(key) != g[kind].get(key):
                print(f"{name} {kind} {key}: expected {w[kind].get(key)}, got {g[kind].get(key)}"); bad += 1
    print(f"{name}: {len(g['files'])} files, {len(g['summary'])} numbers compared")
print(f"outputs_identical: {'FAILED, ' + str(bad) + ' differences' if bad else 'all identical'}")
sys.exit(1 if bad else 0)
PY
