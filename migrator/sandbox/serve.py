"""What every sandbox emulator shares: a threaded HTTP server on loopback, its lifecycle, and the
process entry point that reports readiness and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Self

from migrator.endpoints import is_loopback_host


class LoopbackServer:
    """A threaded HTTP server bound to loopback. ``start()`` returns once it is listening."""

    name = "emulator"

    def _bind(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"the {self.name} listens on loopback only, not {host!r}")
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name=self.name,
                                            kwargs={"poll_interval": 0.1}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_until_signalled(self, ready_file: Path | None) -> int:
        """The process entry point: write the bound port to ``ready_file`` (atomically) once listening,
        serve until SIGTERM or SIGINT, exit 0."""

        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self._server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if ready_file is not None:
            write_ready(ready_file, self.port)
        try:
            self.serve_forever()
        finally:
            self._server.server_close()
        return 0


def write_ready(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n", encoding="ascii")
    os.replace(tmp, path)
