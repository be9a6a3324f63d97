"""The generated protobuf and gRPC modules (built from proto/ by setup.py).

Importing this module fails with a clear message when the package was not
built (e.g. imported straight from a source checkout without `pip install`).
"""
from __future__ import annotations

from pathlib import Path

if not (Path(__file__).parent / "_gen" / "compressd" / "v1" / "compressd_pb2.py").is_file():
    raise ImportError(
        "compressd_client: the generated gRPC stubs are missing; install the package "
        "(pip install ./clients/python) so its build step generates them from proto/")

from ._gen.compressd.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from ._gen.compressd.v1 import compressd_pb2, compressd_pb2_grpc  # noqa: E402
from ._gen.compressd.v1 import recipe_pb2  # noqa: E402

__all__ = ["admin_pb2", "admin_pb2_grpc", "compressd_pb2", "compressd_pb2_grpc", "recipe_pb2"]
