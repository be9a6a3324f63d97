#!/usr/bin/env python3
"""Checks a compressed-tensors checkpoint written by compressd with the real
consumers: PyPI `compressed-tensors` and transformers' integration of it.

Usage:
  check_compressed_tensors.py CT_DIR [--reference FLOAT_DIR] [--expect PPL]
                              (--tokens IDS.bin | --text FILE --tokenizer GGUF)
                              [--windows N] [--window L] [--ppl-tolerance REL]
                              [--expect-bits B] [--expect-strategy group|channel]
                              [--expect-symmetric true|false] [--w8a8] [--fp8]

  * config.json's quantization_config is parsed by compressed-tensors' own
    QuantizationConfig (pydantic: an unknown or malformed field fails), and
    must say quant_method compressed-tensors, format pack-quantized (with
    --w8a8: int-quantized, int8 channel weights and input_activations int8
    per token, dynamic; --fp8: float-quantized, FP8 E4M3 channel weights and,
    with --w8a8, input_activations float per token, dynamic),
    quantization_status compressed;
  * every module with weight_packed (--w8a8: an int8 weight; --fp8 an
    F8_E4M3 one) is decompressed by compressed-tensors'
    PackedQuantizationCompressor (IntQuantizationCompressor,
    FloatQuantizationCompressor) with its config group's scheme, and must
    equal FLOAT_DIR's weight (the same model exported in float32) up to the
    float16 rounding of the scales (|diff| <= 2^-10 * max|w| per tensor),
    with some weight changed by that rounding or none at all;
  * every nn.Linear of the model is either quantized or matched by `ignore`
    (compressed-tensors' matcher), and the other tensors equal the reference
    in float16;
  * transformers loads CT_DIR (AutoModelForCausalLM, compressed-tensors
    integration; dequantized at load, and for a symmetric grid also as
    compressed modules) and its perplexity on N windows of L tokens of
    IDS.bin (int32 LE; or FILE tokenized by the GGUF's tokenizer, no BOS) is
    within --ppl-tolerance (relative) of FLOAT_DIR's, and of PPL (the job's
    own figure) with --expect. At least one of --reference and --expect.
    With --w8a8 the perplexities are of the model with activations quantized:
    the checkpoint decompressed by compressed-tensors, every Linear's input
    quantized per token by PyTorch hooks with vLLM's formula (x * 127 /
    max|x|, round, clamp, times max|x| / 127: what the runtime computes),
    within --ppl-tolerance; and transformers' compressed modules, whose
    forward fake-quantizes the inputs itself (compressed-tensors' formula,
    scale max|x| / 127.5: a finer step, and -max|x| lands on -127.5, which
    rounds either way with its last bit), within --ct-tolerance. --fp8 --w8a8:
    the hooks quantize to E4M3 per token as vLLM does (s = max|x| / 448,
    PyTorch's float8_e4m3fn cast of x / s, times s).
Exits 1 on any failure, 2 on bad usage.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_gptq_load import load_tokens, perplexity  # noqa: E402  (the same protocol)


def load_dir(path):
    tensors = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(path, name)))
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f), tensors


def check_config(config, args, errors):
    from compressed_tensors.quantization import QuantizationConfig
    raw = config.get("quantization_config", {})
    layout = ("float-quantized" if args.fp8 else "int-quantized" if args.w8a8
              else "pack-quantized")
    for key, want in (("quant_method", "compressed-tensors"), ("format", layout),
                      ("quantization_status", "compressed")):
        if raw.get(key) != want:
            errors.append(f"quantization_config.{key} = {raw.get(key)!r}, expected {want!r}")
    qc = QuantizationConfig.model_validate(raw)
    if len(qc.config_groups) != 1:
        errors.append(f"{len(qc.config_groups)} config groups, expected 1")
    scheme = next(iter(qc.config_groups.values()))
    w = scheme.weights
    if args.expect_bits and w.num_bits != args.expect_bits:
        errors.append(f"num_bits {w.num_bits}, expected {args.expect_bits}")
    if args.expect_strategy and w.strategy != args.expect_strategy:
        errors.append(f"strategy {w.strategy}, expected {args.expect_strategy}")
    if args.expect_symmetric and str(w.symmetric).lower() != args.expect_symmetric:
        errors.append(f"symmetric {w.symmetric}, expected {args.expect_symmetric}")
    kind = "float" if args.fp8 else "int"
    if w.type != kind:
        errors.append(f"weights type {w.type}, expected {kind}")
    a = scheme.input_activations
    if args.w8a8:
        if a is None or (a.num_bits, a.type, a.strategy, a.dynamic, a.symmetric) != (
                8, kind, "token", True, True):
            errors.append(f"input_activations {a}, expected {kind} 8 bits per token, dynamic, "
                          "symmetric")
    elif a is not None:
        errors.append(f"input_activations {a} in a weight-only checkpoint")
    return qc, scheme


def check_pattern(m, w, pattern, errors):
    """At most N of every M consecutive inputs nonzero (`pattern` "N:M")."""
    n, groups = (int(x) for x in pattern.split(":"))
    if w.shape[1] % groups:
        errors.append(f"{m}: {w.shape[1]} inputs are not whole groups of {groups}")
        return
    most = int((w.reshape(w.shape[0], -1, groups) != 0).sum(-1).max())
    if most > n:
        errors.append(f"{m}: a group of {groups} inputs holds {most} nonzeros, pattern {pattern}")


def check_weights(tensors, ref, scheme, errors, w8a8, pattern=None, fp8=False):
    """Decompresses every packed module; compares with `ref` (None: none)
    and, given `pattern` ("N:M"), checks its semi-structured sparsity."""
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.compressors.naive_quantized.base import (
        FloatQuantizationCompressor, IntQuantizationCompressor)
    if fp8:
        compressor = FloatQuantizationCompressor
        modules = sorted(k[: -len(".weight")] for k, v in tensors.items()
                         if k.endswith(".weight") and v.dtype == torch.float8_e4m3fn)
    elif w8a8:
        compressor = IntQuantizationCompressor
        modules = sorted(k[: -len(".weight")] for k, v in tensors.items()
                         if k.endswith(".weight") and v.dtype == torch.int8)
    else:
        compressor = PackedQuantizationCompressor
        modules = sorted(k[: -len(".weight_packed")] for k in tensors
                         if k.endswith(".weight_packed"))
    worst = 0.0
    for m in modules:
        local = {k[len(m) + 1:]: v for k, v in tensors.items() if k.startswith(m + ".")}
        w = compressor.decompress(local, scheme)["weight"].float()
        shape = tuple(local["weight_shape"].tolist()) if "weight_shape" in local else w.shape
        if not torch.isfinite(w).all() or w.shape != shape:
            errors.append(f"{m}: decompressed to {tuple(w.shape)} or non-finite values")
        if pattern:
            check_pattern(m, w, pattern, errors)
        if ref is None:
            continue
        r = ref[m + ".weight"].float()
        if w.shape != r.shape:
            errors.append(f"{m}: decompressed shape {tuple(w.shape)}, reference {tuple(r.shape)}")
            continue
        diff = float((w - r).abs().max())
        bound = float(r.abs().max()) / 1024
        worst = max(worst, diff / max(bound, 1e-30))
        if diff > bound:
            errors.append(f"{m}: max |decompressed - reference| {diff:.3g} > {bound:.3g}")
    suffixes = (".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_shape")
    for k, v in tensors.items():
        if k.endswith(suffixes) or v.dtype in (torch.int8, torch.float8_e4m3fn):
            continue
        if v.dtype != torch.float16:
            errors.append(f"{k}: dense tensor in {v.dtype}, expected float16")
        elif ref is not None and not torch.equal(v, ref[k].half()):
            errors.append(f"{k}: differs from the reference in float16")
    versus = "" if ref is None else f"; worst |diff| / (max|w| / 1024) = {worst:.3f}"
    versus += f"; every one {pattern} sparse" if pattern else ""
    print(f"{len(modules)} packed modules decompressed by compressed-tensors{versus}")
    return modules


def check_coverage(model, modules, qc, errors):
    from compressed_tensors.utils.match import is_match
    quantized = set(modules)
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name in quantized:
            continue
        if not any(is_match(name, module, t) for t in qc.ignore or []):
            errors.append(f"{name}: a Linear neither quantized nor in ignore")


def vllm_int8_per_token(module, inputs):
    """vLLM's dynamic per-token int8 (scaled_int8_quant): x * 127 / max|x|,
    rounded half to even, saturated to int8, times max|x| / 127."""
    x = inputs[0]
    m = x.abs().amax(dim=-1, keepdim=True)
    q = torch.clamp(torch.round(x * (127.0 / m)), -128, 127) * (m / 127.0)
    return (torch.where(m == 0, torch.zeros_like(x), q),)


def vllm_fp8_per_token(module, inputs):
    """vLLM's dynamic per-token fp8: s = max(max|x| / 448, 1 / (448 * 512)),
    float8_e4m3fn(clamp(x * (1 / s), +-448)) * s."""
    x = inputs[0]
    m = x.abs().amax(dim=-1, keepdim=True)
    s = torch.clamp(m / 448.0, min=1.0 / (448.0 * 512.0))
    q = torch.clamp(x * (1.0 / s), -448.0, 448.0).to(torch.float8_e4m3fn).to(x.dtype) * s
    return (torch.where(m == 0, torch.zeros_like(x), q),)


def add_vllm_activation_quantization(model, qc, fp8=False):
    """The hook on every Linear the checkpoint quantizes (not in `ignore`)."""
    hook = vllm_fp8_per_token if fp8 else vllm_int8_per_token
    from compressed_tensors.utils.match import is_match
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(
                is_match(name, module, t) for t in qc.ignore or []):
            module.register_forward_pre_hook(hook)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ct_dir")
    ap.add_argument("--reference")
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tokens")
    ap.add_argument("--text")
    ap.add_argument("--tokenizer")
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--ppl-tolerance", type=float, default=0.01)
    ap.add_argument("--expect-bits", type=int)
    ap.add_argument("--expect-strategy", choices=["group", "channel"])
    ap.add_argument("--expect-symmetric", choices=["true", "false"])
    ap.add_argument("--w8a8", action="store_true")
    ap.add_argument("--fp8", action="store_true", help="FP8 E4M3 weights (float-quantized)")
    ap.add_argument("--expect-pattern", help="N:M: the decompressed weights' sparsity")
    ap.add_argument("--ct-tolerance", type=float, default=0.03)
    args = ap.parse_args()
    if not args.reference and args.expect is None:
        ap.error("give --reference, --expect or both")
    if not args.tokens and not (args.text and args.tokenizer):
        ap.error("give --tokens, or --text with --tokenizer")
    from transformers import AutoModelForCausalLM
    errors = []
    config, tensors = load_dir(args.ct_dir)
    ref = load_dir(args.reference)[1] if args.reference else None
    qc, scheme = check_config(config, args, errors)
    modules = check_weights(tensors, ref, scheme, errors, args.w8a8, args.expect_pattern,
                            args.fp8)
    if not modules:
        errors.append("no packed module")
    from transformers import CompressedTensorsConfig
    ids = load_tokens(args)
    n = min(args.windows, len(ids) // args.window)
    windows = ids[: n * args.window].reshape(n, args.window)
    expected = []  # (label, perplexity)
    if args.reference:
        reference = AutoModelForCausalLM.from_pretrained(args.reference,
                                                         dtype=torch.float32).eval()
        check_coverage(reference, modules, qc, errors)
        expected.append(("float reference", perplexity(reference, windows)))
    if args.expect is not None:
        expected.append(("the job's", args.expect))
    # transformers' two routes: dequantize at load (compressed-tensors'
    # decompress), and the compressed modules decompressed on first use. The
    # second lays out an asymmetric checkpoint's zero points unpacked (its
    # meta-device path skips the packing), so it cannot load what
    # llm-compressor and this writer store; vLLM reads them packed.
    # A mixture of experts: transformers keeps its experts as fused 3-D
    # parameters, not Linear modules, which only the first route fills.
    moe = any(config.get(k) for k in ("num_local_experts", "num_experts", "n_routed_experts"))
    # (label, quantization_config override, hooks with vLLM's activation quantization, tolerance)
    routes = [("dequantize at load", CompressedTensorsConfig(dequantize=True), False,
               args.ppl_tolerance)]
    if args.w8a8:
        routes = [(f"decompressed, vLLM's per-token {'fp8' if args.fp8 else 'int8'} activations",
                   CompressedTensorsConfig(dequantize=True), True, args.ppl_tolerance),
                  ("compressed modules, their own activation fake-quantization", None, False,
                   args.ct_tolerance)]
    elif scheme.weights.symmetric and not moe:
        routes.append(("compressed modules", None, False, args.ppl_tolerance))
    for label, override, hooks, tolerance in routes:
        kwargs = {"quantization_config": override} if override is not None else {}
        model = AutoModelForCausalLM.from_pretrained(args.ct_dir, dtype=torch.float32,
                                                     **kwargs).eval()
        if args.reference is None:
            check_coverage(model, modules, qc, errors)
        if hooks:
            add_vllm_activation_quantization(model, qc, args.fp8)
        ppl = perplexity(model, windows)
        for what, want in expected:
            rel = abs(ppl - want) / want
            print(f"perplexity: transformers + compressed-tensors ({label}) {ppl:.4f}, {what} "
                  f"{want:.4f} (relative {rel:.2e}, {n} windows of {args.window})")
            if not rel <= tolerance:
                errors.append(f"{label}: perplexity differs from {what} by {rel:.3%} > "
                              f"{tolerance:.1%}")
    for e in errors:
        print("FAIL:", e)
    print("OK" if not errors else f"{len(errors)} failure(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
