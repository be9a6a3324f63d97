"""The Python client (clients/python) against the real compressd and the real model.

Installs the package with pip (its build step generates the stubs from
proto/), starts compressd with one local worker, and checks: key precedence
and identity, TLS, uploads (the real SmolLM2 GGUF and real text), a real
calibrated RTN job watched while compressd is killed (kill -9) and restarted
mid-job (the watch reconnects and yields every sequence exactly once, in
order), resumable sha256-checked downloads, roles, cancel and wait, and gRPC
errors mapped to exceptions.

usage: test_client.py [--bin-dir DIR] [--source-dir DIR] [--model GGUF] [unittest args]
(defaults: $COMPRESSD_BIN_DIR, $COMPRESSD_SOURCE_DIR, $COMPRESSD_REAL_MODEL)
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, Dict, List, Optional
from unittest import mock

from google.protobuf import json_format

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

CONFIG: Dict[str, Path] = {}
# The job the watch test runs: real calibration (8 windows of 128 tokens of
# real text) so every layer reports a reconstruction error, 30 calibrate steps.
RTN_RECIPE = """
stages: [{rtn: {grid: {bits: 4, group_size: 32}}}]
calibration: {dataset_id: %s, file: sotu, samples: 8, seq_len: 128}
output: {format: gguf}
"""
# YAML that exercises the scalar typing and field-name mapping (test_09).
TRICKY_RECIPE = r"""
stages:
  - magnitude: {pattern: "2:4"}
  - rtn: {grid: {bits: 8, group_size: -1, asymmetric: true}}
targets: {include: '.*_proj$', ignore: [lm_head, "model\\.layers\\.0\\..*"]}
overrides:
  - modules: model\.layers\.1\..*
    stage: 1
    params: {rtn: {grid: {bits: 4, groupSize: 64}}}
calibration: ~
output: {format: hf_safetensors, dtype: bf16}
"""
cc: Any = None  # the installed compressd_client module
S: Dict[str, Any] = {}  # shared between the ordered tests


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def setUpModule() -> None:
    global cc
    S["work"] = Path(tempfile.mkdtemp(prefix="pyclient-"))
    site = harness.install_client(CONFIG["source"], S["work"] / "build")
    sys.path.insert(0, str(site))
    import compressd_client
    cc = compressd_client
    S["site"] = site
    server = harness.CompressdServer(
        CONFIG["bin"], S["work"] / "data",
        ["--lease-ttl-ms", "3000", "--heartbeat-interval-ms", "500"])
    server.start()
    S["server"] = server
    S["client"] = cc.Client(server.address, key_file=server.admin_key_file)


def tearDownModule() -> None:
    if "client" in S:
        S["client"].close()
    if "server" in S:
        S["server"].stop()
    shutil.rmtree(S["work"], ignore_errors=True)


class ClientTest(unittest.TestCase):
    """Ordered steps (unittest runs them by name) against one server."""

    @property
    def client(self) -> Any:
        return S["client"]

    @property
    def server(self) -> harness.CompressdServer:
        return S["server"]

    def fail_with_logs(self, message: str) -> None:
        self.fail(f"{message}\n{self.server.logs()}")

    def test_01_stubs_generated_by_the_build(self) -> None:
        self.assertTrue(Path(cc.__file__).is_relative_to(S["site"]), cc.__file__)
        gen = S["site"] / "compressd_client" / "_gen" / "compressd" / "v1"
        for name in ("compressd_pb2.py", "compressd_pb2_grpc.py", "admin_pb2_grpc.py"):
            text = (gen / name).read_text()
            self.assertNotIn("from compressd.v1 import", text, name)
        self.assertNotIn("compressd", sys.modules, "no top-level 'compressd' package imported")
        # Every RPC of the repository's proto is on the generated stubs.
        stub = cc.client.compressd_pb2_grpc.CompressionServiceStub(self.client._channel)
        proto = (CONFIG["source"] / "proto" / "compressd" / "v1" / "compressd.proto").read_text()
        rpcs = re.findall(r"^\s*rpc (\w+)\(", proto, re.MULTILINE)
        self.assertGreater(len(rpcs), 10)
        for rpc in rpcs:
            self.assertTrue(hasattr(stub, rpc), rpc)
        job_fields = set(cc.compressd_pb2.Job.DESCRIPTOR.fields_by_name)
        self.assertIn("submitted_by", job_fields)

    def test_02_keys_identity_and_targets(self) -> None:
        me = self.client.whoami()
        self.assertEqual((me.tenant, me.role), ("default", "admin"))
        key_file = self.server.admin_key_file
        secret = key_file.read_text().strip()
        address = self.server.address
        env = {"COMPRESSD_KEY": "cmpd_bogus", "COMPRESSD_KEY_FILE": ""}
        with mock.patch.dict(os.environ, env):
            # An explicit key file wins over $COMPRESSD_KEY; the env key alone is used.
            self.assertEqual(cc.Client(address, key_file=key_file).whoami().role, "admin")
            with self.assertRaises(cc.Unauthenticated) as bad:
                cc.Client(address).whoami()
            self.assertTrue(bad.exception.message, "the server's message is kept")
            self.assertEqual(cc.Client(address, key=secret, key_file="/nonexistent").whoami()
                             .key_id, me.key_id)
        with mock.patch.dict(os.environ, {"COMPRESSD_KEY": "", "COMPRESSD_KEY_FILE": str(key_file)}):
            self.assertEqual(cc.Client(address).whoami().key_id, me.key_id)
        with mock.patch.dict(os.environ, {"COMPRESSD_KEY": "", "COMPRESSD_KEY_FILE": ""}):
            with self.assertRaises(cc.Unauthenticated):
                cc.Client(address).models()
        loose = S["work"] / "loose.key"
        loose.write_text(secret)
        loose.chmod(0o644)
        with self.assertRaisesRegex(cc.FailedPrecondition, "chmod 600"):
            cc.Client(address, key_file=loose)
        # A comma list of addresses: balanced round-robin over both.
        both = cc.Client(f"{address},{address}", key_file=key_file)
        self.assertEqual(both.whoami().role, "admin")
        with self.assertRaises(cc.InvalidArgument):
            cc.Client("example.com:1,example.org:2", key_file=key_file)

    def test_03_tls(self) -> None:
        certs = S["work"] / "certs"
        certs.mkdir()
        if not harness.make_certificates(certs):
            self.skipTest("openssl is not available")
        tls = harness.CompressdServer(
            CONFIG["bin"], S["work"] / "tls-data",
            ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")],
            local_workers=0)
        tls.start()
        try:
            secure = cc.Client(tls.address, key_file=tls.admin_key_file,
                               ca_cert=certs / "ca.pem", timeout=10)
            self.assertEqual(secure.whoami().role, "admin")
            plain = cc.Client(tls.address, key_file=tls.admin_key_file, timeout=5)
            with self.assertRaises(cc.Unavailable):
                plain.whoami()
            with self.assertRaisesRegex(cc.InvalidArgument, "not a PEM file"):
                cc.Client(tls.address, ca_cert=certs / "san.ext")
        finally:
            tls.stop()

    def test_04_uploads(self) -> None:
        model_path = CONFIG["model"]
        model = self.client.upload_model(model_path)
        self.assertTrue(model.id)
        self.assertEqual(model.name, model_path.name)
        self.assertEqual(model.format, cc.compressd_pb2.GGUF)
        self.assertEqual([(f.path, f.size, f.sha256) for f in model.files],
                         [(model_path.name, model_path.stat().st_size, sha256(model_path))])
        # Real text: three State of the Union addresses under sotu/, and a novel.
        text = CONFIG["source"].parent / "shared" / "data" / "text"
        calib = S["work"] / "calib"
        (calib / "sotu").mkdir(parents=True)
        for source in sorted((text / "sotu").glob("*.txt"))[-3:]:
            shutil.copy(source, calib / "sotu" / source.name)
        (calib / ".hidden").write_text("never sent")
        novel = text / "austen" / "persuasion.txt"
        dataset = self.client.upload_dataset([calib, novel], name="text")
        paths = sorted(f.path for f in dataset.files)
        self.assertEqual(len(paths), 4)
        self.assertIn("persuasion.txt", paths)
        self.assertTrue(all(p.startswith("sotu/") for p in paths if p != "persuasion.txt"))
        sent = {f.path: f.sha256 for f in dataset.files}
        self.assertEqual(sent["persuasion.txt"], sha256(novel))
        self.assertIn(model.id, [m.id for m in self.client.models(page_size=1)])
        self.assertIn(dataset.id, [d.id for d in self.client.datasets()])
        self.assertEqual(self.client.get_model(model.id).total_bytes, model_path.stat().st_size)
        with self.assertRaisesRegex(cc.InvalidArgument, "no config.json"):
            self.client.upload_model(calib)
        S["model"], S["dataset"] = model, dataset

    def test_05_errors_are_mapped(self) -> None:
        with self.assertRaises(cc.NotFound) as missing:
            self.client.get_job("job-does-not-exist")
        self.assertIsInstance(missing.exception, cc.CompressdError)
        self.assertEqual(missing.exception.code.name, "NOT_FOUND")
        with self.assertRaises(cc.NotFound):
            self.client.submit("model-does-not-exist", {"stages": [{"magnitude": {"sparsity": .5}}]})
        # The server's validation names the field at fault.
        bad = {"stages": [{"magnitude": {"sparsity": 1.5}}]}
        with self.assertRaisesRegex(cc.InvalidArgument, r"stages\[0\]\.magnitude\.sparsity"):
            self.client.submit(S["model"], bad)
        # So does the client's parse (YAML text here), before anything is sent.
        with self.assertRaisesRegex(cc.InvalidArgument, r'unknown field "stages\[0\]\.magnitud"'):
            self.client.submit(S["model"], "stages: [{magnitud: {sparsity: 0.5}}]")
        with self.assertRaises(cc.InvalidArgument):
            self.client.jobs(state="bogus")

    def test_06_watch_survives_a_server_restart(self) -> None:
        recipe_file = S["work"] / "rtn.yaml"
        recipe_file.write_text(RTN_RECIPE % S["dataset"].id)
        job = self.client.submit(S["model"], recipe_file, request_id="pyclient-rtn")
        again = self.client.submit(S["model"], recipe_file, request_id="pyclient-rtn")
        self.assertEqual(again.id, job.id, "a retried submit returns the first job")
        events, killed_at, logs = self.watch_with_restart(job.id)
        sequences = [e.sequence for e in events]
        self.assertEqual(sequences, list(range(1, len(events) + 1)),
                         "every sequence exactly once, in order, no gaps")
        self.assertIsNotNone(killed_at, "compressd was never restarted mid-job")
        self.assertLess(killed_at, len(events) - 10, "events kept coming after the restart")
        self.assertTrue(any("reconnecting" in line for line in logs), logs)
        last = events[-1]
        self.assertIsInstance(last, cc.StateEvent)
        if last.to_state != "SUCCEEDED":
            self.fail_with_logs(f"job ended {last}")
        final = self.client.get_job(job.id)
        self.assertGreaterEqual(final.attempts, 2, "the killed attempt was retried")
        errors = [e for e in events if isinstance(e, cc.MetricEvent)
                  and e.name == "reconstruction_error"]
        # Typed metric events with their labels, for every one of the 210
        # layers: the retry resumes after the blocks the killed attempt had
        # checkpointed and reports their layers again (the killed attempt's
        # last events may be lost with it).
        layers = {e.labels["layer"] for e in errors}
        self.assertEqual(len(layers), 210)
        self.assertTrue(all(layer.startswith("model.layers.") for layer in layers), layers)
        self.assertTrue(all(e.value >= 0 and e.time.year >= 2024 for e in errors))
        # The persisted stream is what the reconnecting watch saw.
        self.assertEqual(list(self.client.watch(job.id, progress=True)), events)
        self.assertEqual(list(self.client.watch(job.id, after_sequence=len(events) - 3)),
                         events[-3:])
        self.assertEqual(self.client.wait(job.id, timeout=30).state, cc.compressd_pb2.SUCCEEDED)
        S["job"] = final

    def watch_with_restart(self, job_id: str):
        """Watches the job, restarting compressd (kill -9, same port and data)
        once calibration is 3 blocks in; returns (events, sequence at the kill,
        the client's log lines)."""
        events: List[Any] = []
        killed_at: Optional[int] = None
        with self.assertLogs("compressd_client", "INFO") as logs:
            for event in self.client.watch(job_id, timeout=240):
                events.append(event)
                if (killed_at is None and isinstance(event, cc.ProgressEvent)
                        and event.stage == "calibrate" and event.current >= 3):
                    killed_at = event.sequence
                    self.server.restart()
        return events, killed_at, logs.output

    def test_07_download_resumable_and_verified(self) -> None:
        job = S["job"]
        self.assertEqual([a.path for a in job.artifacts], ["model.gguf"])
        artifact = job.artifacts[0]
        out = S["work"] / "out"
        [done] = self.client.download(job.id, out)
        path = out / "model.gguf"
        self.assertEqual((done.path, done.size, done.resumed_from), (path, artifact.size, 0))
        self.assertEqual(done.bytes_received, artifact.size)
        self.assertEqual(path.stat().st_size, artifact.size)
        self.assertEqual(sha256(path), artifact.sha256)
        self.assertEqual(path.read_bytes()[:4], b"GGUF")
        self.assertFalse((out / "model.gguf.part").exists())
        # Up to date: nothing downloaded again.
        self.assertEqual(self.client.download(job, out)[0].bytes_received, 0)
        # An interrupted download (a .part of 40%) resumes from its offset.
        kept = artifact.size * 2 // 5
        resumed = S["work"] / "resumed"
        resumed.mkdir()
        (resumed / "model.gguf.part").write_bytes(path.read_bytes()[:kept])
        [again] = self.client.download(job, resumed)
        self.assertEqual((again.resumed_from, again.bytes_received), (kept, artifact.size - kept))
        self.assertEqual(sha256(resumed / "model.gguf"), artifact.sha256)
        # A .part with the wrong bytes fails the check, and is fetched whole again.
        corrupt = S["work"] / "corrupt"
        corrupt.mkdir()
        (corrupt / "model.gguf.part").write_bytes(b"\0" * kept)
        [fixed] = self.client.download(job, corrupt)
        self.assertEqual(fixed.resumed_from, 0)
        self.assertEqual(sha256(corrupt / "model.gguf"), artifact.sha256)
        # Bytes that do not match the job's sha256 are refused, nothing kept.
        tampered = cc.compressd_pb2.Job()
        tampered.CopyFrom(job)
        tampered.artifacts[0].sha256 = "0" * 64
        with self.assertRaises(cc.ChecksumMismatch):
            self.client.download(tampered, S["work"] / "tampered")
        self.assertEqual(list((S["work"] / "tampered").iterdir()), [])

    def test_08_roles_cancel_and_wait(self) -> None:
        created = self.client.call(self.client.admin.CreateKey, cc.admin_pb2.CreateKeyRequest(
            tenant="default", role=cc.admin_pb2.ROLE_VIEWER, description="pyclient test"))
        viewer = cc.Client(self.server.address, key=created.secret)
        self.assertEqual(viewer.whoami().role, "viewer")
        self.assertEqual(viewer.get_job(S["job"].id).state, cc.compressd_pb2.SUCCEEDED)
        with self.assertRaisesRegex(cc.PermissionDenied, "viewer"):
            viewer.cancel(S["job"].id)
        with self.assertRaises(cc.FailedPrecondition):
            self.client.cancel(S["job"].id)
        job = self.client.submit(S["model"], RTN_RECIPE % S["dataset"].id, priority="high")
        with self.assertRaises(cc.DeadlineExceeded) as late:
            self.client.wait(job, timeout=0.5)
        self.assertIsInstance(late.exception, TimeoutError)
        self.client.cancel(job)
        self.assertEqual(self.client.wait(job, timeout=60).state, cc.compressd_pb2.CANCELLED)
        with self.assertRaises(cc.FailedPrecondition):
            self.client.download(job.id, S["work"] / "cancelled")
        self.assertEqual([j.id for j in self.client.jobs(state="cancelled")], [job.id])
        self.assertEqual({j.id for j in self.client.jobs(page_size=1)}, {job.id, S["job"].id})
        # Newest first, paged one at a time, filtered by model (the dashboard's list).
        self.assertEqual([j.id for j in self.client.jobs(page_size=1, newest_first=True,
                                                         model=S["model"])],
                         [job.id, S["job"].id])
        self.assertEqual(self.client.jobs(model="mdl-none"), [])

    def test_09_recipes_parse_like_compressctl(self) -> None:
        # Quoted and plain scalars, lowerCamelCase names, a null, a nested
        # override: compressctl and the client must send the same Recipe.
        recipe_file = S["work"] / "tricky.yaml"
        recipe_file.write_text(TRICKY_RECIPE)
        ctl = subprocess.run(
            [str(CONFIG["bin"] / "compressctl"), "--server", self.server.address, "--key-file",
             str(self.server.admin_key_file), "jobs", "submit", "--model", S["model"].id,
             "--recipe", str(recipe_file), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        by_ctl = json_format.Parse(ctl.stdout, cc.compressd_pb2.Job(), ignore_unknown_fields=True)
        by_py = self.client.submit(S["model"], recipe_file)
        for job in (by_ctl, by_py):
            try:
                self.client.cancel(job)
            except cc.FailedPrecondition:
                pass  # it finished already
        self.assertEqual(by_py.recipe, by_ctl.recipe)
        self.assertEqual(by_py.recipe.stages[0].magnitude.pattern, "2:4")
        self.assertEqual(by_py.recipe.overrides[0].params.rtn.grid.group_size, 64)


def main() -> None:
    harness.run_tests(__doc__, CONFIG)


if __name__ == "__main__":
    main()
