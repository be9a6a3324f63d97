"""compressd_client: a Python client for compressd (LLM compression as a service).

    from compressd_client import Client
    client = Client("localhost:50051", key_file="data/admin.key")

See clients/python/README.md and docs/python-client.md.
"""
from ._proto import admin_pb2, compressd_pb2, recipe_pb2
from .client import Client, Identity
from .downloads import DownloadedFile
from .errors import (Aborted, AlreadyExists, Cancelled, ChecksumMismatch, CompressdError,
                     DataLoss, DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument,
                     NotFound, OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                     Unavailable, Unimplemented, Unknown)
from .events import (Event, LogEvent, MetricEvent, ProgressEvent, StateEvent, UnknownEvent,
                     TERMINAL_STATES)
from .recipes import load_recipe

__version__ = "0.1.0"

__all__ = [
    "Client", "Identity", "DownloadedFile", "load_recipe",
    "Event", "StateEvent", "ProgressEvent", "LogEvent", "MetricEvent", "UnknownEvent",
    "TERMINAL_STATES", "admin_pb2", "compressd_pb2", "recipe_pb2",
    "CompressdError", "Aborted", "AlreadyExists", "Cancelled", "ChecksumMismatch", "DataLoss",
    "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument", "NotFound",
    "OutOfRange", "PermissionDenied", "ResourceExhausted", "Unauthenticated", "Unavailable",
    "Unimplemented", "Unknown",
]
