#!/usr/bin/env python3
"""Golden fixtures for the C++ tokenizer (tests/unit/engine/tokenizer/).

Reference: HF `tokenizers` (PyPI), on the tokenizer that `transformers` builds
from the real model's GGUF (SmolLM2-135M-Instruct.Q4_1.gguf):

  fixtures/tokenizer_smollm2.json   backend_tokenizer.to_str(), as is (~1.5 MB)
  fixtures/tokenizer_golden.json    ids expected from that tokenizer under
                                    several pre-tokenizer variants

Variants (the same vocabulary and merges, pre_tokenizer replaced):
  smollm  Sequence[Digits(individual), ByteLevel(use_regex)]: SmolLM2's own
          tokenizer.json and llama.cpp's "smollm" (digits apart, then GPT-2)
  gpt2    ByteLevel(use_regex) alone: transformers' GGUF conversion as is
  llama3  Sequence[Split(Llama 3 regex), ByteLevel(no regex)], ignore_merges
  qwen2   Sequence[Split(Qwen2 regex), ByteLevel(no regex)]
  gpt2_prefix (edge cases only) ByteLevel(add_prefix_space=true)
  smollm_template (edge cases only) smollm + TemplateProcessing
          "<|im_start|> $A <|im_end|>", encoded with add_special_tokens=True

The shared texts are NOT copied: slices are stored as (file, byte offset,
length, sha256) and the test reads them from ../shared/data.

Usage (from the repo root): python tests/golden/tokenizer_fixtures.py
[--model .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf] [--data ../shared/data]
"""
import argparse
import copy
import hashlib
import json
import os
import struct

import tokenizers
import transformers
from gguf import GGUFReader
from tokenizers import Tokenizer
from tokenizers import pre_tokenizers as pre
from tokenizers import Regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(HERE, "fixtures")

GPT2_RE = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"
           r"|\s+(?!\S)|\s+")
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = LLAMA3_RE.replace(r"\p{N}{1,3}", r"\p{N}")


def byte_level(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True,
            "use_regex": regex}


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated",
            "invert": False}


DIGITS = {"type": "Digits", "individual_digits": True}
TEMPLATE = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}},
             {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {
        "<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]},
        "<|im_end|>": {"id": "<|im_end|>", "ids": [2], "tokens": ["<|im_end|>"]}},
}

# name -> (gguf pre name or None, pre_tokenizer, ignore_merges, post_processor)
VARIANTS = {
    "smollm": ("smollm", {"type": "Sequence",
                          "pretokenizers": [DIGITS, byte_level()]}, False, None),
    "gpt2": ("gpt-2", byte_level(), False, None),
    "llama3": ("llama-bpe", {"type": "Sequence", "pretokenizers": [
        split(LLAMA3_RE), byte_level(regex=False)]}, True, None),
    "qwen2": ("qwen2", {"type": "Sequence", "pretokenizers": [
        split(QWEN2_RE), byte_level(regex=False)]}, False, None),
}
EDGE_VARIANTS = {
    "gpt2_prefix": (None, byte_level(prefix=True), False, None),
    "smollm_template": (None, VARIANTS["smollm"][1], False, TEMPLATE),
}

# Pre-tokenization alone (raw pieces): name -> pre-tokenizer.
SPLITTERS = {
    "gpt2": pre.Split(Regex(GPT2_RE), behavior="isolated"),
    "smollm": pre.Sequence([pre.Digits(individual_digits=True),
                            pre.Split(Regex(GPT2_RE), behavior="isolated")]),
    "llama3": pre.Split(Regex(LLAMA3_RE), behavior="isolated"),
    "qwen2": pre.Split(Regex(QWEN2_RE), behavior="isolated"),
}

EDGE_TEXTS = [
    "", " ", "   ", "\n", "\n\n\n", " \n \n ", "Hello world", "Hello, world!",
    "don't", "DON'T we'll they've I'd you're", "'s's 'S 'ſt x'Re", "''s",
    "12345", "1234567 89", "  1", "\n 1", "a1b2c3", "3.14159 and 1,000,000",
    "naïve café résumé", "日本語のテキスト", "Россия и Україна", "emoji 😀👍🏽 ❤️",
    "<|im_start|>user\nHi there<|im_end|>\n", "x<|im_start|><|im_start|>y",
    " <|endoftext|> ", "<|im_start", "\t\ttabs\tand\ttext", "a  \n \n  b",
    "hello\r\n\r\nworld\r\n", "!!! ??? ... --- (parens) [x]", "multiple   spaces",
    "trailing   ", "\u00a0nbsp\u00a0 x\u2028y\u3000z", "¹²³ ½ Ⅻ ٣ 𝟙𝟚",
    "Ａｂｃ１２", "\u1c89x\U00011de0y", "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "  multiple   spaces", "The year 1776; verse 3:16.", "e.g. U.S.A. Mr. Smith's",
]


def tokenizer_json(base, variant):
    _, pre_tok, ignore_merges, post = variant
    j = copy.deepcopy(base)
    j["pre_tokenizer"] = pre_tok
    j["model"]["ignore_merges"] = ignore_merges
    j["post_processor"] = post
    return j


def ids_hash(ids):
    return hashlib.sha256(struct.pack(f"<{len(ids)}i", *ids)).hexdigest()


def char_boundary(data, pos):
    while 0 < pos < len(data) and (data[pos] & 0xC0) == 0x80:
        pos += 1
    return pos


def slice_spec(data_dir, rel, frac, length=4000):
    data = open(os.path.join(data_dir, rel), "rb").read()
    start = char_boundary(data, int(len(data) * frac))
    end = char_boundary(data, min(len(data), start + length))
    return rel, start, end - start, data[start:end]


def check_gguf_matches_json(model_path, base):
    """The GGUF arrays the C++ GGUF path reads equal the json's vocab/merges."""
    r = GGUFReader(model_path)
    field = lambda k: r.fields[k].contents()
    tokens = field("tokenizer.ggml.tokens")
    vocab = {t: i for t, i in base["model"]["vocab"].items()}
    assert all(vocab[t] == i for i, t in enumerate(tokens)), "vocab differs"
    merges = [" ".join(m) if isinstance(m, list) else m for m in base["model"]["merges"]]
    assert field("tokenizer.ggml.merges") == merges, "merges differ"
    assert field("tokenizer.ggml.pre") == "smollm"
    return {"tokens": len(tokens), "merges": len(merges),
            "bos": int(field("tokenizer.ggml.bos_token_id")),
            "eos": int(field("tokenizer.ggml.eos_token_id")),
            "add_bos": bool(field("tokenizer.ggml.add_bos_token"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(
        ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()

    hf = transformers.AutoTokenizer.from_pretrained(
        os.path.dirname(args.model), gguf_file=os.path.basename(args.model))
    base_text = hf.backend_tokenizer.to_str()
    base = json.loads(base_text)
    with open(os.path.join(FIXTURES, "tokenizer_smollm2.json"), "w") as f:
        f.write(base_text)
    gguf_info = check_gguf_matches_json(args.model, base)

    toks = {name: Tokenizer.from_str(json.dumps(tokenizer_json(base, v)))
            for name, v in {**VARIANTS, **EDGE_VARIANTS}.items()}
    # The variant "gpt2" is exactly what transformers built from the GGUF.
    probe = "Hello world 12345 don't\n\n  1:1 In"
    assert toks["gpt2"].encode(probe).ids == hf(probe)["input_ids"]

    sotu = sorted(os.listdir(os.path.join(args.data, "text", "sotu")))
    sources = [("text/sotu/" + sotu[0], 0.0), ("text/sotu/" + sotu[1], 0.5),
               ("text/sotu/2021_joseph_r_biden_d.txt", 0.3),  # curly quotes, dashes
               ("text/austen/persuasion.txt", 0.0), ("text/austen/persuasion.txt", 0.35),
               ("text/austen/persuasion.txt", 0.7),
               ("text/kjv.txt", 0.0), ("text/kjv.txt", 0.4), ("text/kjv.txt", 0.8)]
    slices = []
    for rel, frac in sources:
        rel, offset, length, raw = slice_spec(args.data, rel, frac)
        text = raw.decode("utf-8")
        slices.append({"file": rel, "offset": offset, "length": length,
                       "sha256": hashlib.sha256(raw).hexdigest(),
                       "ids": {n: toks[n].encode(text, add_special_tokens=False).ids
                               for n in VARIANTS}})

    edge = []
    for text in EDGE_TEXTS:
        ids = {n: toks[n].encode(text, add_special_tokens=False).ids
               for n in {**VARIANTS, **EDGE_VARIANTS}}
        ids["smollm_template+special"] = toks["smollm_template"].encode(
            text, add_special_tokens=True).ids
        edge.append({"text": text, "ids": ids})

    pieces = [{"splitter": n, "text": t,
               "pieces": [p for p, _ in s.pre_tokenize_str(t)]}
              for n, s in SPLITTERS.items() for t in EDGE_TEXTS]

    full = []
    for rel in ["text/austen/persuasion.txt", "text/kjv.txt"]:
        text = open(os.path.join(args.data, rel), "rb").read().decode("utf-8")
        ids = toks["smollm"].encode(text, add_special_tokens=False).ids
        full.append({"file": rel, "variant": "smollm", "count": len(ids),
                     "ids_sha256": ids_hash(ids)})

    golden = {
        "generator": "tests/golden/tokenizer_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "tokenizer_json": "tokenizer_smollm2.json",
        "gguf": gguf_info,
        "variants": {n: {"gguf_pre": v[0], "pre_tokenizer": v[1], "ignore_merges": v[2],
                         "post_processor": v[3]}
                     for n, v in {**VARIANTS, **EDGE_VARIANTS}.items()},
        "slices": slices,
        "edge_cases": edge,
        "pretokenize_cases": pieces,
        "full_texts": full,
    }
    out = os.path.join(FIXTURES, "tokenizer_golden.json")
    with open(out, "w") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
    n_ids = sum(len(s["ids"]["smollm"]) for s in slices)
    print(f"wrote {out} ({os.path.getsize(out)} bytes): {len(slices)} slices, "
          f"{n_ids} smollm ids; full texts {[(x['file'], x['count']) for x in full]}")


if __name__ == "__main__":
    main()
