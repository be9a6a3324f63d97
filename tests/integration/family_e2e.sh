#!/usr/bin/env bash
# One decoder family end to end (tests/golden/make_family_model.py builds a
# tiny random-weight model from the family's transformers config class, with
# SmolLM2's tokenizer):
#   1. our evaluation of the model equals transformers' (perplexity on real
#      text within 1e-4 relative: tests/python/check_logits.py);
#   2. SparseGPT 50% + GPTQ 4-bit (group 32) through the service, calibrated
#      on real text; the output loads in transformers with no missing or
#      unexpected weight, every projection at least half zeros with at most 16
#      values per group of a row, everything else (norms, the family's own
#      q/k norms or biases) is the original's;
#   3. our evaluation of that output equals transformers' too;
#   4. GPTQ 4-bit to the GPTQ-packed format, unpacked independently and run in
#      transformers as the family's class: perplexity within 1% of ours;
#   4b. the same job to compressed_tensors, read by compressed-tensors and run in
#      transformers (a mixture of experts: refused);
#   4c. (phi3, qwen3_moe) SpQR to the spqr output, decoded independently and
#      run in transformers;
#   5. (the families llama.cpp has: llama, qwen2, qwen3 and the MoE ones) the
#      same job to GGUF, run in llama.cpp: perplexity within 1% of ours, the
#      converted tokenizer giving the model's ids.
# Mixture-of-experts families are built with 2 of 8 experts per layer that no
# token can reach (--dead-experts): the job must still succeed, its summary
# list every expert with its calibration tokens (the starved ones 0, on the
# layer's pooled Hessian), and every expert be compressed in the output.
# Usage: family_e2e.sh BIN_DIR PYTHON SOURCE_DIR MODEL_GGUF FAMILY
set -euo pipefail
BIN=$1 PY=$2 SRC=$3 GGUF=$4 FAMILY=$5
[ -x "$PY" ] || { echo "python not found at '$PY' (run scripts/install-deps.sh)"; exit 1; }
[ -s "$GGUF" ] || { echo "no real model (tokenizer source) at '$GGUF'"; exit 1; }
TEXT=$SRC/../shared/data/text
PERSUASION=$TEXT/austen/persuasion.txt
source "$(dirname "$0")/start_server.sh"

MOE=""
case $FAMILY in mixtral|qwen2_moe|qwen3_moe|olmoe) MOE="--dead-experts 2" ;; esac
# shellcheck disable=SC2086
"$PY" "$SRC/tests/golden/make_family_model.py" "$FAMILY" "$work/model" --tokenizer-from "$GGUF" \
  $MOE > "$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
evaluate() {  # DIR NAME: our perplexity of DIR, then transformers' on the same windows
  cat > "$work/$2.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $PERSUASION, windows: 2, window: 128}]}
YAML
  "$BIN/compress-worker" run --model "$1" --recipe "$work/$2.yaml" --out "$work/$2.out" \
    > "$work/$2.json" 2> "$work/$2.log" || { tail -20 "$work/$2.log"; exit 1; }
  "$PY" "$SRC/tests/python/check_logits.py" "$1" "$PERSUASION" 128 2 "$work/$2.json"
}
evaluate "$work/model" dense

model=$(ctl models upload "$work/model" --name "tiny-$FAMILY")
data=$(ctl datasets upload "$TEXT" --name text)
cat > "$work/compress.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 32}}}]
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
YAML
ctl jobs submit --model "$model" --recipe "$work/compress.yaml" --dataset "$data" --wait \
  > "$work/job.out" 2> "$work/job.err" || { tail -n 20 "$work/job.out" "$work/job.err"; exit 1; }
job=$(head -1 "$work/job.out")
ctl artifacts download "$job" --out "$work/compressed"
if [ -n "$MOE" ]; then
  summary "$job"
  "$PY" - "$work/model/config.json" "$work/$job.json" <<'PY'
import json, sys
config, s = json.load(open(sys.argv[1])), json.loads(open(sys.argv[2]).read())
n = config.get("num_experts") or config.get("num_local_experts")
moe_layers = [l for l in range(config["num_hidden_layers"]) if l not in config.get("mlp_only_layers", [])]
experts = s["experts"]
assert experts["count"] == n * len(moe_layers), experts["count"]
per_layer = {}
for e in experts["list"]:
    layer, index = int(e["name"].split(".")[2]), int(e["name"].rsplit(".", 1)[1])
    per_layer.setdefault(layer, {})[index] = e
    assert len(e["linears"]) == 3, e
    dead = index >= n - 2
    assert (e["calibration"] == "pooled") == (e["tokens"] < 32), e
    if dead:
        assert e["tokens"] == 0 and e["calibration"] == "pooled", e
        assert e["name"] in experts["pooled"], e
# Every token went to top-k experts: 8 windows of 128, top-2.
for layer in moe_layers:
    assert sorted(per_layer[layer]) == list(range(n)), per_layer.get(layer)
    assert sum(e["tokens"] for e in per_layer[layer].values()) == 8 * 128 * config["num_experts_per_tok"]
print(f"experts: {experts['count']} listed; on the pooled Hessian (< 32 tokens): {experts['pooled']}")
PY
fi

"$PY" - "$work/model" "$work/compressed" <<'PY'
import re
import sys
import torch
from transformers import AutoModelForCausalLM
orig = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
comp, info = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32,
                                                  output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
assert type(comp) is type(orig), (type(comp), type(orig))
def stored(d):  # the checkpoint's tensors by their stored names (an MoE's per expert)
    import glob
    from safetensors.torch import load_file
    out = {}
    for f in sorted(glob.glob(d + "/*.safetensors")):
        out.update(load_file(f))
    return out
o, c = stored(sys.argv[1]), stored(sys.argv[2])
assert o.keys() == c.keys(), set(o) ^ set(c)
# The projections, experts included (Mixtral's w1/w2/w3); routers stay dense.
is_projection = re.compile(r"layers\.\d+\..*(_proj|\.w[123])\.weight$").search
projections = 0
for name, w in c.items():
    if is_projection(name):
        projections += 1
        zeros = (w == 0).float().mean().item()
        # Half pruned; GPTQ may round a few kept weights to the grid's zero too.
        assert 0.5 - 1e-6 <= zeros < 0.6, f"{name}: {zeros:.3f} zeros"
        groups = w.reshape(w.shape[0], -1, 32)
        distinct = max(len(torch.unique(g)) for g in groups.reshape(-1, 32)[:64])
        assert distinct <= 16, f"{name}: {distinct} values in a group of 32"
        assert not torch.equal(w, o[name]), f"{name}: not compressed"
    else:
        assert torch.equal(w, o[name]), f"{name}: changed"
# Every stored projection (Phi-3's fused qkv_proj and gate_up_proj count once).
assert projections == sum(bool(is_projection(n)) for n in o), projections
x = torch.tensor([[1, 200, 3000, 45, 6]])
assert torch.isfinite(comp(x).logits).all()
print(f"{type(comp).__name__}: {projections} projections 50% sparse, 4-bit; every other tensor "
      "as the original")
PY
evaluate "$work/compressed" compressed

# calibrated_job NAME STAGES FORMAT: STAGES calibrated on 8 x 128 sotu tokens
# through the service, written as FORMAT (recipe $work/NAME.yaml), downloaded
# to $work/NAME; its perplexity on 2 windows of 128 in $job_ppl.
calibrated_job() {
  cat > "$work/$1.yaml" <<YAML
stages: $2
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
output: {format: $3}
evaluation:
  perplexity: [{name: persuasion, dataset_id: $data, file: austen/persuasion.txt, windows: 2, window: 128}]
YAML
  ctl jobs submit --model "$model" --recipe "$work/$1.yaml" --dataset "$data" --wait \
    > "$work/$1.out" 2> "$work/$1.err" || { tail -n 20 "$work/$1.out" "$work/$1.err"; exit 1; }
  local job
  job=$(head -1 "$work/$1.out")
  summary "$job"
  job_ppl=$(field "$work/$job.json" 's["evaluation"]["datasets"][0]["perplexity"]["compressed"]')
  ctl artifacts download "$job" --out "$work/$1"
}

# 4. GPTQ 4-bit g32, GPTQ-packed: read back by an independent unpacker and run
#    as the family's transformers class: perplexity within 1% of ours.
calibrated_job gptq '[{gptq: {grid: {bits: 4, group_size: 32}}}]' gptq
ppl=$job_ppl
"$PY" "$SRC/tests/python/check_gptq_load.py" "$work/gptq" --text "$PERSUASION" --tokenizer "$GGUF" \
  --windows 2 --window 128 --expect "$ppl" --tolerance 0.01

# 4b. The same GPTQ as a compressed-tensors checkpoint: compressed-tensors
#     decompresses it and transformers runs it (perplexity within 1% of ours;
#     a mixture of experts' per-expert weights through transformers' MoE
#     loader); a mixture of experts on an asymmetric grid is refused
#     (INVALID_ARGUMENT) before any work.
sed 's/format: gptq}/format: compressed_tensors}/' "$work/gptq.yaml" > "$work/ct.yaml"
if ctl jobs submit --model "$model" --recipe "$work/ct.yaml" --dataset "$data" --wait \
    > "$work/ct.out" 2> "$work/ct.err"; then
  ct_job=$(head -1 "$work/ct.out")
  summary "$ct_job"
  ppl_ct=$(field "$work/$ct_job.json" 's["evaluation"]["datasets"][0]["perplexity"]["compressed"]')
  [ "$ppl_ct" = "$ppl" ] || { echo "the same GPTQ gave $ppl_ct here and $ppl as gptq"; exit 1; }
  ctl artifacts download "$ct_job" --out "$work/ct"
  "$PY" "$SRC/tests/python/check_compressed_tensors.py" "$work/ct" --text "$PERSUASION" \
    --tokenizer "$GGUF" --windows 2 --window 128 --expect "$ppl_ct" --expect-bits 4 \
    --expect-strategy group --expect-symmetric true 2>&1 | grep -v "it/s\]"
else
  tail -n 20 "$work/ct.out" "$work/ct.err"; exit 1
fi
if [ -n "$MOE" ]; then
  sed 's/bits: 4, group_size: 32}/bits: 4, group_size: 32, asymmetric: true}/' "$work/ct.yaml" \
    > "$work/ct_asym.yaml"
  if ctl jobs submit --model "$model" --recipe "$work/ct_asym.yaml" --dataset "$data" --wait \
      > "$work/ct_asym.out" 2> "$work/ct_asym.err"; then
    echo "asymmetric experts were written as compressed_tensors"; exit 1
  fi
  grep -q "INVALID_ARGUMENT.*needs a symmetric grid" "$work/ct_asym.out" "$work/ct_asym.err" ||
    { echo "unexpected error:"; cat "$work/ct_asym.out" "$work/ct_asym.err"; exit 1; }
  echo "compressed_tensors refused for asymmetric experts, as documented"
fi

# 4c. (phi3, qwen3_moe) SpQR written as spqr: Phi-3's fused q/k/v and gate/up
#     each one module, every expert its own; the job's reload check reads it
#     back, tests/python/check_spqr.py decodes it independently and runs it in
#     transformers: perplexity within 1% of ours.
case $FAMILY in
  phi3|qwen3_moe)
    calibrated_job spqr '[{spqr: {}}]' spqr
    "$PY" "$SRC/tests/python/check_spqr.py" "$work/spqr" --text "$PERSUASION" --tokenizer "$GGUF" \
      --windows 2 --window 128 --expect "$job_ppl" --expect-bits 3 ;;
esac

# 5. GGUF, for the families written as llama.cpp architectures (llama; qwen2,
#    qwen3; phi3; gemma2, gemma3; Mixtral as llama with experts, qwen2moe,
#    qwen3moe, olmoe): the
#    tokenizer converted from tokenizer.json; llama.cpp's perplexity of the
#    file within 1% of ours, and (llama) its token ids those of the model's own
#    tokenizer.json (text, edge cases, special tokens, chat prompt).
gguf_recipe() {  # [GGUF_OPTIONS]
  cat > "$work/gguf.yaml" <<YAML
stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4, group_size: 32}}}]
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
output: {format: gguf${1:+, gguf: $1}}
YAML
}
gguf_recipe
refused() {  # MODEL_ID WORD: the GGUF job must fail up front, its error naming WORD
  if ctl jobs submit --model "$1" --recipe "$work/gguf.yaml" --dataset "$data" --wait \
      > "$work/gguf-refused.out" 2> "$work/gguf-refused.err"; then
    echo "FAIL: a GGUF output llama.cpp cannot run ($FAMILY) was not refused"; exit 1
  fi
  grep -q "$2" "$work/gguf-refused.out" "$work/gguf-refused.err" \
    || { echo "FAIL: the refusal does not name $2"; cat "$work/gguf-refused.err"; exit 1; }
}
variant() {  # FLAG NAME: the family's model made with FLAG, uploaded; prints its id
  "$PY" "$SRC/tests/golden/make_family_model.py" "$FAMILY" "$work/model$1" \
    --tokenizer-from "$GGUF" "$1" > "$work/make$1.log" 2>&1 || { cat "$work/make$1.log"; exit 1; }
  ctl models upload "$work/model$1" --name "tiny-$FAMILY$1"
}
gguf_step() {  # MODEL_ID: the job to GGUF, read by us and by llama.cpp
  ctl jobs submit --model "$1" --recipe "$work/gguf.yaml" --dataset "$data" --wait \
    > "$work/gguf.out" 2> "$work/gguf.err" || { tail -n 20 "$work/gguf.out" "$work/gguf.err"; exit 1; }
  rm -rf "$work/gguf"
  ctl artifacts download "$(head -1 "$work/gguf.out")" --out "$work/gguf"
  cat > "$work/gguf-eval.yaml" <<YAML
evaluation: {threads: 2, perplexity: [{name: persuasion, path: $PERSUASION, windows: 2, window: 512}]}
YAML
  "$BIN/compress-worker" run --model "$work/gguf/model.gguf" --recipe "$work/gguf-eval.yaml" \
    --out "$work/gguf-eval" > "$work/gguf-eval.json" 2> "$work/gguf-eval.log" \
    || { tail -20 "$work/gguf-eval.log"; exit 1; }
  gguf_ppl=$(field "$work/gguf-eval.json" 's["evaluation"]["datasets"][0]["perplexity"]["dense"]')
  "$PY" "$SRC/tests/python/check_gguf_llamacpp.py" "$work/gguf/model.gguf" --text "$PERSUASION" \
    --windows 2 --expect "$gguf_ppl" --tolerance 0.01
}
case $FAMILY in
  llama|qwen2|qwen3|mixtral|qwen2_moe|olmoe)
    gguf_step "$model"
    # (Only for llama: transformers loads a qwen2 directory's tokenizer as its
    # Qwen2Tokenizer, whose pre-tokenizer replaces this tokenizer.json's.)
    if [ "$FAMILY" = llama ]; then
      "$PY" "$SRC/tests/python/check_hf_tokenizer.py" "$work/gguf/model.gguf" "$work/model" "$PERSUASION"
    fi ;;
  qwen3_moe)
    # llama.cpp's qwen3moe has experts in every layer: this model's dense
    # layer 1 is refused up front, naming it; a variant without one is written.
    refused "$model" mlp_only_layers
    gguf_step "$(variant --all-moe)" ;;
  phi3)
    # llama.cpp's phi3 runs without a sliding window: this model's (64, on
    # 512-token windows) is refused, naming it; a variant without one is written
    # (fused attn_qkv / ffn_up, longrope factors as tensors, partial rotary).
    refused "$model" sliding-window
    gguf_step "$(variant --llamacpp)" ;;
  gemma2|gemma3)
    # llama.cpp's gemma2 / gemma3 fix the attention scale (head_dim) and the
    # windowed layers (1 in 2, 5 in 6): these models differ (24; layer 1 full)
    # and are refused, naming it; variants as llama.cpp fixes them are written.
    if [ "$FAMILY" = gemma2 ]; then refused "$model" query_pre_attn_scalar; else refused "$model" layer_types; fi
    gguf_step "$(variant --llamacpp)" ;;
esac

# 6. Mixture of experts: EvoPress with every expert's projections as units of
#    their own (levels per expert, one budget over all of them).
if [ -n "$MOE" ]; then
  cat > "$work/evopress.yaml" <<YAML
stages:
  - evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], generations: 3,
               offspring: 4, survivors: [2, 1], step_tokens: [128, 256], seed: 7}
calibration: {dataset_id: $data, file: sotu, samples: 8, seq_len: 128}
YAML
  ctl jobs submit --model "$model" --recipe "$work/evopress.yaml" --dataset "$data" --wait \
    > "$work/evo.out" 2> "$work/evo.err" || { tail -n 20 "$work/evo.out" "$work/evo.err"; exit 1; }
  evo_job=$(head -1 "$work/evo.out")
  ctl artifacts download "$evo_job" --out "$work/evopress"
  "$PY" - "$work/model" "$work/evopress" <<'PY'
import collections, json, sys
from transformers import AutoModelForCausalLM
config = json.load(open(sys.argv[1] + "/config.json"))
n = config.get("num_experts") or config.get("num_local_experts")
moe_layers = [l for l in range(config["num_hidden_layers"]) if l not in config.get("mlp_only_layers", [])]
c = json.load(open(sys.argv[2] + "/evopress_config.json"))
groups = collections.defaultdict(list)
for u in c["units"]:
    groups[u["group"]].append(u)
experts = {g: us for g, us in groups.items() if ".experts.*." in g}
assert len(experts) == 3, sorted(groups)
for g, us in experts.items():
    assert len(us) == n * len(moe_layers), (g, len(us))
    assert abs(sum(u["level"] for u in us) / len(us) - 0.5) < 1e-9, g  # the budget, exactly
assert abs(c["mean_level"] - 0.5) < 1e-9, c["mean_level"]
model, info = AutoModelForCausalLM.from_pretrained(sys.argv[2], output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
levels = collections.Counter(u["level"] for us in experts.values() for u in us)
print(f"evopress: {sum(len(us) for us in experts.values())} expert units, levels {dict(levels)}")
PY
fi
echo "family_e2e $FAMILY: OK"
