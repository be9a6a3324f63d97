"""Artifact downloads, resumable and verified (as compressctl's
client/commands/artifacts.cc): each artifact goes to <out_dir>/<artifact.path>
through <dest>.part; a .part left by an interrupted download is resumed with
DownloadArtifactRequest.offset; the whole file's size and sha256 are checked
against the job's record and the server's before the .part is renamed."""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import grpc

from ._proto import compressd_pb2
from .errors import (ChecksumMismatch, CompressdError, InvalidArgument, OutOfRange, Unavailable,
                     from_rpc_error)

log = logging.getLogger("compressd_client")

_STREAM_RETRIES = 3
_RETRY_BACKOFF_S = 0.5
# Called with bytes of this file so far and its size.
ByteProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class DownloadedFile:
    """One artifact on disk after `Client.download`."""
    path: Path           # where it was written
    size: int
    sha256: str
    resumed_from: int    # bytes of a kept .part that were not downloaded again
    bytes_received: int  # bytes downloaded by this call (0: already up to date)


def sha256_file(path: Path) -> str:
    """Lowercase hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def safe_destination(out_dir: Path, relative: str) -> Path:
    """out_dir/relative, refusing absolute paths and '..' (a path sent by the server)."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(
            p in ("..", ".", "") for p in parts):
        raise InvalidArgument(f"artifact path {relative!r} is not a safe relative path")
    return out_dir.joinpath(*parts)


class ArtifactDownload:
    """Downloads one artifact with a stub's DownloadArtifact. Not thread-safe."""

    def __init__(self, download_rpc: Callable, artifact: compressd_pb2.Artifact, dest: Path,
                 progress: Optional[ByteProgress] = None) -> None:
        self._rpc = download_rpc
        self._artifact = artifact
        self._dest = dest
        self._part = dest.with_name(dest.name + ".part")
        self._progress = progress
        self._received = 0

    def run(self) -> DownloadedFile:
        """Downloads (or finds up to date) the artifact; ChecksumMismatch when
        the bytes do not match its sha256 even after starting over once."""
        a = self._artifact
        if self._dest.is_file() and sha256_file(self._dest) == a.sha256:
            return DownloadedFile(self._dest, a.size, a.sha256, 0, 0)
        self._dest.parent.mkdir(parents=True, exist_ok=True)
        if _file_size(self._part) > a.size:
            self._part.unlink()  # stale: longer than the file
        resumed_from = _file_size(self._part)
        info = self._stream_with_retries(resumed_from > 0)
        try:
            self._verify(info)
        except ChecksumMismatch:
            if resumed_from == 0:
                self._part.unlink(missing_ok=True)
                raise
            log.info("%s: the kept .part does not match; downloading it again", a.path)
            self._part.unlink(missing_ok=True)
            resumed_from = 0
            info = self._stream_with_retries(False)
            try:
                self._verify(info)
            except ChecksumMismatch:
                self._part.unlink(missing_ok=True)
                raise
        os.replace(self._part, self._dest)
        return DownloadedFile(self._dest, a.size, a.sha256, resumed_from, self._received)

    def _stream_with_retries(self, resumed: bool) -> compressd_pb2.Artifact:
        """Streams into the .part, resuming after UNAVAILABLE; a kept .part the
        server finds past the end (OUT_OF_RANGE) is dropped and fetched whole."""
        for attempt in range(_STREAM_RETRIES + 1):
            try:
                return self._stream()
            except Unavailable:
                if attempt == _STREAM_RETRIES:
                    raise
                time.sleep(_RETRY_BACKOFF_S * (1 << attempt))
            except OutOfRange:
                if not resumed:
                    raise
                self._part.unlink(missing_ok=True)
                resumed = False
        raise AssertionError("unreachable")

    def _stream(self) -> compressd_pb2.Artifact:
        """One DownloadArtifact stream appended to the .part from its size."""
        offset = _file_size(self._part)
        request = compressd_pb2.DownloadArtifactRequest(artifact_id=self._artifact.id,
                                                        offset=offset)
        call = self._rpc(request)
        info: Optional[compressd_pb2.Artifact] = None
        written = offset
        try:
            with open(self._part, "ab") as out:
                for response in call:
                    if response.WhichOneof("kind") == "info":
                        info = response.info
                        continue
                    if info is None or written + len(response.chunk) > info.size:
                        call.cancel()
                        raise ChecksumMismatch(
                            f"{self._artifact.path}: server sent "
                            + ("more bytes than announced" if info else "data before the info"))
                    out.write(response.chunk)
                    written += len(response.chunk)
                    self._received += len(response.chunk)
                    if self._progress:
                        self._progress(written, info.size)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        if info is None:
            raise CompressdError(f"{self._artifact.path}: the stream carried no artifact info")
        return info

    def _verify(self, info: compressd_pb2.Artifact) -> None:
        """The .part against the job's record of the artifact and the server's."""
        a = self._artifact
        size = _file_size(self._part)
        if info.sha256 != a.sha256 or info.size != a.size:
            raise ChecksumMismatch(
                f"{a.path}: the server now has size {info.size} sha256 {info.sha256}, "
                f"the job recorded size {a.size} sha256 {a.sha256}")
        if size != a.size:
            raise ChecksumMismatch(f"{a.path}: downloaded {size} bytes, expected {a.size}")
        got = sha256_file(self._part)
        if got != a.sha256:
            raise ChecksumMismatch(f"{a.path}: sha256 mismatch (got {got}, expected {a.sha256})")
