"""Connecting: the API key (same precedence as compressctl), the interceptor
that sends it on every call, TLS, and the channel target."""
from __future__ import annotations

import collections
import ipaddress
import json
import os
import stat
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import grpc

from .errors import FailedPrecondition, InvalidArgument

PathLike = Union[str, "os.PathLike[str]"]

# compressctl's limit on one received message (a Job with a long summary).
MAX_RECEIVE_BYTES = 64 << 20
_CHANNEL_OPTIONS: List[Tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    # Reconnect quickly after a server restart (a watch resumes sooner).
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def _read_key_file(what: str, path: PathLike) -> str:
    """The key in `path`, refused (like compressctl) when group or others may read it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        mode = os.stat(path).st_mode
    except OSError as error:
        raise InvalidArgument(f"{what}: {path}: {error.strerror}") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise FailedPrecondition(f"{what}: {path} is readable by group or others; chmod 600 it")
    return text.strip()


def load_api_key(key: Optional[str] = None, key_file: Optional[PathLike] = None) -> str:
    """The API key to send: `key`, else the content of `key_file`, else
    $COMPRESSD_KEY, else the file named by $COMPRESSD_KEY_FILE; "" when none."""
    if key:
        return key.strip()
    if key_file:
        return _read_key_file("key_file", key_file)
    env_key = os.environ.get("COMPRESSD_KEY", "")
    if env_key:
        return env_key.strip()
    env_file = os.environ.get("COMPRESSD_KEY_FILE", "")
    if env_file:
        return _read_key_file("$COMPRESSD_KEY_FILE", env_file)
    return ""


class _CallDetails(
        collections.namedtuple(
            "_CallDetails",
            ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    """A grpc.ClientCallDetails with the authorization header added."""


class AuthInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to the metadata of every call."""

    def __init__(self, key: str) -> None:
        self._header = ("authorization", f"Bearer {key}")

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = list(details.metadata or []) + [self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Callable, details: grpc.ClientCallDetails,
                              request: Any) -> Any:
        """Unary calls."""
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: grpc.ClientCallDetails,
                               request: Any) -> Any:
        """Server-streaming calls (WatchJob, DownloadArtifact)."""
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable, details: grpc.ClientCallDetails,
                               request_iterator: Any) -> Any:
        """Client-streaming calls (uploads)."""
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable, details: grpc.ClientCallDetails,
                                request_iterator: Any) -> Any:
        """Bidirectional calls (none today)."""
        return continuation(self._details(details), request_iterator)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def channel_target(server: str) -> Tuple[str, bool]:
    """The gRPC target for `server` and whether it names several addresses.

    "host:port" is used as is (as is a target with a scheme, e.g. "dns:///h:1");
    "a:1,b:2" (IP addresses, or localhost) becomes "ipv4:a:1,b:2" (or ipv6:),
    to be balanced round-robin."""
    server = server.strip()
    if "," not in server:
        return server, False
    addresses: Sequence[str] = [a.strip() for a in server.split(",") if a.strip()]
    hosts = [a.rsplit(":", 1)[0] for a in addresses]
    hosts = ["127.0.0.1" if h == "localhost" else h for h in hosts]
    if not all(_is_ip(h) for h in hosts) or any(":" not in a for a in addresses):
        raise InvalidArgument(
            f"server {server!r}: a list must be IP:PORT addresses (use one dns:/// name otherwise)")
    ports = [a.rsplit(":", 1)[1] for a in addresses]
    scheme = "ipv6" if all(h.startswith("[") for h in hosts) else "ipv4"
    if scheme == "ipv4" and any(h.startswith("[") for h in hosts):
        raise InvalidArgument(f"server {server!r}: mixes IPv4 and IPv6 addresses")
    return f"{scheme}:" + ",".join(f"{h}:{p}" for h, p in zip(hosts, ports)), True


def open_channel(server: str, key: str, ca_cert: Optional[PathLike] = None) -> grpc.Channel:
    """A channel to `server` (see channel_target), TLS-verified against the PEM
    bundle `ca_cert` when given, sending `key` on every call when non-empty."""
    target, balanced = channel_target(server)
    options = list(_CHANNEL_OPTIONS)
    if balanced:
        options.append(("grpc.service_config", _ROUND_ROBIN))
    if ca_cert:
        try:
            pem = Path(ca_cert).read_bytes()
        except OSError as error:
            raise InvalidArgument(f"ca_cert: {ca_cert}: {error.strerror}") from error
        if b"-----BEGIN " not in pem:
            raise InvalidArgument(f"ca_cert: {ca_cert} is not a PEM file")
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(pem), options)
    else:
        channel = grpc.insecure_channel(target, options)
    if key:
        channel = grpc.intercept_channel(channel, AuthInterceptor(key))
    return channel
