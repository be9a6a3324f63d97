"""Typed job events, as `Client.watch` yields them: one small dataclass per
JobEvent payload (state change, progress, log line, metric), each with the
event's `sequence` (1, 2, ... without gaps per job) and `time_ms`."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Dict, Union

from ._proto import compressd_pb2

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


def state_name(state: int) -> str:
    """The JobState's name, e.g. "RUNNING"."""
    return compressd_pb2.JobState.Name(state)


@dataclass(frozen=True)
class _Event:
    sequence: int
    time_ms: int

    @property
    def time(self) -> datetime.datetime:
        """When the server recorded the event (UTC)."""
        return datetime.datetime.fromtimestamp(self.time_ms / 1000.0, tz=datetime.timezone.utc)


@dataclass(frozen=True)
class StateEvent(_Event):
    """The job moved from one state to another, e.g. QUEUED -> RUNNING."""
    from_state: str = ""
    to_state: str = ""
    reason: str = ""

    @property
    def terminal(self) -> bool:
        """True when the job has ended (SUCCEEDED, FAILED or CANCELLED)."""
        return self.to_state in TERMINAL_STATES


@dataclass(frozen=True)
class ProgressEvent(_Event):
    """Progress of a stage: `current` of `total` (e.g. calibrate 4/30)."""
    stage: str = ""
    current: int = 0
    total: int = 0
    message: str = ""


@dataclass(frozen=True)
class LogEvent(_Event):
    """A log line of the worker ("info", "warning", "error")."""
    level: str = ""
    message: str = ""


@dataclass(frozen=True)
class MetricEvent(_Event):
    """A measurement, e.g. reconstruction_error with labels {"layer": ...}."""
    name: str = ""
    value: float = 0.0
    labels: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UnknownEvent(_Event):
    """An event with a payload this client does not know (a newer server)."""


Event = Union[StateEvent, ProgressEvent, LogEvent, MetricEvent, UnknownEvent]


def event_from_proto(event: compressd_pb2.JobEvent) -> Event:
    """The dataclass for one JobEvent."""
    base = dict(sequence=event.sequence, time_ms=event.time_ms)
    kind = event.WhichOneof("payload")
    if kind == "state":
        s = event.state
        return StateEvent(**base, from_state=state_name(getattr(s, "from")),
                          to_state=state_name(s.to), reason=s.reason)
    if kind == "progress":
        p = event.progress
        return ProgressEvent(**base, stage=p.stage, current=p.current, total=p.total,
                             message=p.message)
    if kind == "log":
        return LogEvent(**base, level=event.log.level, message=event.log.message)
    if kind == "metric":
        m = event.metric
        return MetricEvent(**base, name=m.name, value=m.value, labels=dict(m.labels))
    return UnknownEvent(**base)
