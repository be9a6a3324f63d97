#!/usr/bin/env python3
"""Checks the tokenizer files of an HF export of a GGUF model with transformers.
Usage: check_hf_tokenizer.py MODEL.gguf EXPORT_DIR TEXT_FILE

Loads AutoTokenizer from EXPORT_DIR (the tokenizer.json / tokenizer_config.json
the worker wrote from the GGUF's tokenizer) and checks its ids against two
independent tokenizers of the same GGUF:
  * llama.cpp (llama-cpp-python, vocab only), on TEXT_FILE whole and on
    edge-case strings: identical ids everywhere (the export keeps the GGUF's
    tokenizer.ggml.pre semantics, e.g. "smollm": every \\p{N} character apart);
  * transformers' own GGUF conversion, on TEXT_FILE whole and the ASCII edge
    cases. (It reads "smollm" as plain GPT-2 byte-level splitting, so it
    differs from llama.cpp on non-ASCII numerals such as "½"; that string is
    only compared with llama.cpp.)
and that the special tokens, add_bos_token and the chat prompt match, and that
decoding gives each string back. Exits 1 on any difference."""
import os
import sys

import llama_cpp
from transformers import AutoTokenizer


def first_difference(a, b):
    k = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"at {k}: {a[k:k + 5]} vs {b[k:k + 5]} ({len(a)} vs {len(b)} ids)"


def main():
    gguf, export_dir, text_file = sys.argv[1:4]
    directory, name = os.path.split(os.path.abspath(gguf))
    ours = AutoTokenizer.from_pretrained(export_dir)
    hf_gguf = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    llama = llama_cpp.Llama(gguf, vocab_only=True, verbose=False)
    add_bos = bool(getattr(ours, "add_bos_token", False))
    text = open(text_file, encoding="utf-8").read()
    samples = [text, "<|im_start|>user\nHi there 12345<|im_end|>\n", "  leading spaces\t\ttabs\n\n",
               "naïve café — “quotes” 2024-11-22 ½ 日本語", ""]
    errors = []
    for i, s in enumerate(samples):
        a = ours(s)["input_ids"]
        want = llama.tokenize(s.encode("utf-8"), add_bos=add_bos, special=True)
        if a != want:
            errors.append(f"sample {i}: llama.cpp differs {first_difference(a, want)}")
        if s.isascii() or s is text:
            b = hf_gguf(s)["input_ids"]
            if a != b:
                errors.append(f"sample {i}: transformers' GGUF tokenizer differs "
                              f"{first_difference(a, b)}")
        if ours.decode(a, skip_special_tokens=False) != s:
            errors.append(f"sample {i}: decode does not give the text back")
    for attr in ("bos_token", "eos_token", "pad_token"):
        if getattr(ours, attr) != getattr(hf_gguf, attr):
            errors.append(f"{attr}: {getattr(ours, attr)!r} vs {getattr(hf_gguf, attr)!r}")
    chat = [{"role": "user", "content": "What is 2 + 2?"}]
    a = ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    b = hf_gguf.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    if a != b:
        errors.append(f"chat prompt: {a!r} vs {b!r}")
    n = len(ours(text)["input_ids"])
    print(f"{export_dir}: the exported tokenizer gives llama.cpp's ids on {n} tokens of "
          f"{os.path.basename(text_file)} and {len(samples) - 1} edge cases, and transformers' "
          f"GGUF ids on the text; special tokens {ours.bos_token!r} / {ours.eos_token!r}, "
          f"add_bos_token {add_bos}; chat prompt identical")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
