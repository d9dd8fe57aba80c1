"""What every sandbox emulator shares: a threaded HTTP(S) server on loopback, its lifecycle, and the
process entry point that reports readiness and stops on SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Self

from migrator.endpoints import is_loopback_host

HANDSHAKE_TIMEOUT = 30.0
# An endpoint process exits so when a package of the [sandbox] extra is missing (sysexits' EX_CONFIG), so
# that `sandbox up` can name the extra rather than "exited".
EXIT_MISSING_EXTRA = 78
SANDBOX_EXTRA = "pip install 'provable-migrator[sandbox]'"


class TlsServerMixin(socketserver.BaseServer):
    """HTTPS for a threaded socketserver: each connection's TLS handshake runs in that connection's own
    thread, never in the accepting one, so a slow or silent client holds up nobody else.

    ``ssl_context`` None serves plain HTTP (werkzeug reads the same attribute to say ``https``).
    """

    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that speaks plain HTTP or does not trust the CA: its connection ends here
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)
            tls.close()


class _Server(TlsServerMixin, ThreadingHTTPServer):
    daemon_threads = True


class LoopbackServer:
    """A threaded HTTP server bound to loopback, HTTPS with ``tls``. ``start()`` returns once it is listening."""

    name = "emulator"

    def _bind(self, host: str, port: int, handler: type[BaseHTTPRequestHandler],
              tls: ssl.SSLContext | None = None) -> None:
        if not is_loopback_host(host):
            raise ValueError(f"the {self.name} listens on loopback only, not {host!r}")
        self._server = _Server((host, port), handler)
        self._server.ssl_context = tls
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "http" if self._server.ssl_context is None else "https"
        return f"{scheme}://{self.host}:{self.port}"

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


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``/``--tls-key``: serve HTTPS with that certificate chain and key (both or neither)."""
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")


def tls_from_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ssl.SSLContext | None:
    cert, key = args.tls_cert, args.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        parser.error("--tls-cert and --tls-key go together")
    return server_context(cert, key)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """An endpoint's TLS context: TLS 1.2 or later, this certificate chain and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
