#!/usr/bin/env python3
"""The same one-shot job on the real SmolLM2-135M by llm-compressor and by
compressd, on the same calibration windows, measured with one evaluator
(bench/peers/llmcompressor.sh drives it): GPTQ W4A16 (int4, groups of 64,
symmetric), SparseGPT 50% unstructured, SmoothQuant + GPTQ W8A8 (int8
weights per channel, int8 activations per token, dynamic), or GPTQ FP8 W8A8
(FP8 E4M3 weights per channel, E4M3 activations per token, dynamic).

Subcommands (each prints one JSON object on stdout):
  windows OUT.npy --text DIR --samples N --seq-len L --seed S
      calib-sotu's windows exactly as compressd cuts them
      (workers/engine/calib/calib_data.cc: the files of DIR in name order,
      concatenated, tokenized whole with the model's tokenizer, offsets drawn
      by std::mt19937_64(seed) modulo the range), with the token count.
  llmcompressor WINDOWS.npy OUT_DIR --method gptq|sparsegpt|w8a8|fp8
      llm-compressor's oneshot on those windows: GPTQModifier (int4 symmetric
      groups of 64 on every Linear but lm_head, its defaults otherwise; saved
      as compressed-tensors), SparseGPTModifier (sparsity 0.5 on the
      projections, its defaults otherwise; saved dense), or SmoothQuantModifier
      (its default strength 0.5 and mappings) then GPTQModifier with its W8A8
      preset scheme (saved as compressed-tensors), or GPTQModifier with its
      FP8_DYNAMIC preset scheme (saved as compressed-tensors float-quantized);
      reports the wall time of
      oneshot and the modifiers' settings. Run in the llm-compressor venv.
  evaluate MODEL_DIR --windows N
      perplexity of MODEL_DIR (transformers, float32, eager attention) on the
      first N 512-token windows of ppl-persuasion and ppl-kjv, and KL(dense
      || model) with top-1 agreement on the ppl-persuasion windows, the dense
      model being the GGUF read by transformers. A compressed-tensors W8A8 (or FP8)
      checkpoint runs with its per-token activation quantization (the
      compressed-tensors forward wrapper's); `act_quant_linears` counts the
      linears that quantize their inputs. Run in the test venv.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, ".cache", "models")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = os.path.join(ROOT, "..", "shared", "data", "text")
WINDOW = 512
GROUP = 64


class MT19937_64:
    """std::mt19937_64 (the C++ standard's parameters), for the offsets."""

    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & 0xFFFFFFFFFFFFFFFF
        for i in range(1, 312):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & 0xFFFFFFFFFFFFFFFF
        self.index = 312

    def __call__(self):
        if self.index >= 312:
            for i in range(312):
                x = (self.mt[i] & 0xFFFFFFFF80000000) | (self.mt[(i + 1) % 312] & 0x7FFFFFFF)
                xa = x >> 1
                if x & 1:
                    xa ^= 0xB5026F5AA96619E9
                self.mt[i] = self.mt[(i + 156) % 312] ^ xa
            self.index = 0
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & 0xFFFFFFFFFFFFFFFF


def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(MODELS, gguf_file=GGUF)


def cmd_windows(a):
    rng = MT19937_64(5489)
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042, "mt19937_64 self-check failed"
    files = sorted(os.listdir(a.text))
    text = "".join(open(os.path.join(a.text, f), encoding="utf-8").read() for f in files)
    ids = tokenizer()(text, add_special_tokens=False)["input_ids"]
    rng = MT19937_64(a.seed)
    span = len(ids) - a.seq_len + 1
    offsets = [rng() % span for _ in range(a.samples)]
    np.save(a.out, np.asarray([ids[o:o + a.seq_len] for o in offsets], dtype=np.int64))
    return {"text_tokens": len(ids), "files": len(files), "offsets": offsets[:4]}


def dense_model():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=GGUF, dtype=torch.float32,
                                                attn_implementation="eager").eval()


def cmd_llmcompressor(a):
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM
    windows = np.load(a.windows)
    # oneshot re-reads the config from the model's path: give it an HF directory.
    dense_dir = a.out + "-dense"
    gguf_model = dense_model()  # not serializable as it is (its config says GGUF)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(gguf_model.state_dict())
    fresh.save_pretrained(dense_dir)
    del gguf_model, fresh
    tokenizer().save_pretrained(dense_dir)
    model = AutoModelForCausalLM.from_pretrained(dense_dir, dtype=torch.float32)
    ds = Dataset.from_dict({"input_ids": windows.tolist(),
                            "attention_mask": np.ones_like(windows).tolist()})
    if a.method == "gptq":
        # W4A16 with groups of 64: SmolLM2's 576 inputs are not a multiple of
        # 128, which llm-compressor refuses for group quantization.
        from llmcompressor.modifiers.quantization import GPTQModifier
        weights = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
                   "group_size": GROUP}
        modifier = GPTQModifier(ignore=["lm_head"], config_groups={
            "group_0": {"targets": ["Linear"], "weights": weights}})
        settings = ("actorder", "block_size", "dampening_frac")
    elif a.method == "fp8":
        from llmcompressor.modifiers.quantization import GPTQModifier
        modifier = GPTQModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"])
        settings = ("scheme", "actorder", "block_size", "dampening_frac")
    elif a.method == "w8a8":
        from llmcompressor.modifiers.quantization import GPTQModifier
        from llmcompressor.modifiers.smoothquant import SmoothQuantModifier
        smooth = SmoothQuantModifier()
        gptq = GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])
        modifier = [smooth, gptq]
        settings = [("smoothing_strength", "mappings"),
                    ("scheme", "actorder", "block_size", "dampening_frac")]
    else:
        from llmcompressor.modifiers.pruning import SparseGPTModifier
        # The projections only, as compressd's default targets: with targets
        # "Linear" and ignore ["lm_head"], llm-compressor 0.14 still prunes the
        # tied lm_head, i.e. the embedding table (measured: 50% zeros in it).
        modifier = SparseGPTModifier(sparsity=0.5, targets=["re:.*_proj$"])
        settings = ("sparsity", "targets", "mask_structure", "block_size", "dampening_frac")
    start = time.time()
    oneshot(model=model, dataset=ds, recipe=modifier, tokenizer=dense_dir,
            max_seq_length=windows.shape[1], num_calibration_samples=len(windows))
    seconds = time.time() - start
    t = time.time()
    model.save_pretrained(a.out, save_compressed=a.method != "sparsegpt")
    tokenizer().save_pretrained(a.out)
    import llmcompressor
    return {"oneshot_s": seconds, "save_s": time.time() - t, "version": llmcompressor.__version__,
            "torch_threads": torch.get_num_threads(),
            "modifier": settings_of(modifier, settings)}


def settings_of(modifier, settings):
    if not isinstance(modifier, list):
        return {k: str(getattr(modifier, k, None)) for k in settings}
    return {type(m).__name__: settings_of(m, keys) for m, keys in zip(modifier, settings)}


def windows_of(path, n):
    ids = tokenizer()(open(path, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    assert len(ids) >= n * WINDOW, (path, len(ids))
    return [ids[i * WINDOW:(i + 1) * WINDOW] for i in range(n)]


def cmd_evaluate(a):
    from transformers import AutoModelForCausalLM
    dense = dense_model()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    out = {"windows": a.windows, "act_quant_linears": sum(
        1 for m in model.modules()
        if getattr(getattr(m, "quantization_scheme", None), "input_activations", None))}
    sets = {"ppl-persuasion": os.path.join(TEXT, "austen", "persuasion.txt"),
            "ppl-kjv": os.path.join(TEXT, "kjv.txt")}
    with torch.no_grad():
        for name, path in sets.items():
            nll, count, kl, top1 = 0.0, 0, 0.0, 0
            for w in windows_of(path, a.windows):
                x = torch.tensor([w])
                logp = torch.log_softmax(model(x).logits[0].double(), -1)
                nll -= logp[:-1].gather(1, x[0, 1:, None]).sum().item()
                count += len(w) - 1
                if name == "ppl-persuasion":
                    dlogp = torch.log_softmax(dense(x).logits[0].double(), -1)
                    kl += (dlogp.exp() * (dlogp - logp)).sum().item()
                    top1 += (dlogp.argmax(-1) == logp.argmax(-1)).sum().item()
            out[name] = math.exp(nll / count)
            if name == "ppl-persuasion":
                out["kl"] = kl / (a.windows * WINDOW)
                out["top1"] = top1 / (a.windows * WINDOW)
    return out


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("out")
    w.add_argument("--text", default=os.path.join(TEXT, "sotu"))
    w.add_argument("--samples", type=int, default=128)
    w.add_argument("--seq-len", type=int, default=512)
    w.add_argument("--seed", type=int, default=0)
    lc = sub.add_parser("llmcompressor")
    lc.add_argument("windows")
    lc.add_argument("out")
    lc.add_argument("--method", choices=["gptq", "sparsegpt", "w8a8", "fp8"], default="gptq")
    ev = sub.add_parser("evaluate")
    ev.add_argument("model")
    ev.add_argument("--windows", type=int, default=16)
    a = ap.parse_args()
    result = {"windows": cmd_windows, "llmcompressor": cmd_llmcompressor,
              "evaluate": cmd_evaluate}[a.cmd](a)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
