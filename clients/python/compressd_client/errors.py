"""Exceptions: every gRPC error becomes a CompressdError subclass named after
its status code, carrying the server's message (which names the field, file
or id at fault; docs/api.md lists when each code is returned)."""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class CompressdError(Exception):
    """A failed call. `code` is the grpc.StatusCode, `message` the server's text."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class Cancelled(CompressdError):
    """The call was cancelled (by the client)."""
    code = grpc.StatusCode.CANCELLED


class Unknown(CompressdError):
    """An error without a more specific code."""
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(CompressdError, ValueError):
    """A bad recipe, a malformed upload or model file; the message names the field."""
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(CompressdError, TimeoutError):
    """The call, or a `wait(timeout=...)`, ran out of time."""
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(CompressdError, LookupError):
    """An unknown model, dataset, job or artifact id (or another tenant's)."""
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CompressdError):
    """The object (e.g. a tenant) exists already."""
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(CompressdError, PermissionError):
    """The key's role may not make this call (e.g. a viewer cancelling a job)."""
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(CompressdError):
    """A size limit or tenant quota was hit."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(CompressdError):
    """An illegal state change (e.g. cancelling a finished job)."""
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(CompressdError):
    """The operation was aborted."""
    code = grpc.StatusCode.ABORTED


class OutOfRange(CompressdError):
    """E.g. a download offset past the end of the artifact."""
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(CompressdError):
    """The server does not implement the method."""
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CompressdError):
    """An internal error of the server."""
    code = grpc.StatusCode.INTERNAL


class Unavailable(CompressdError, ConnectionError):
    """The server is unreachable or shutting down (retry later)."""
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(CompressdError):
    """Stored or downloaded bytes do not match their sha256."""
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(CompressdError):
    """No key, or an unknown, revoked or expired one."""
    code = grpc.StatusCode.UNAUTHENTICATED


class ChecksumMismatch(DataLoss):
    """A downloaded file's size or sha256 differs from what the job recorded."""


_BY_CODE: Dict[grpc.StatusCode, Type[CompressdError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
                Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated)
}


def error_for(code: grpc.StatusCode, message: str) -> CompressdError:
    """The exception for a status code (CompressdError itself for codes without a class)."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else CompressdError(message, code)


def from_rpc_error(error: grpc.RpcError) -> CompressdError:
    """Converts a grpc.RpcError (a failed call) into its CompressdError."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "")
