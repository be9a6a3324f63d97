"""Client: the compressd API for Python (docs/api.md has every RPC's behaviour).

    from compressd_client import Client
    with Client("localhost:50051", key_file="data/admin.key") as c:
        model = c.upload_model("SmolLM2-135M-Instruct.Q4_1.gguf")
        job = c.submit(model, {"stages": [{"magnitude": {"sparsity": 0.5}}]})
        for event in c.watch(job, progress=True): ...
        c.download(job, "out/")
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Union

import grpc

from ._proto import admin_pb2, admin_pb2_grpc, compressd_pb2, compressd_pb2_grpc
from .channel import PathLike, load_api_key, open_channel
from .downloads import ArtifactDownload, ByteProgress, DownloadedFile, safe_destination
from .errors import FailedPrecondition, InvalidArgument, Unavailable, from_rpc_error
from .events import Event
from .recipes import RecipeLike, load_recipe
from .uploads import UploadStream, hash_files, list_dataset_files, list_model_files
from .watch import DEFAULT_RECONNECT_TIMEOUT_S, watch_events

pb = compressd_pb2
JobLike = Union[str, "compressd_pb2.Job"]
ModelLike = Union[str, "compressd_pb2.Model"]
DEFAULT_SERVER = "localhost:50051"
UNARY_TIMEOUT_S = 60.0  # compressctl's deadline for a unary call
_SUBMIT_RETRIES = 4
_PRIORITIES = {"low": pb.PRIORITY_LOW, "normal": pb.PRIORITY_NORMAL, "high": pb.PRIORITY_HIGH}


@dataclass(frozen=True)
class Identity:
    """Who a key is (AdminService.WhoAmI)."""
    key_id: str
    tenant: str
    role: str  # "admin", "member", "viewer" or "worker"


def _job_id(job: JobLike) -> str:
    return job if isinstance(job, str) else job.id


def _model_id(model: ModelLike) -> str:
    return model if isinstance(model, str) else model.id


def _parse_state(state: Union[None, str, int]) -> int:
    if state is None:
        return pb.JOB_STATE_UNSPECIFIED
    if isinstance(state, int):
        return state
    try:
        return pb.JobState.Value(state.upper())
    except ValueError:
        raise InvalidArgument(f"state {state!r}: expected one of "
                              "queued, running, succeeded, failed, cancelled") from None


def _parse_priority(priority: Union[None, str, int]) -> int:
    if priority is None:
        return pb.PRIORITY_UNSPECIFIED
    if isinstance(priority, int):
        return priority
    if priority.lower() not in _PRIORITIES:
        raise InvalidArgument(f"priority {priority!r} is not low, normal or high")
    return _PRIORITIES[priority.lower()]


def _byte_bar(enabled: bool, desc: str) -> Any:
    """A tqdm bar in bytes (None when not enabled), updated as progress(done, total)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError("progress=True needs tqdm: pip install tqdm") from error
    return tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def _bar_callback(bar: Any) -> Optional[ByteProgress]:
    if bar is None:
        return None

    def update(done: int, total: int) -> None:
        """Moves the bar to `done` of `total` bytes."""
        bar.total = total
        bar.update(done - bar.n)  # tqdm throttles the redraws
    return update


class Client:
    """A connection to compressd. Thread-safe for concurrent calls (gRPC channels are).

    `server`: "host:port" (default $COMPRESSD_SERVER, else localhost:50051), or
    a comma list of IP:PORT addresses balanced round-robin.
    The API key, sent as `authorization: Bearer <key>` on every call, is `key`,
    else the content of `key_file`, else $COMPRESSD_KEY, else the file named by
    $COMPRESSD_KEY_FILE (key files must be mode 0600, as for compressctl).
    `ca_cert`: a PEM CA bundle; the connection then uses TLS verified with it.
    Errors are raised as compressd_client.errors.CompressdError subclasses."""

    def __init__(self, server: Optional[str] = None, key: Optional[str] = None,
                 key_file: Optional[PathLike] = None, ca_cert: Optional[PathLike] = None,
                 timeout: float = UNARY_TIMEOUT_S) -> None:
        self.server = server or os.environ.get("COMPRESSD_SERVER") or DEFAULT_SERVER
        self.timeout = timeout
        self._channel = open_channel(self.server, load_api_key(key, key_file), ca_cert)
        self.compression = compressd_pb2_grpc.CompressionServiceStub(self._channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: Callable, request: Any, timeout: Optional[float] = None) -> Any:
        """A unary call on one of the stubs (`self.compression.GetJob`,
        `self.admin.CreateKey`, ...), errors raised as CompressdError."""
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # Models and datasets --------------------------------------------------------

    def upload_model(self, path: PathLike, name: Optional[str] = None,
                     progress: bool = False) -> "compressd_pb2.Model":
        """Uploads a .gguf file or an HF safetensors directory (config.json and
        *.safetensors; every non-hidden file below it is sent); returns the Model.
        `name` defaults to the file or directory name."""
        model_format, default_name, files = list_model_files(path)
        header = pb.UploadModelRequest(header=pb.UploadModelHeader(
            name=name or default_name, format=model_format))
        return self._upload(self.compression.UploadModel, files, header,
                            lambda chunk: pb.UploadModelRequest(chunk=chunk), progress)

    def upload_dataset(self, paths: Union[PathLike, Sequence[PathLike]], name: str,
                       progress: bool = False) -> "compressd_pb2.Dataset":
        """Uploads text files: each path is a file (sent under its basename) or a
        directory (its non-hidden files, paths relative to it); returns the Dataset."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        files = list_dataset_files(paths)
        header = pb.UploadDatasetRequest(header=pb.UploadDatasetHeader(name=name))
        return self._upload(self.compression.UploadDataset, files, header,
                            lambda chunk: pb.UploadDatasetRequest(chunk=chunk), progress)

    def _upload(self, method: Callable, files: list, header: Any,
                make_request: Callable, progress: bool) -> Any:
        """Hashes `files` into the header, then streams header + chunks."""
        bar = _byte_bar(progress, "hash")
        hash_files(files, _bar_callback(bar))
        if bar is not None:
            bar.close()
        header.header.files.extend(f.entry() for f in files)
        bar = _byte_bar(progress, "upload")
        stream = UploadStream(header, make_request, files, _bar_callback(bar))
        try:
            response = method(iter(stream))  # no deadline: uploads may be large
        except grpc.RpcError as error:
            if stream.error is not None:
                raise stream.error from None
            raise from_rpc_error(error) from None
        finally:
            if bar is not None:
                bar.close()
        if stream.error is not None:
            raise stream.error
        return response

    def models(self, page_size: int = 0) -> List["compressd_pb2.Model"]:
        """Every model the key's tenant can see (all pages, of `page_size`
        each; 0: the server's default)."""
        return self._all_pages(self.compression.ListModels,
                               pb.ListModelsRequest(page_size=page_size), "models")

    def datasets(self, page_size: int = 0) -> List["compressd_pb2.Dataset"]:
        """Every dataset the key's tenant can see (all pages)."""
        return self._all_pages(self.compression.ListDatasets,
                               pb.ListDatasetsRequest(page_size=page_size), "datasets")

    def get_model(self, model_id: str) -> "compressd_pb2.Model":
        """One model; NotFound for an unknown id."""
        return self.call(self.compression.GetModel, pb.GetModelRequest(model_id=model_id))

    def get_dataset(self, dataset_id: str) -> "compressd_pb2.Dataset":
        """One dataset; NotFound for an unknown id."""
        return self.call(self.compression.GetDataset, pb.GetDatasetRequest(dataset_id=dataset_id))

    def delete_model(self, model_id: str) -> None:
        """Deletes a model (FailedPrecondition while a queued or running job uses it)."""
        self.call(self.compression.DeleteModel, pb.DeleteModelRequest(model_id=model_id))

    def delete_dataset(self, dataset_id: str) -> None:
        """Deletes a dataset (FailedPrecondition while a queued or running job uses it)."""
        self.call(self.compression.DeleteDataset, pb.DeleteDatasetRequest(dataset_id=dataset_id))

    def _all_pages(self, method: Callable, request: Any, field: str) -> list:
        items: list = []
        while True:
            page = self.call(method, request)
            items.extend(getattr(page, field))
            if not page.next_page_token:
                return items
            request.page_token = page.next_page_token

    # Jobs ------------------------------------------------------------------------

    def submit(self, model: Union[str, "compressd_pb2.Model"], recipe: RecipeLike,
               datasets: Iterable[Union[str, "compressd_pb2.Dataset"]] = (),
               priority: Union[None, str, int] = None, request_id: Optional[str] = None,
               max_attempts: Optional[int] = None) -> "compressd_pb2.Job":
        """Submits a job; returns it (QUEUED).

        `recipe`: a dict, YAML/JSON text, a path to a .yaml/.yml/.json file, or a
        Recipe message (see recipes.load_recipe). `datasets`: ids (or Datasets)
        the job may read besides those its recipe names. `priority`: "low",
        "normal" or "high". A submit that meets UNAVAILABLE is retried with the
        same `request_id` (default: a new one), so it creates one job at most."""
        request = pb.SubmitJobRequest(
            model_id=model if isinstance(model, str) else model.id,
            recipe=load_recipe(recipe),
            request_id=request_id or f"req-{uuid.uuid4().hex[:16]}",
            max_attempts=max_attempts or 0,
            dataset_ids=[d if isinstance(d, str) else d.id for d in datasets],
            priority=_parse_priority(priority))
        backoff = 0.5
        for attempt in range(_SUBMIT_RETRIES + 1):
            try:
                return self.call(self.compression.SubmitJob, request)
            except Unavailable:
                if attempt == _SUBMIT_RETRIES:
                    raise
                time.sleep(backoff)
                backoff *= 2
        raise AssertionError("unreachable")

    def get_job(self, job: JobLike) -> "compressd_pb2.Job":
        """The job's current record (state, progress, artifacts, summary_json)."""
        return self.call(self.compression.GetJob, pb.GetJobRequest(job_id=_job_id(job)))

    def jobs(self, state: Union[None, str, int] = None, page_size: int = 0,
             model: Optional[ModelLike] = None, newest_first: bool = False,
             tenant: str = "") -> List["compressd_pb2.Job"]:
        """Every job the key's tenant can see (all pages, of `page_size` each;
        0: the server's default), oldest first unless `newest_first`; only
        those in `state` ("queued", "running", "succeeded", "failed",
        "cancelled") and of `model` when given. `tenant`: an admin key's
        filter (other keys always see their own tenant)."""
        request = pb.ListJobsRequest(state=_parse_state(state), page_size=page_size,
                                     model_id=_model_id(model) if model is not None else "",
                                     newest_first=newest_first, tenant=tenant)
        return self._all_pages(self.compression.ListJobs, request, "jobs")

    def cancel(self, job: JobLike) -> "compressd_pb2.Job":
        """Cancels a queued or running job (FailedPrecondition if it has ended)."""
        return self.call(self.compression.CancelJob, pb.CancelJobRequest(job_id=_job_id(job)))

    def delete_job(self, job: JobLike) -> None:
        """Deletes a job with its events and artifacts (cancelling it first)."""
        self.call(self.compression.DeleteJob, pb.DeleteJobRequest(job_id=_job_id(job)))

    def watch(self, job: JobLike, after_sequence: int = 0, progress: bool = False,
              timeout: Optional[float] = None,
              reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S) -> Iterator[Event]:
        """Yields the job's events (StateEvent, ProgressEvent, LogEvent,
        MetricEvent) after `after_sequence`, ending after its terminal state.

        A broken stream (the server restarting, the network dropping) is
        reopened from the last sequence seen, so each event comes exactly once
        and in order. `progress=True` shows a tqdm bar; `timeout` bounds the
        whole watch (DeadlineExceeded); `reconnect_timeout` how long to keep
        reconnecting without receiving an event (then Unavailable)."""
        return watch_events(self.compression.WatchJob, self._get_job_for_watch, _job_id(job),
                            after_sequence, progress, timeout, reconnect_timeout)

    def _get_job_for_watch(self, job_id: str, timeout: Optional[float]) -> "compressd_pb2.Job":
        limit = self.timeout if timeout is None else min(timeout, self.timeout)
        return self.call(self.compression.GetJob, pb.GetJobRequest(job_id=job_id), limit)

    def wait(self, job: JobLike, timeout: Optional[float] = None,
             progress: bool = False) -> "compressd_pb2.Job":
        """Waits until the job ends and returns its final record (check
        `job.state`: SUCCEEDED, FAILED or CANCELLED; `job.error` says why).
        DeadlineExceeded (also a TimeoutError) after `timeout` seconds."""
        for _ in self.watch(job, progress=progress, timeout=timeout):
            pass
        return self.get_job(job)

    # Artifacts -------------------------------------------------------------------

    def download(self, job: JobLike, out_dir: PathLike,
                 progress: bool = False) -> List[DownloadedFile]:
        """Downloads every artifact of a SUCCEEDED job to out_dir/<artifact.path>.

        Resumable: an interrupted download leaves <file>.part, and the next call
        asks only for the rest (DownloadArtifactRequest.offset). Each file's
        size and sha256 are checked against the job's record (ChecksumMismatch
        otherwise, nothing left behind); an up-to-date file is not downloaded
        again. A SUCCEEDED Job message's artifacts are used as given; any other
        job (an id, or the message `submit` returned) is fetched first."""
        given = not isinstance(job, str) and job.state == pb.SUCCEEDED
        record = job if given else self.get_job(_job_id(job))
        if record.state != pb.SUCCEEDED:
            raise FailedPrecondition(f"job {record.id} is {pb.JobState.Name(record.state)}; "
                                     "only a SUCCEEDED job has artifacts to download")
        out = Path(out_dir)
        results = []
        for artifact in record.artifacts:
            bar = _byte_bar(progress, artifact.path)
            try:
                download = ArtifactDownload(self.compression.DownloadArtifact, artifact,
                                            safe_destination(out, artifact.path),
                                            _bar_callback(bar))
                results.append(download.run())
            finally:
                if bar is not None:
                    bar.close()
        return results

    # Admin -------------------------------------------------------------------------

    def whoami(self) -> Identity:
        """The key in use: its id, tenant and role."""
        me = self.call(self.admin.WhoAmI, admin_pb2.WhoAmIRequest())
        return Identity(me.key_id, me.tenant, admin_pb2.Role.Name(me.role)[len("ROLE_"):].lower())
