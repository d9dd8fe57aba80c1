"""The GCS emulator on loopback: the in-process object tests start, and the process entry point.

``GcsEmulator`` binds one service (:mod:`migrator.sandbox.gcs.service`) to the router and handler
(:mod:`migrator.sandbox.gcs.http`). ``main`` is what ``python -m migrator.sandbox.gcs_emulator`` runs
(``migrator sandbox up`` starts it so): it refuses a non-loopback host, writes the bound port to
``--ready-file`` once listening, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

from migrator.endpoints import is_loopback_host
from migrator.sandbox.base import Emulator
from migrator.sandbox.gcs.http import GcsHandler, Router
from migrator.sandbox.gcs.service import PROJECT_NUMBER, GcsService
from migrator.sandbox.serve import add_tls_arguments, tls_from_arguments


class GcsEmulator(Emulator):
    """The GCS JSON API emulator on loopback. ``start()`` returns once it is listening; ``url`` is its endpoint."""

    name = "gcs-emulator"
    _service: GcsService

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None,
                 project_number: str = PROJECT_NUMBER) -> None:
        self._service = GcsService(project_number)
        handler = type("_BoundHandler", (GcsHandler,), {"router": Router(self._service)})
        self._bind(host, port, handler, tls)

    def iter_generations(self, bucket: str) -> Iterator[tuple[str, str, int]]:
        """(state, name, generation) of every stored generation, for tests that inspect the server side."""
        with self._service.lock:
            b = self._service.buckets.get(bucket)
            rows: list[tuple[str, str, int]] = []
            if b is not None:
                rows += [("live", g.name, g.generation) for g in b.live.values()]
                rows += [("noncurrent", g.name, g.generation) for gs in b.noncurrent.values() for g in gs]
                rows += [("soft-deleted", g.name, g.generation) for gs in b.soft.values() for g in gs]
        yield from sorted(rows, key=lambda r: (r[1], r[2]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrator.sandbox.gcs_emulator",
                                     description="In-memory GCS JSON API emulator (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, help="the bound port is written here once listening")
    parser.add_argument("--project-number", default=PROJECT_NUMBER, help="the projectNumber of every bucket")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.exit(2, f"refusing to listen on non-loopback host {args.host!r}\n")
    emulator = GcsEmulator(host=args.host, port=args.port, tls=tls_from_arguments(parser, args),
                           project_number=args.project_number)

    return emulator.run_until_signalled(args.ready_file)
