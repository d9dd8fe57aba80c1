"""The S3 endpoint served: moto's app behind the layer, on a threaded werkzeug server that keeps connections
alive, and the process entry point.

``build_app`` patches moto's models (:mod:`migrator.sandbox.s3.model`, once per process) and puts
``S3Layer`` (:mod:`migrator.sandbox.s3.http`) in front of moto's WSGI app. ``make_server`` serves it on
loopback only; ``main`` is what ``python -m migrator.sandbox.s3_server`` runs (``migrator sandbox up`` starts
it so): it writes the bound port to ``--ready-file`` once listening and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import socket
import ssl
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from migrator.endpoints import is_loopback_host
from migrator.sandbox.faults import FaultInjector
from migrator.sandbox.s3.http import DEFAULT_OWNER, S3Layer
from migrator.sandbox.s3.model import apply_patches
from migrator.sandbox.serve import TlsServerMixin, add_tls_arguments, tls_from_arguments, write_ready

# ------------------------------------------------------------------------------------- server

def build_app(faults: FaultInjector | None = None, owner: str = DEFAULT_OWNER, access_key: str | None = None,
              path_only: bool = False) -> S3Layer:
    """moto's WSGI app behind the layer, its buckets owned by account ``owner``; with ``access_key``, only
    requests signed with that key id are served; ``path_only``: no virtual-hosted buckets. moto's patches
    are process-wide and applied once."""
    apply_patches()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return S3Layer(DomainDispatcherApplication(create_backend_app), faults, owner, access_key, path_only)


# ------------------------------------------------------------------------------------- serving
#
# werkzeug's handler sends "Connection: close" on every answer because http.server cannot find the end of a
# request body the app left unread. Real S3 keeps connections alive, and closing costs each client a TCP
# connect per request (and the server a thread per request). The handler below keeps HTTP/1.1 connections
# open when the next request line can be found for certain: the request body is read through a counting
# wrapper and drained to its Content-Length, and every answer is framed (Content-Length or chunked, nothing
# for HEAD/1xx/204/304). Anything else closes the connection as before: a chunked or malformed request
# body, an answer that cannot be framed, a client that asked for close, an error or a dropped connection
# mid-answer, and an answer body shorter than its Content-Length (the truncate fault: the client must see
# a short read, not wait for bytes that never come).

IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection may idle (or one read or write may stall)
_SMALL = 64 * 1024  # join pieces below this size into one send; larger pieces are not copied
_DRAIN_CHUNK = 1024 * 1024


class _Body(io.RawIOBase):
    """``wsgi.input``: at most Content-Length bytes of the connection, counted so the rest can be drained.

    A client that closes before sending all it announced is a dropped connection (ConnectionError), never a
    short body that the app might store.
    """

    def __init__(self, stream: Any, length: int) -> None:
        super().__init__()
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def _take(self, data: bytes, complete: bool) -> bytes:
        if not complete:
            raise ConnectionAbortedError("the client closed the connection inside the request body")
        self.remaining -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if not size:
            return b""
        data = self._stream.read(size)
        return self._take(data, len(data) == size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readline(self, size: int | None = -1) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if not size:
            return b""
        line = self._stream.readline(size)
        return self._take(line, len(line) == size or line.endswith(b"\n"))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read and discard what the app left unread, so the next request line is next on the wire."""
        while self.remaining:
            self.read(min(self.remaining, _DRAIN_CHUNK))


class _Answer:
    """One response: WSGI ``start_response``/``write`` with keep-alive framing."""

    def __init__(self, handler: _KeepAliveHandler, keep_alive: bool) -> None:
        self.handler = handler
        self.keep_alive = keep_alive  # False: the request itself rules out another request on this connection
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.chunked = False
        self.bodyless = False
        self.length: int | None = None  # the declared Content-Length
        self.sent = 0

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice")
        self.status, self.headers = status, list(headers)
        return self.write

    def _head(self) -> bytes:
        handler = self.handler
        if self.status is None:  # an application bug; raised as wsgiref and start_response above do
            raise AssertionError("write() before start_response")
        code_text, _, reason = self.status.partition(" ")
        code = int(code_text)
        names = {name.lower(): value for name, value in self.headers}
        self.bodyless = handler.command == "HEAD" or 100 <= code < 200 or code in (204, 304)
        framed = self.bodyless
        if "content-length" in names:
            self.length, framed = int(names["content-length"]), True
        elif not self.bodyless and "transfer-encoding" not in names and handler.request_version == "HTTP/1.1":
            self.chunked = framed = True
        keep = (self.keep_alive and framed and not handler.close_connection
                and names.get("connection", "").lower() != "close" and not handler.server.closing)
        lines = [f"{handler.protocol_version} {code} {reason}"]
        if "server" not in names:
            lines.append(f"Server: {handler.version_string()}")
        if "date" not in names:
            lines.append(f"Date: {handler.date_time_string()}")
        lines.extend(f"{name}: {value}" for name, value in self.headers if name.lower() != "connection")
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
        if not keep:
            handler.close_connection = True
            lines.append("Connection: close")
        elif handler.request_version != "HTTP/1.1":
            lines.append("Connection: keep-alive")  # an HTTP/1.0 client that asked for it
        self.started = True
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        head = b"" if self.started else self._head()
        if self.bodyless:
            data = b""
        elif self.length is not None and self.sent + len(data) > self.length:
            data = data[: self.length - self.sent]  # never send past the frame; the connection cannot be reused
            self.handler.close_connection = True
        self.sent += len(data)
        if self.chunked and data:
            self._send(head, b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self._send(head, data)

    def finish(self) -> None:
        if not self.started:
            self.write(b"")
        if self.chunked:
            self._send(b"0\r\n\r\n")
        elif self.length is not None and not self.bodyless and self.sent < self.length:
            self.handler.close_connection = True  # a cut body (truncate fault): the client must see it end

    def _send(self, *parts: bytes) -> None:
        if sum(map(len, parts)) <= _SMALL:
            parts = (b"".join(parts),)
        for part in parts:
            if part:
                self.handler.wfile.write(part)


class _KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's WSGI handler with HTTP/1.1 keep-alive (see the comment above)."""

    server: S3Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, idle=True)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        self.server.track(self.connection, idle=False)  # a request line arrived: no longer idle
        return super().parse_request()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if not self.close_connection:
            self.server.track(self.connection, idle=True)

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:
            if self.connection.fileno() != -1:
                raise  # a real error; -1 means the fault hook reset this connection on purpose

    def log_error(self, format: str, *args: Any) -> None:
        if not format.startswith("Request timed out"):  # an idle keep-alive connection expiring is normal
            super().log_error(format, *args)

    def _request_body(self, environ: dict[str, Any]) -> _Body | None:
        """The counted body, or None when its end cannot be found for certain (the connection then closes)."""
        if "HTTP_TRANSFER_ENCODING" in environ or len(self.headers.get_all("Content-Length") or ()) > 1:
            return None  # werkzeug decodes chunked bodies; their end (and trailers) is not ours to find
        text = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not text.isdigit():
            return None
        body = _Body(self.rfile, int(text))
        environ["wsgi.input"] = body
        return body

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body = self._request_body(environ)
        answer = _Answer(self, keep_alive=body is not None)
        try:
            result = self.server.app(environ, answer.start_response)
            try:
                for data in result:
                    answer.write(data)
                answer.finish()
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if body is not None and not self.close_connection:
                body.drain()
        except (ConnectionError, TimeoutError) as exc:
            self.close_connection = True
            self.connection_dropped(exc, environ)
        except Exception:  # noqa: BLE001 - the app's bug: log it, answer 500 if nothing was sent, close
            self.close_connection = True
            if self.connection.fileno() == -1:
                return  # the fault hook reset the connection
            self.server.log("error", f"Error on request:\n{traceback.format_exc()}")
            if not answer.started:
                error = b"Internal Server Error"
                answer = _Answer(self, keep_alive=False)
                answer.start_response("500 INTERNAL SERVER ERROR", [
                    ("Content-Type", "text/plain"), ("Content-Length", str(len(error)))])
                with contextlib.suppress(OSError):
                    answer.write(error)


class S3Server(TlsServerMixin, ThreadedWSGIServer):
    """The threaded werkzeug server with keep-alive connections.

    ``accepted`` counts TCP connections accepted. ``shutdown()`` and ``server_close()`` also end the
    connections that sit idle between requests, so a stopped server answers nothing on old connections.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, app: Any, handler: type[WSGIRequestHandler]) -> None:
        super().__init__(host, port, app, handler)
        self.accepted = 0
        self.closing = False
        self._lock = threading.Lock()
        self._idle: dict[socket.socket, bool] = {}  # open connection -> waiting for a request line

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self.accepted += 1
        super().process_request(request, client_address)

    def track(self, conn: socket.socket, *, idle: bool) -> None:
        with self._lock:
            self._idle[conn] = idle
            closing = self.closing
        if closing and idle:
            _end(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._idle.pop(conn, None)

    def _end_idle(self) -> None:
        with self._lock:
            self.closing = True
            idle = [conn for conn, waiting in self._idle.items() if waiting]
        for conn in idle:
            _end(conn)

    def shutdown(self) -> None:
        super().shutdown()
        self._end_idle()

    def server_close(self) -> None:
        self._end_idle()
        super().server_close()


def _end(conn: socket.socket) -> None:
    """Wake the handler blocked reading the next request line: it sees end of stream and closes."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


def make_server(host: str = "127.0.0.1", port: int = 0, app: S3Layer | None = None,
                tls: ssl.SSLContext | None = None) -> S3Server:
    """A threaded werkzeug server for the layer, loopback only (``serve_forever``/``shutdown``), keep-alive;
    HTTPS with ``tls``."""
    if not is_loopback_host(host):
        raise ValueError(f"the S3 endpoint listens on loopback only, not {host!r}")
    import logging

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Handler(_KeepAliveHandler, MotoRequestHandler):  # moto's make_environ keeps underscored headers
        pass

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request log lines
    server = S3Server(host, port, app or build_app(), Handler)
    server.ssl_context = tls  # after werkzeug's __init__, which would wrap the listening socket instead
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrator-sandbox-s3")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--owner-id", default=DEFAULT_OWNER,
                        help="the account id owning every bucket (checked against ExpectedBucketOwner)")
    parser.add_argument("--access-key", help="the only access key id served (another: 403 InvalidAccessKeyId)")
    parser.add_argument("--path-only", action="store_true", help="path-style addressing only")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        print(f"refusing non-loopback host {args.host}", file=sys.stderr)
        return 2
    app = build_app(owner=args.owner_id, access_key=args.access_key, path_only=args.path_only)
    server = make_server(args.host, args.port, app, tls=tls_from_arguments(parser, args))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    write_ready(args.ready_file, int(server.server_address[1]))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0

