"""Quick start: SparseGPT + GPTQ on the real model, from Python.

Uploads SmolLM2-135M-Instruct (GGUF) and the shared text, runs SparseGPT 50%
followed by GPTQ 4-bit calibrated on the State of the Union addresses, plots
the per-layer reconstruction errors as they stream in, downloads the result
and loads it in transformers. The same cells, with more prose, are
docs/python-client.md (a test checks that both stay the same and runs this
script against a real server).

usage (with compressd running, e.g. scripts/serve.sh, from the repository root):
    export COMPRESSD_KEY_FILE=data/admin.key
    python clients/python/examples/quickstart.py
Settings come from the environment: COMPRESSD_SERVER, COMPRESSD_KEY /
COMPRESSD_KEY_FILE, QUICKSTART_MODEL, QUICKSTART_TEXT, QUICKSTART_OUT,
QUICKSTART_PLOT. Needs `pip install ./clients/python matplotlib transformers torch tqdm`.
"""

# %%
import os
from pathlib import Path

from compressd_client import Client, MetricEvent, StateEvent, compressd_pb2

SERVER = os.environ.get("COMPRESSD_SERVER", "localhost:50051")
MODEL_FILE = Path(os.environ.get("QUICKSTART_MODEL",
                                 ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
TEXT_DIR = Path(os.environ.get("QUICKSTART_TEXT", "../shared/data/text"))
OUT_DIR = Path(os.environ.get("QUICKSTART_OUT", "smollm2-sgpt-gptq"))
PLOT_FILE = Path(os.environ.get("QUICKSTART_PLOT", "reconstruction_error.png"))

client = Client(SERVER)  # the key: $COMPRESSD_KEY, or the file named by $COMPRESSD_KEY_FILE
print(client.whoami())

# %%
model = client.upload_model(MODEL_FILE, progress=True)
text = client.upload_dataset(TEXT_DIR, name="text", progress=True)
print(f"model {model.id}: {model.total_bytes / 2**20:.1f} MiB; "
      f"text {text.id}: {len(text.files)} files")

# %%
recipe = {
    "stages": [
        {"sparsegpt": {"sparsity": 0.5}},                    # OBS pruning with weight updates
        {"gptq": {"grid": {"bits": 4, "group_size": 128}}},  # then 4-bit GPTQ; the mask is kept
    ],
    # calib-sotu, reduced from 128 x 512 tokens to keep this quick on a laptop
    "calibration": {"dataset_id": text.id, "file": "sotu", "samples": 16, "seq_len": 256},
    "output": {"format": "hf_safetensors", "dtype": "bf16"},
    "evaluation": {"perplexity": [{"name": "ppl-persuasion", "dataset_id": text.id,
                                   "file": "austen/persuasion.txt", "windows": 4}]},
}
job = client.submit(model, recipe)
print(job.id, compressd_pb2.JobState.Name(job.state))

# %%
errors = {}      # layer name -> reconstruction error ||WX - W'X||^2 / ||WX||^2
perplexity = {}  # "dense" / "compressed" -> perplexity on ppl-persuasion
for event in client.watch(job, progress=True):
    if isinstance(event, MetricEvent) and event.name == "reconstruction_error":
        errors[event.labels["layer"]] = event.value
    elif isinstance(event, MetricEvent) and event.name == "perplexity":
        perplexity[event.labels["model"]] = event.value
    elif isinstance(event, StateEvent):
        print(f"{event.time:%H:%M:%S} {event.from_state} -> {event.to_state} {event.reason}")
job = client.get_job(job)
assert job.state == compressd_pb2.SUCCEEDED, job.error
print(f"{len(errors)} layers solved; perplexity {perplexity}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(10, 4))
for kind in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
    points = sorted((int(layer.split(".")[2]), error)
                    for layer, error in errors.items() if layer.endswith(kind))
    ax.plot([block for block, _ in points], [error for _, error in points], marker=".",
            label=kind)
ax.set(xlabel="decoder block", ylabel="relative reconstruction error", yscale="log",
       title="SmolLM2-135M: SparseGPT 50% + GPTQ 4-bit, per layer")
ax.legend(ncol=4, fontsize="small")
fig.tight_layout()
fig.savefig(PLOT_FILE, dpi=120)
print(f"plot saved to {PLOT_FILE}")

# %%
for file in client.download(job, OUT_DIR, progress=True):
    print(f"{file.path}: {file.size} bytes, sha256 {file.sha256[:16]}... verified")

# %%
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(OUT_DIR)
lm = AutoModelForCausalLM.from_pretrained(OUT_DIR, dtype=torch.float32)
projections = [w for name, w in lm.named_parameters() if name.endswith("_proj.weight")]
zeros = sum(int((w == 0).sum()) for w in projections) / sum(w.numel() for w in projections)
print(f"loaded in transformers: {len(projections)} projections, {zeros:.3f} of their weights zero")

# ppl-persuasion as the server measures it: the text tokenized whole (no BOS),
# the first 4 windows of 512 tokens, exp(mean NLL of every predicted token).
text_ids = tokenizer((TEXT_DIR / "austen" / "persuasion.txt").read_text(encoding="utf-8"),
                     add_special_tokens=False, return_tensors="pt").input_ids[0]
windows = text_ids[:4 * 512].view(4, 512)
with torch.no_grad():
    nll = lm(windows, labels=windows).loss
print(f"perplexity in transformers: {nll.exp().item():.3f} "
      f"(compressd: {perplexity['compressed']:.3f}, dense: {perplexity['dense']:.3f})")
