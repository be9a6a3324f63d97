"""Shared by the Python client's tests: installs clients/python the way a
user would (so its build step, which generates the stubs from proto/, runs),
and runs the real compressd binary on free loopback ports."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional

LISTENING = re.compile(r"^compressd listening grpc=(\S+)", re.MULTILINE)


def install_client(source_dir: Path, work: Path) -> Path:
    """pip-installs a copy of clients/python into work/site and returns that dir.

    The copy sits at work/clients/python beside a work/proto link to the
    repository's proto/, so setup.py's default ../../proto is what generates
    the stubs (no build isolation, no dependencies fetched: works offline with
    the venv's grpcio-tools) and the source tree gets no build leftovers."""
    copy = work / "clients" / "python"
    shutil.copytree(source_dir / "clients" / "python", copy,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "_gen",
                                                  "__pycache__"))
    (work / "proto").symlink_to(source_dir / "proto")
    site = work / "site"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    env.pop("COMPRESSD_PROTO_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-input", "--target", str(site), str(copy)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"pip install of clients/python failed:\n{result.stdout}")
    return site


class CompressdServer:
    """compressd with local workers on a fresh data dir; restartable on the
    same port (kill -9, like tests/integration/start_server.sh)."""

    def __init__(self, bin_dir: Path, data_dir: Path, extra_flags: Optional[List[str]] = None,
                 local_workers: int = 1) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.flags = list(extra_flags or [])
        self.local_workers = local_workers
        self.address = ""
        self.process: Optional[subprocess.Popen] = None
        self._log_dir = data_dir.parent
        self._starts = 0

    @property
    def admin_key_file(self) -> Path:
        """The admin key compressd wrote on its first start (mode 0600)."""
        return self.data_dir / "admin.key"

    def start(self, port: int = 0) -> str:
        """Starts compressd; returns its gRPC address once it listens."""
        self._starts += 1
        out = self._log_dir / f"compressd.{self._starts}.out"
        err = self._log_dir / f"compressd.{self._starts}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            self.process = subprocess.Popen(
                [str(self.bin_dir / "compressd"), "--data-dir", str(self.data_dir),
                 "--grpc-port", str(port), "--http-port", "0",
                 "--local-workers", str(self.local_workers), *self.flags],
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        for _ in range(300):
            match = LISTENING.search(out.read_text())
            if match:
                self.address = match.group(1)
                return self.address
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"compressd did not start:\n{err.read_text()}")

    @property
    def port(self) -> int:
        """The gRPC port."""
        return int(self.address.rsplit(":", 1)[1])

    def kill9(self) -> None:
        """kill -9 (its local workers die with it: PR_SET_PDEATHSIG)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        """kill -9, then start again on the same data dir and gRPC port."""
        port = self.port
        self.kill9()
        self.start(port)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in 10 s."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def logs(self) -> str:
        """The tail of every start's stderr, for failure messages."""
        parts = []
        for i in range(1, self._starts + 1):
            err = self._log_dir / f"compressd.{i}.err"
            if err.exists():
                parts.append(f"--- compressd start {i} stderr ---\n" + err.read_text()[-3000:])
        return "\n".join(parts)


def make_certificates(directory: Path) -> bool:
    """A CA and a server certificate for localhost / 127.0.0.1 (openssl CLI);
    False when openssl is missing or fails."""
    if shutil.which("openssl") is None:
        return False
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    commands = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=compressd-test-ca", "-keyout", "ca.key", "-out", "ca.pem"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=server", "-keyout",
         "server.key", "-out", "server.csr"],
        ["x509", "-req", "-days", "1", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-extfile", "san.ext"],
    ]
    for args in commands:
        if subprocess.run(["openssl", *args], cwd=directory, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            return False
    return True


def run_tests(doc: str, config: Dict[str, Path], with_artifacts: bool = False) -> None:
    """Reads --bin-dir, --source-dir, --model (and --artifacts) into `config`
    (defaults: $COMPRESSD_BIN_DIR, $COMPRESSD_SOURCE_DIR, $COMPRESSD_REAL_MODEL),
    checks them, then runs the calling module's unittest cases with the rest
    of the command line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--bin-dir", default=os.environ.get("COMPRESSD_BIN_DIR", ""))
    parser.add_argument("--source-dir", default=os.environ.get(
        "COMPRESSD_SOURCE_DIR", str(Path(__file__).resolve().parents[2])))
    parser.add_argument("--model", default=os.environ.get("COMPRESSD_REAL_MODEL", ""))
    if with_artifacts:
        parser.add_argument("--artifacts", default="", help="a directory to keep outputs in")
    args, rest = parser.parse_known_args()
    if with_artifacts and args.artifacts:
        config["artifacts"] = Path(args.artifacts).resolve()
    config["bin"] = Path(args.bin_dir).resolve()
    config["source"] = Path(args.source_dir).resolve()
    config["model"] = Path(args.model).resolve()
    if not (config["bin"] / "compressd").is_file():
        sys.exit(f"no compressd in --bin-dir {args.bin_dir!r}")
    if not args.model or not config["model"].is_file():
        sys.exit(f"the real model is missing ({args.model!r}): run scripts/fetch-model.sh and "
                 "pass --model or set COMPRESSD_REAL_MODEL")
    unittest.main(module="__main__", argv=[sys.argv[0], *rest], verbosity=2)
