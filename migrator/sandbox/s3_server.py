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


def build_app() -> Any:
    _cache_module_list()
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
