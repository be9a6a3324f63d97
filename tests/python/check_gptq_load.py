#!/usr/bin/env python3
"""Checks a GPTQ checkpoint written by compressd as an independent consumer.

Usage:
  check_gptq_load.py GPTQ_DIR [--reference FLOAT_DIR] [--tokens IDS.bin |
                     --text FILE --tokenizer GGUF] [--windows N] [--window L]
                     [--expect PPL] [--tolerance REL] [--ref-tolerance REL]
                     [--transformers-gptq {skip,try,require}]

Reads GPTQ_DIR with `safetensors` + numpy only, from the published GPTQ
layout (AutoGPTQ / GPTQModel / vLLM), not from compressd's code:
  * config.json has one quantization_config (quant_method "gptq", bits,
    group_size, sym, desc_act, checkpoint_format "gptq" or "gptq_v2") and
    torch_dtype float16;
  * for each quantized linear <m>: qweight int32 [in*bits/32, out] is, per
    output column, a little-endian bit stream of `bits`-bit codes along the
    input dimension (3-bit codes straddle words); qzeros int32
    [groups, out*bits/32] is the same along the output dimension and holds
    zero - 1 for checkpoint_format "gptq" (v1), zero for "gptq_v2";
    scales float16 [groups, out]; g_idx int32 [in]. Dequantized
    W[o, i] = scales[g, o] * (code[o, i] - zero[g, o]) with g = g_idx[i];
  * shapes, dtypes, code and zero ranges, g_idx (i // group_size unless
    desc_act), modules_in_block_to_quantize against the tensors present;
  * every other tensor is float16 and dense.
Then builds LlamaForCausalLM from the config (quantization_config removed)
with the dequantized weights and measures perplexity on N non-overlapping
windows of L tokens (the ppl-persuasion protocol: ids from --tokens, int32
LE, or the GGUF's tokenizer on --text, no BOS; each window from its first
token; exp of the mean NLL of every prediction).
  --reference FLOAT_DIR: the same model exported in float32 (WriteHfLlama):
    every dequantized weight must match it to float16 scale rounding
    (|diff| <= 2^-10 * max|w| per tensor) and the perplexities must agree
    within --ref-tolerance (relative).
  --expect PPL: the perplexity must be within --tolerance (relative).
  --transformers-gptq try|require: also load GPTQ_DIR with transformers'
    own GPTQ integration (needs optimum + gptqmodel) and compare logits.
Exits 1 on any failure, 2 on bad usage.
"""
import argparse
import copy
import json
import math
import os
import re
import sys

import numpy as np
import torch
from safetensors import safe_open

PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def read_dir(path):
    tensors = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(path, name), framework="np") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f), tensors


def unpack_stream(words, bits, count):
    """words: uint32 [n_words, cols]; column c is a bit stream, LSB first.
    Returns uint32 [cols, count]: the `count` fields of `bits` bits."""
    n_words, cols = words.shape
    bitplanes = (words[:, :, None] >> np.arange(32, dtype=np.uint32)) & 1  # [w, c, 32]
    stream = bitplanes.transpose(1, 0, 2).reshape(cols, n_words * 32)
    fields = stream[:, : count * bits].reshape(cols, count, bits)
    weights = (1 << np.arange(bits, dtype=np.uint32))
    return (fields * weights).sum(axis=2).astype(np.uint32)


def dequantize(m, t, q, errors):
    bits, group_size = q["bits"], q["group_size"]
    qweight, qzeros, scales, g_idx = (t[m + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    for s, arr, dt in ((".qweight", qweight, np.int32), (".qzeros", qzeros, np.int32),
                       (".scales", scales, np.float16), (".g_idx", g_idx, np.int32)):
        if arr.dtype != dt:
            errors.append(f"{m}{s}: dtype {arr.dtype}, expected {np.dtype(dt)}")
    n_in = g_idx.shape[0]
    out = qweight.shape[1]
    groups = 1 if group_size == -1 else math.ceil(n_in / group_size)
    expect = {".qweight": (n_in * bits // 32, out), ".qzeros": (groups, out * bits // 32),
              ".scales": (groups, out)}
    for s, shape in expect.items():
        if t[m + s].shape != shape:
            errors.append(f"{m}{s}: shape {t[m + s].shape}, expected {shape}")
            return None
    codes = unpack_stream(qweight.view(np.uint32), bits, n_in)            # [out, in]
    zeros = unpack_stream(qzeros.T.copy().view(np.uint32), bits, out)  # [groups, out]
    zeros = zeros.astype(np.int64)
    fmt = q.get("checkpoint_format", q.get("format", "gptq"))
    if fmt == "gptq":
        zeros = zeros + 1  # v1 stores zero - 1 (vLLM: zero_offset 1)
    maxq = (1 << bits) - 1
    if zeros.max() > maxq:
        errors.append(f"{m}: a zero point exceeds {maxq} (v1 stored -1?)")
    if q["sym"] and not (zeros == (1 << (bits - 1))).all():
        errors.append(f"{m}: sym=true but zero points are not {1 << (bits - 1)}")
    if g_idx.min() < 0 or g_idx.max() >= groups:
        errors.append(f"{m}.g_idx: values outside [0, {groups})")
        return None
    gs = n_in if group_size == -1 else group_size
    if not q["desc_act"] and not (g_idx == np.arange(n_in) // gs).all():
        errors.append(f"{m}.g_idx: desc_act is false but g_idx is not i // {gs}")
    s = scales.astype(np.float32)[g_idx].T           # [out, in]
    z = zeros[g_idx].T.astype(np.float32)            # [out, in]
    return s * (codes.astype(np.float32) - z), codes


def build_state_dict(config, t, errors):
    q = config["quantization_config"]
    for key, want in (("quant_method", "gptq"),):
        if q.get(key) != want:
            errors.append(f"quantization_config.{key} = {q.get(key)!r}, expected {want!r}")
    if q["bits"] not in (2, 3, 4, 8):
        errors.append(f"quantization_config.bits = {q['bits']}")
    if q.get("checkpoint_format", q.get("format")) not in ("gptq", "gptq_v2"):
        errors.append(f"checkpoint_format {q.get('checkpoint_format')!r}")
    if config.get("torch_dtype") != "float16":
        errors.append(f"torch_dtype {config.get('torch_dtype')!r}, expected float16")
    modules = sorted({k[: -len(".qweight")] for k in t if k.endswith(".qweight")})
    listed = q.get("modules_in_block_to_quantize")
    if listed is not None:
        flat = {m for step in listed for m in step}
        for m in modules:
            rel = re.sub(r"^model\.layers\.\d+\.", "", m)
            if rel not in flat:
                errors.append(f"{m} is quantized but not in modules_in_block_to_quantize")
        for k in t:
            rel = re.sub(r"^model\.layers\.\d+\.", "", k)
            if rel.endswith(".weight") and rel[: -len(".weight")] in flat:
                errors.append(f"{k} is dense but its module is in modules_in_block_to_quantize")
    sd, codes = {}, {}
    for m in modules:
        r = dequantize(m, t, q, errors)
        if r is not None:
            sd[m + ".weight"] = torch.from_numpy(r[0])
            codes[m] = r[1]
    suffixes = (".qweight", ".qzeros", ".scales", ".g_idx")
    for k, v in t.items():
        if k.endswith(suffixes):
            continue
        if v.dtype != np.float16:
            errors.append(f"{k}: dense tensor in {v.dtype}, expected float16")
        sd[k] = torch.from_numpy(v.astype(np.float32))
    return sd, modules


def make_model(config, sd, errors, label):
    """The family's transformers class with the state dict `sd` in checkpoint
    names, loaded through from_pretrained (which maps checkpoint names onto
    the class's own, e.g. per-expert MoE weights onto fused experts)."""
    import tempfile
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    cfg = copy.deepcopy(config)
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(d, "model.safetensors"))
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                           output_loading_info=True)
    allowed = {"lm_head.weight"} if cfg.get("tie_word_embeddings") else set()
    missing = set(info["missing_keys"]) - allowed
    if missing or info["unexpected_keys"]:
        errors.append(f"{label}: missing {sorted(missing)}, unexpected {info['unexpected_keys']}")
    return model.eval()


def load_tokens(args):
    if args.tokens:
        return np.fromfile(args.tokens, dtype="<i4").astype(np.int64)
    from transformers import AutoTokenizer
    d, f = os.path.split(os.path.abspath(args.tokenizer))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    with open(args.text, encoding="utf-8") as fh:
        return np.asarray(tok(fh.read(), add_special_tokens=False)["input_ids"], dtype=np.int64)


def perplexity(model, windows, batch=2):
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(windows), batch):
            ids = torch.from_numpy(windows[b:b + batch])
            logits = model(ids).logits.double()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll = -logp.gather(2, ids[:, 1:, None]).squeeze(2)
            total += float(nll.sum())
            count += nll.numel()
    return math.exp(total / count)


def compare_reference(sd, modules, ref_t, errors):
    worst = {}
    for k, v in sd.items():
        if k not in ref_t:
            if k != "lm_head.weight":
                errors.append(f"{k}: not in the reference")
            continue
        ref = ref_t[k].astype(np.float32)
        diff = float(np.abs(v.numpy() - ref).max())
        bound = 2.0 ** -10 * float(np.abs(ref).max()) + 1e-30
        kind = "quantized" if k[: -len(".weight")] in modules else "dense"
        worst[kind] = max(worst.get(kind, 0.0), diff)
        if diff > bound:
            errors.append(f"{k}: max |dequantized - reference| = {diff:.3g} > {bound:.3g}")
    return worst


def transformers_gptq(path, windows, ours, n_quantized, mode, errors):
    try:
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(path, device_map="cpu").eval()
        quant = [m for m in model.modules() if hasattr(m, "qweight")]
        kinds = sorted({type(m).__name__ for m in quant})
        dense = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))
        print(f"transformers GPTQ: {len(quant)} quantized modules {kinds}, {dense} dense Linear, "
              f"dtype {next(model.parameters()).dtype}")
        if len(quant) != n_quantized:
            errors.append(f"transformers GPTQ made {len(quant)} quantized modules, "
                          f"the checkpoint has {n_quantized}")
        ids = torch.from_numpy(windows[:1])
        with torch.no_grad():
            theirs = model(ids).logits.float()
            mine = ours(ids).logits.float()
        diff = float((theirs - mine).abs().max())
        print(f"transformers GPTQ: max |logits - ours| = {diff:.4g} (window 0; theirs computes "
              f"in {next(model.parameters()).dtype})")
        ppl = perplexity(model, windows)
        print(f"transformers GPTQ: perplexity {ppl:.4f}")
        return ppl
    except Exception as e:  # report what the installed stack does
        msg = f"transformers GPTQ loading failed: {type(e).__name__}: {str(e)[:400]}"
        print(msg)
        if mode == "require":
            errors.append(msg)
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gptq_dir")
    ap.add_argument("--reference")
    ap.add_argument("--tokens")
    ap.add_argument("--text")
    ap.add_argument("--tokenizer")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--ref-tolerance", type=float, default=0.005)
    ap.add_argument("--transformers-gptq", choices=["skip", "try", "require"], default="skip")
    args = ap.parse_args()
    if not args.tokens and not (args.text and args.tokenizer):
        ap.error("give --tokens, or --text and --tokenizer")

    torch.manual_seed(0)
    errors = []
    config, t = read_dir(args.gptq_dir)
    q = config.get("quantization_config")
    if q is None:
        print("FAILED: config.json has no quantization_config")
        return 1
    sd, modules = build_state_dict(config, t, errors)
    print(f"config:     bits {q['bits']}, group_size {q['group_size']}, sym {q['sym']}, "
          f"desc_act {q['desc_act']}, checkpoint_format {q.get('checkpoint_format')}")
    print(f"tensors:    {len(modules)} quantized modules, "
          f"{sum(1 for k in t if not k.endswith(('.qweight', '.qzeros', '.scales', '.g_idx')))} dense")
    model = make_model(config, sd, errors, "gptq")

    ids = load_tokens(args)
    n = args.windows * args.window
    if len(ids) < n:
        print(f"FAILED: {len(ids)} tokens, need {n}")
        return 1
    windows = ids[:n].reshape(args.windows, args.window)
    ppl = perplexity(model, windows)
    print(f"perplexity: {ppl:.4f} ({args.windows} windows of {args.window}, dequantized GPTQ)")
    if args.expect is not None and abs(ppl / args.expect - 1) > args.tolerance:
        errors.append(f"perplexity {ppl:.4f} is not within {args.tolerance} of {args.expect}")

    if args.reference:
        ref_config, ref_t = read_dir(args.reference)
        worst = compare_reference(sd, set(modules), ref_t, errors)
        print("weights:    max |dequantized - reference| "
              + ", ".join(f"{k} {v:.3g}" for k, v in sorted(worst.items())))
        ref_sd = {k: torch.from_numpy(v.astype(np.float32)) for k, v in ref_t.items()}
        ref_ppl = perplexity(make_model(ref_config, ref_sd, errors, "reference"), windows)
        print(f"reference:  perplexity {ref_ppl:.4f} (float export); relative diff "
              f"{ppl / ref_ppl - 1:+.3e}")
        if abs(ppl / ref_ppl - 1) > args.ref_tolerance:
            errors.append(f"perplexity {ppl:.4f} vs reference {ref_ppl:.4f}: "
                          f"beyond {args.ref_tolerance}")

    if args.transformers_gptq != "skip":
        theirs = transformers_gptq(args.gptq_dir, windows, model, len(modules),
                                   args.transformers_gptq, errors)
        if theirs is not None and abs(theirs / ppl - 1) > args.ref_tolerance:
            errors.append(f"transformers GPTQ perplexity {theirs:.4f} vs ours {ppl:.4f}")

    if errors:
        print(f"FAILED: {len(errors)} problem(s)")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
