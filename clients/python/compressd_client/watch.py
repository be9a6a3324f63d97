"""A job's event stream that survives broken connections (as compressctl's
`jobs watch`, client/commands/watch.cc): WatchJob sends every event after
`after_sequence`, then live ones, and ends after the job's terminal state
event. When the stream breaks (UNAVAILABLE: the server restarted or the
network dropped) or ends early, it is opened again after the last sequence
seen, so every event is yielded exactly once, in order."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, Optional

import grpc

from ._proto import compressd_pb2
from .errors import CompressdError, DeadlineExceeded, Unavailable, from_rpc_error
from .events import TERMINAL_STATES, Event, ProgressEvent, StateEvent, event_from_proto, state_name

log = logging.getLogger("compressd_client")

INITIAL_BACKOFF_S = 0.25
MAX_BACKOFF_S = 5.0
# How long to keep reconnecting without receiving a single event.
DEFAULT_RECONNECT_TIMEOUT_S = 120.0


class _Deadline:
    """An optional overall deadline."""

    def __init__(self, timeout: Optional[float]) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        """Seconds left (None: no deadline); DeadlineExceeded when none are."""
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("timed out waiting for the job")
        return left


class ProgressBar:
    """A tqdm bar following progress events (one bar, reset per stage)."""

    def __init__(self, job_id: str) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError as error:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from error
        self._tqdm = tqdm
        self._job_id = job_id
        self._bar: Any = None
        self._stage = ""

    def update(self, event: Event) -> None:
        """Moves the bar for a progress event; notes state changes."""
        if isinstance(event, ProgressEvent):
            if self._bar is None or event.stage != self._stage or event.total != self._bar.total:
                self.close()
                self._stage = event.stage
                self._bar = self._tqdm(total=event.total or None, desc=f"{self._job_id} "
                                       f"{event.stage}", unit="step", leave=False)
            self._bar.set_postfix_str(event.message[-40:], refresh=False)
            self._bar.update(event.current - self._bar.n)  # tqdm throttles the redraws
        elif isinstance(event, StateEvent) and self._bar is not None:
            self._bar.write(f"{self._job_id}: {event.from_state} -> {event.to_state}"
                            + (f" ({event.reason})" if event.reason else ""))

    def close(self) -> None:
        """Closes the current bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def watch_events(watch_rpc: Callable, get_job: Callable[[str, Optional[float]], Any],
                 job_id: str, after_sequence: int = 0, progress: bool = False,
                 timeout: Optional[float] = None,
                 reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S) -> Iterator[Event]:
    """Yields the job's events after `after_sequence` until its terminal state.

    `watch_rpc` is the WatchJob multi-callable, `get_job(id, timeout)` returns
    the Job. A broken stream is reopened after the last sequence seen, backing
    off up to MAX_BACKOFF_S, for up to `reconnect_timeout` seconds without a
    new event; `timeout` bounds the whole watch (DeadlineExceeded)."""
    deadline = _Deadline(timeout)
    bar = ProgressBar(job_id) if progress else None
    last = after_sequence
    backoff = INITIAL_BACKOFF_S
    failing_since: Optional[float] = None
    try:
        while True:
            stream_error: Optional[CompressdError] = None
            got_any = False
            try:
                for event in _read_stream(watch_rpc, job_id, last, deadline.remaining()):
                    if event.sequence <= last:
                        continue  # already seen (never expected, but harmless)
                    last, got_any = event.sequence, True
                    if bar:
                        bar.update(event)
                    yield event
                    if isinstance(event, StateEvent) and event.terminal:
                        return
            except (Unavailable, DeadlineExceeded) as error:
                if isinstance(error, DeadlineExceeded):
                    deadline.remaining()  # ours ran out: raises
                stream_error = error
            if got_any:
                failing_since, backoff = None, INITIAL_BACKOFF_S
            if stream_error is None and _job_ended(get_job, job_id, deadline):
                return
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > reconnect_timeout:
                raise stream_error or Unavailable(
                    f"watch {job_id}: the stream keeps ending before the job ends")
            log.info("watch %s: stream interrupted (%s); reconnecting in %.2f s after event %d",
                     job_id, stream_error or "ended early", backoff, last)
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
    finally:
        if bar:
            bar.close()


def _read_stream(watch_rpc: Callable, job_id: str, after: int,
                 timeout: Optional[float]) -> Iterator[Event]:
    """One WatchJob stream; errors as CompressdError."""
    request = compressd_pb2.WatchJobRequest(job_id=job_id, after_sequence=after)
    call = watch_rpc(request, timeout=timeout)
    try:
        for event in call:
            yield event_from_proto(event)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    finally:
        call.cancel()  # a no-op once the stream has ended


def _job_ended(get_job: Callable[[str, Optional[float]], Any], job_id: str,
               deadline: _Deadline) -> bool:
    """Whether the job is in a terminal state (False when the server is unreachable)."""
    try:
        job = get_job(job_id, deadline.remaining())
    except Unavailable:
        return False
    return state_name(job.state) in TERMINAL_STATES
