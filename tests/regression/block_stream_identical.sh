#!/usr/bin/env bash
# The block-at-a-time path against the whole-model path on the real model:
# SmolLM2-135M converted by transformers from its GGUF to a BF16 safetensors
# directory (as a user would upload it), then one calibrated recipe (SparseGPT
# 50% + GPTQ 4-bit g128, HF output, perplexity of the dense and compressed
# model with KL and top-1), and a GPTQ 4-bit act-order recipe with a
# GPTQ-packed output; and the same calibrated recipe on the GGUF itself (Q4_1)
# with a GGUF output, and an uncalibrated one (RTN 4-bit, perplexity and KL)
# on the GGUF with a GGUF output. Each is run by `compress-worker run` twice: block by block
# (the default for this plan: the evaluation windows advance with the blocks)
# and with --whole-model 1. Every output file must be byte-identical and every
# summary number equal (timings and peak RSS excepted); each run's memory
# estimate must be within 20% of its measured peak RSS.
#
# usage: tests/regression/block_stream_identical.sh WORKER MODEL.gguf
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
worker=$1; model=$2
data=${COMPRESSD_SHARED_DATA:-$here/../../../shared/data}
[ -d "$data/text/sotu" ] || { echo "no shared data at $data" >&2; exit 2; }
py=${COMPRESSD_PYTHON:-python3}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

"$py" - "$model" "$work/hf" <<'PY'
import os, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out = sys.argv[1:3]
d, f = os.path.split(gguf)
m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.bfloat16)
# A GGUF-loaded model refuses save_pretrained: copy it into a plain one.
plain = AutoModelForCausalLM.from_config(m.config, torch_dtype=torch.bfloat16)
plain.load_state_dict(m.state_dict())
plain.save_pretrained(out, safe_serialization=True)
AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(out)
PY

cat > "$work/recipe.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 128}}}]
calibration: {path: $data/text/sotu, samples: 4, seq_len: 128, threads: 2}
evaluation: {threads: 2, kl: true, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}
YAML
cat > "$work/gptq.yaml" <<YAML
stages: [{gptq: {grid: {bits: 4, group_size: 64}, act_order: true, static_groups: true}}]
calibration: {path: $data/text/sotu, samples: 4, seq_len: 128, threads: 2}
output: {format: gptq}
YAML
cat > "$work/gguf.yaml" <<YAML
$(cat "$work/recipe.yaml")
output: {format: gguf}
YAML
cat > "$work/rtn.yaml" <<YAML
stages: [{rtn: {grid: {bits: 4, group_size: 32}}}]
evaluation: {threads: 2, kl: true, perplexity: [{name: ppl-persuasion, path: $data/text/austen/persuasion.txt, windows: 2, window: 256}]}
output: {format: gguf}
YAML
run_both() {  # recipe suffix [model]: out-stream$2, out-whole$2
  for mode in stream whole; do
    extra=(); [ "$mode" = whole ] && extra=(--whole-model 1)
    "$worker" run --model "${3:-$work/hf}" --recipe "$1" --out "$work/out-$mode$2" "${extra[@]}" \
      > "$work/$mode$2.json" 2> "$work/$mode$2.log" || { tail -20 "$work/$mode$2.log" >&2; exit 1; }
  done
  grep -q "block by block" "$work/stream$2.log" || { echo "the stream run did not stream" >&2; exit 1; }
  grep -q "block by block" "$work/whole$2.log" && { echo "the --whole-model run streamed" >&2; exit 1; }
  return 0
}
run_both "$work/recipe.yaml" ""
run_both "$work/gptq.yaml" "-gptq"
run_both "$work/gguf.yaml" "-gguf" "$model"
run_both "$work/rtn.yaml" "-rtn" "$model"

"$py" - "$work" <<'PY'
import hashlib, json, os, re, sys
work = sys.argv[1]
def files(root):
    return {n: hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(root))}
a, b = files(f"{work}/out-stream"), files(f"{work}/out-whole")
bad = [n for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
def strip(s):
    s = json.load(open(s))
    rss = s.pop("peak_rss_bytes")
    s.pop("timing_seconds")
    for layer in s.get("layers", []): layer.pop("seconds", None)
    return s, rss
sa, ra = strip(f"{work}/stream.json")
sb, rb = strip(f"{work}/whole.json")
print(f"files: {len(a)} ({', '.join(a)}); peak RSS stream {ra / 2**20:.0f} MiB, whole model {rb / 2**20:.0f} MiB")
def estimate(mode):
    m = re.search(r"memory estimate: peak ([0-9.]+) (GiB|MiB)", open(f"{work}/{mode}.log").read())
    return float(m.group(1)) * (2**30 if m.group(2) == "GiB" else 2**20)
def check_estimate(mode, rss):
    e = estimate(mode)
    print(f"{mode}: memory estimate {e / 2**20:.0f} MiB, measured {rss / 2**20:.0f} MiB ({e / rss - 1:+.0%})")
    if abs(e / rss - 1) > 0.20:
        print(f"{mode}: the memory estimate is more than 20% off", file=sys.stderr)
        sys.exit(1)
for mode, rss in (("stream", ra), ("whole", rb)):
    check_estimate(mode, rss)
ev = sa.get("evaluation", {})
if "kl" not in ev or "dense" not in ev["datasets"][0]["perplexity"]:
    print("the stream run's summary has no dense perplexity or KL", file=sys.stderr)
    sys.exit(1)
print(f"perplexity dense {ev['datasets'][0]['perplexity']['dense']:.4f} compressed "
      f"{ev['datasets'][0]['perplexity']['compressed']:.4f}, KL {ev['kl']['mean_kl']:.4f}")
ga, gb = files(f"{work}/out-stream-gptq"), files(f"{work}/out-whole-gptq")
bad += [f"gptq {n}" for n in sorted(set(ga) | set(gb)) if ga.get(n) != gb.get(n)]
qa, _ = strip(f"{work}/stream-gptq.json")
qb, _ = strip(f"{work}/whole-gptq.json")
print(f"gptq output streamed: {qa['export']['quantized_tensors']} packed tensors, files {', '.join(ga)}")
fa, fb = files(f"{work}/out-stream-gguf"), files(f"{work}/out-whole-gguf")
bad += [f"gguf {n}" for n in sorted(set(fa) | set(fb)) if fa.get(n) != fb.get(n)]
ua, rua = strip(f"{work}/stream-gguf.json")
ub, rub = strip(f"{work}/whole-gguf.json")
print(f"gguf input and output streamed: {ua['export']['exact_from_grid']} tensors exact from their grids, "
      f"{ua['export']['file_size']} bytes; peak RSS stream {rua / 2**20:.0f} MiB, whole model {rub / 2**20:.0f} MiB")
for mode, rss in (("stream-gguf", rua), ("whole-gguf", rub)):
    check_estimate(mode, rss)
ra_, rra = strip(f"{work}/stream-rtn.json")
rb_, rrb = strip(f"{work}/whole-rtn.json")
na, nb = files(f"{work}/out-stream-rtn"), files(f"{work}/out-whole-rtn")
bad += [f"rtn {n}" for n in sorted(set(na) | set(nb)) if na.get(n) != nb.get(n)]
print(f"uncalibrated (RTN 4-bit, GGUF in and out) streamed: peak RSS stream {rra / 2**20:.0f} MiB, "
      f"whole model {rrb / 2**20:.0f} MiB")
for mode, rss in (("stream-rtn", rra), ("whole-rtn", rrb)):
    check_estimate(mode, rss)
if bad or sa != sb or qa != qb or ua != ub or ra_ != rb_:
    print("DIFFERENT:", bad or "summaries", file=sys.stderr)
    sys.exit(1)
print("block stream: outputs and summary identical to the whole-model path")
PY
