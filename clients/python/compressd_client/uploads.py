"""Upload streams, as compressctl sends them (client/commands/upload.cc): the
files to send (a .gguf file, or an HF safetensors directory's non-hidden
files, or dataset files and folders), each hashed (size, lowercase hex
sha256) into the header, then FileChunks of at most 1 MiB in header order."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ._proto import compressd_pb2
from .errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound

PathLike = Union[str, "os.PathLike[str]"]
CHUNK_BYTES = 1 << 20
# Called with bytes done and bytes in total.
ByteProgress = Callable[[int, int], None]


@dataclass
class LocalFile:
    """A file to upload: where to read it, and its entry in the header."""
    local_path: Path
    path: str  # relative, '/'-separated
    size: int = 0
    sha256: str = ""

    def entry(self) -> compressd_pb2.FileEntry:
        """The header's FileEntry."""
        return compressd_pb2.FileEntry(path=self.path, size=self.size, sha256=self.sha256)


def _basename(path: PathLike) -> str:
    return Path(os.path.normpath(os.fspath(path))).name


def _list_directory(root: Path) -> List[LocalFile]:
    """Every non-hidden regular file below `root` (symlinks to files followed,
    not to directories), with '/'-separated relative paths, sorted."""
    if not root.is_dir():
        raise NotFound(f"{root}: no such file or directory")
    files: List[LocalFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            full = Path(dirpath) / name
            if name.startswith(".") or not full.is_file():
                continue
            files.append(LocalFile(full, full.relative_to(root).as_posix()))
    files.sort(key=lambda f: f.path)
    return files


def list_model_files(path: PathLike) -> Tuple[int, str, List[LocalFile]]:
    """(ModelFormat, default name, files) for a .gguf file or an HF
    safetensors directory (config.json and a top-level *.safetensors)."""
    p = Path(path)
    if not p.exists():
        raise NotFound(f"{path}: no such file or directory")
    name = _basename(path)
    if p.is_file():
        if not p.name.lower().endswith(".gguf"):
            raise InvalidArgument(
                f"{path}: expected an HF safetensors model directory or a .gguf file")
        return compressd_pb2.GGUF, name, [LocalFile(p, name)]
    if not p.is_dir():
        raise InvalidArgument(f"{path}: not a regular file or directory")
    files = _list_directory(p)
    if not any(f.path == "config.json" for f in files):
        raise InvalidArgument(f"{path}: not an HF safetensors model directory (no config.json)")
    if not any("/" not in f.path and f.path.endswith(".safetensors") for f in files):
        raise InvalidArgument(
            f"{path}: not an HF safetensors model directory (no *.safetensors file)")
    return compressd_pb2.HF_SAFETENSORS, name, files


def list_dataset_files(paths: Iterable[PathLike]) -> List[LocalFile]:
    """Each path is a file (sent under its basename) or a directory (its
    non-hidden files, relative to it); two files with one relative path are
    an error."""
    files: List[LocalFile] = []
    origin: Dict[str, Path] = {}
    for path in paths:
        p = Path(path)
        if p.is_file():
            found = [LocalFile(p, _basename(path))]
        elif p.is_dir():
            found = _list_directory(p)
        else:
            raise NotFound(f"{path}: no such file or directory")
        for file in found:
            if file.path in origin:
                raise InvalidArgument(f'two files would be uploaded as "{file.path}": '
                                      f"{origin[file.path]} and {file.local_path}")
            origin[file.path] = file.local_path
            files.append(file)
    if not files:
        raise InvalidArgument("no files to upload")
    return files


def hash_files(files: List[LocalFile], progress: Optional[ByteProgress] = None) -> None:
    """Fills each file's size and sha256."""
    for file in files:
        file.size = file.local_path.stat().st_size
    total, done = sum(f.size for f in files), 0
    for file in files:
        digest, read = hashlib.sha256(), 0
        try:
            with open(file.local_path, "rb") as f:
                for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                    digest.update(block)
                    read += len(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        except OSError as error:
            raise DataLoss(f"error reading {file.local_path}: {error.strerror}") from error
        if read != file.size:
            raise FailedPrecondition(f"{file.local_path}: file changed while hashing")
        file.sha256 = digest.hexdigest()


def file_chunks(files: List[LocalFile],
                progress: Optional[ByteProgress] = None) -> Iterator[compressd_pb2.FileChunk]:
    """The FileChunks of every file in order (file_index = position in `files`).
    FailedPrecondition if a file's size changed since it was hashed."""
    total, done = sum(f.size for f in files), 0
    for index, file in enumerate(files):
        sent = 0
        with open(file.local_path, "rb") as f:
            while sent <= file.size:
                data = f.read(CHUNK_BYTES)
                if not data:
                    break
                sent += len(data)
                if sent > file.size:
                    break  # grew since hashing; reported below
                yield compressd_pb2.FileChunk(file_index=index, data=data)
                done += len(data)
                if progress:
                    progress(done, total)
        if sent != file.size:
            raise FailedPrecondition(f"{file.local_path}: file changed during the upload")


class UploadStream:
    """The request iterator of an upload: the header, then the chunks. A local
    error while reading (raised inside gRPC's sending thread) is kept in
    `error` and the stream cut short, so the caller can raise it."""

    def __init__(self, header: object, make_request: Callable[[compressd_pb2.FileChunk], object],
                 files: List[LocalFile], progress: Optional[ByteProgress] = None) -> None:
        self._header = header
        self._make_request = make_request
        self._files = files
        self._progress = progress
        self.error: Optional[Exception] = None

    def __iter__(self) -> Iterator[object]:
        yield self._header
        try:
            for chunk in file_chunks(self._files, self._progress):
                yield self._make_request(chunk)
        except Exception as error:  # handed to the caller after the call fails
            self.error = error
