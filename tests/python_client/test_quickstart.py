"""The Python quick start cannot rot: docs/python-client.md's code cells are
clients/python/examples/quickstart.py's, and the script runs against the real
compressd with the real model and text (SparseGPT + GPTQ, the plot, the
download, transformers loading the result).

usage: test_quickstart.py [--bin-dir DIR] [--source-dir DIR] [--model GGUF]
                          [--artifacts DIR (keeps the plot)] [unittest args]
(defaults: $COMPRESSD_BIN_DIR, $COMPRESSD_SOURCE_DIR, $COMPRESSD_REAL_MODEL)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

CONFIG: Dict[str, Path] = {}
SCRIPT = Path("clients") / "python" / "examples" / "quickstart.py"
DOC = Path("docs") / "python-client.md"
TOLERANCE = 0.01


def script_cells(text: str) -> List[str]:
    """The code cells of a percent-format script ("# %%" lines; the module
    docstring before the first one is not a cell)."""
    cells = re.split(r"^# %%[^\n]*\n", text, flags=re.MULTILINE)[1:]
    return [cell.strip() for cell in cells]


def doc_cells(text: str) -> List[str]:
    """The ```python blocks of a markdown file."""
    return [block.strip() for block in re.findall(r"^```python\n(.*?)^```", text,
                                                  flags=re.MULTILINE | re.DOTALL)]


class QuickstartTest(unittest.TestCase):
    def start_server(self, prefix: str) -> Tuple[Path, Path, "harness.CompressdServer"]:
        """A temp dir, the client installed in it, and a running compressd."""
        work = Path(tempfile.mkdtemp(prefix=prefix))
        self.addCleanup(shutil.rmtree, work, True)
        site = harness.install_client(CONFIG["source"], work / "build")
        server = harness.CompressdServer(CONFIG["bin"], work / "data")
        server.start()
        self.addCleanup(server.stop)
        return work, site, server

    def test_doc_cells_are_the_script(self) -> None:
        source = CONFIG["source"]
        script = script_cells((source / SCRIPT).read_text())
        doc = doc_cells((source / DOC).read_text())
        self.assertGreaterEqual(len(script), 6)
        self.assertEqual(doc, script, f"{DOC} and {SCRIPT} differ: keep their cells the same")

    def test_runs_against_the_real_server(self) -> None:
        work, site, server = self.start_server("pyquickstart-")
        env = dict(os.environ, PYTHONPATH=str(site), MPLBACKEND="Agg",
                   COMPRESSD_SERVER=server.address, COMPRESSD_KEY="",
                   COMPRESSD_KEY_FILE=str(server.admin_key_file),
                   QUICKSTART_MODEL=str(CONFIG["model"]),
                   QUICKSTART_TEXT=str(CONFIG["source"].parent / "shared" / "data" / "text"),
                   QUICKSTART_OUT=str(work / "out"), QUICKSTART_PLOT=str(work / "plot.png"))
        run = subprocess.run([sys.executable, str(CONFIG["source"] / SCRIPT)], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=1200)
        print("\n".join(line for line in run.stdout.splitlines() if "%|" not in line)[-6000:])
        if run.returncode != 0:
            self.fail(f"quickstart.py exited {run.returncode}\n{server.logs()}")
        self.assertIn("210 layers solved", run.stdout)
        zeros = re.search(r"([0-9.]+) of their weights zero", run.stdout)
        self.assertIsNotNone(zeros, "transformers did not report the zeros")
        self.assertAlmostEqual(float(zeros.group(1)), 0.5, delta=0.02)
        ppl = re.search(r"perplexity in transformers: ([0-9.]+) \(compressd: ([0-9.]+), "
                        r"dense: ([0-9.]+)\)", run.stdout)
        self.assertIsNotNone(ppl, "no perplexity from transformers and compressd in the output")
        ours, server, dense = (float(ppl.group(i)) for i in (1, 2, 3))
        self.assertLess(dense, server, "compression should cost some perplexity")
        # The bf16 export evaluated by transformers vs compressd's own evaluation.
        self.assertLess(abs(ours - server) / server, TOLERANCE)
        if "artifacts" in CONFIG:
            CONFIG["artifacts"].mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "plot.png", CONFIG["artifacts"] / "reconstruction_error.png")
        plot = (work / "plot.png").read_bytes()
        self.assertEqual(plot[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(plot), 20000, "the plot is suspiciously small")
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            self.assertTrue((work / "out" / name).is_file(), name)

    def test_readme_snippet_runs(self) -> None:
        """The README's "From Python" block, with its paths pointed here."""
        block = re.search(r"^## From Python\n.*?^```python\n(.*?)^```",
                          (CONFIG["source"] / "README.md").read_text(),
                          flags=re.MULTILINE | re.DOTALL)
        self.assertIsNotNone(block, "README.md has no python block under ## From Python")
        work, site, server = self.start_server("pyreadme-")
        code = block.group(1)
        for old, new in (("localhost:50051", server.address),
                         ("data/admin.key", str(server.admin_key_file)),
                         (".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf", str(CONFIG["model"])),
                         ("/tmp/smollm2-pruned", str(work / "out"))):
            self.assertIn(old, code)
            code = code.replace(old, new)
        run = subprocess.run([sys.executable, "-c", code], cwd=work, text=True, timeout=600,
                             env=dict(os.environ, PYTHONPATH=str(site), COMPRESSD_KEY=""),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # bars: stderr
        self.assertEqual(run.returncode, 0, run.stderr[-4000:] + server.logs())
        layers = re.findall(r"^model\.layers\.\d+\.\S+ 0\.5", run.stdout, flags=re.MULTILINE)
        self.assertEqual(len(layers), 210, run.stdout[-2000:])
        self.assertTrue((work / "out" / "model.safetensors").is_file())


def main() -> None:
    harness.run_tests(__doc__, CONFIG, with_artifacts=True)


if __name__ == "__main__":
    main()
