"""The sandbox's S3 endpoint: moto's WSGI app in a process of its own, with a dispatch speed-up.

moto's server spends about half its CPU listing its own package on every request
(``backends.list_of_moto_modules``); the list never changes while the process runs, so it is cached.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from migrator.endpoints import is_loopback_host


def _cache_module_list() -> None:
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())

    @functools.wraps(backends.list_of_moto_modules)
    def cached() -> Iterable[str]:
        return listed

    backends.list_of_moto_modules = cached


def _fast_version_listing() -> None:
    """moto's ListObjectVersions deep-copies every version in the bucket, data included, on every call
    (~50 ms at 300 keys, and 500s when a put races the copy), then filters by prefix. Its only use of
    deepcopy copies each key's list of versions to set ``is_latest``: a shallow copy of the versions
    does the same job, and keys outside the requested prefix (dropped later anyway) are skipped."""
    import copy as std_copy
    import threading
    import types

    from moto.s3 import models

    local = threading.local()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, list):
            prefix = getattr(local, "prefix", "")
            if value and prefix and not str(getattr(value[0], "name", "")).startswith(prefix):
                return []
            return [std_copy.copy(v) for v in value]
        return std_copy.deepcopy(value, memo)

    models.copy = types.SimpleNamespace(copy=std_copy.copy, deepcopy=deepcopy)  # type: ignore[assignment,attr-defined]
    original = models.S3Backend.list_object_versions

    @functools.wraps(original)
    def list_object_versions(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        local.prefix = kwargs.get("prefix") or ""
        try:
            return original(self, bucket_name, *args, **kwargs)
        finally:
            local.prefix = ""

    models.S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]


def build_app() -> Any:
    _cache_module_list()
    _fast_version_listing()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def write_ready(path: Path, port: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(port))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrator-sandbox-s3")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"refusing non-loopback host {args.host}", file=sys.stderr)
        return 2
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class Handler(MotoRequestHandler):
        disable_nagle_algorithm = True

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request log lines
    server = make_server(args.host, args.port, build_app(), threaded=True, request_handler=Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    write_ready(args.ready_file, int(server.server_address[1]))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
