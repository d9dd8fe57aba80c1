"""What the sandbox's emulators share: the one error type, counters, the clock, the fault hook's plumbing.

Each emulator (``oci/``, ``gcs/``, ``s3/``) is split the same way: ``model`` holds the stored state,
``service`` the operations and their rules over it, ``http`` parses requests, calls the service and writes
answers, and ``server`` holds the server object tests start in-process and the process's ``main``. This
module is under all of them:

- :class:`ApiError` is the one error every emulator raises for a refused request: an HTTP status, the
  cloud's error code (OCI's and S3's ``code``, GCS's ``reason``), a message, and extra fields (S3 puts them in
  its XML error). It is the emulator's answer on the wire, not a migrator error (that hierarchy is
  :mod:`migrator.errors`): each emulator's ``http`` writes it as that cloud's error body.
- :class:`Counters` counts requests per operation and errors per code (``GET /_emulator/stats``).
- :class:`Clock` is real UTC time plus an offset that only tests move forward, so retention and expiry are
  tested without sleeping. It never goes back: a negative or non-finite advance is refused, reset keeps the
  offset, and the offset stays within ``MAX_CLOCK_AHEAD`` so that every time computed from it (a 100-year
  retention on top) stays representable. So the times an emulator hands out (GCS generations, creation
  and modification times) only grow over its life. It has no lock of its own: the service changes it
  under its lock.
- :class:`EmulatorService` bundles the lock, clock, counters and fault hook (:mod:`migrator.sandbox.faults`)
  with the control paths every emulator serves: stats, reset, clock and faults.
- :class:`EmulatorHandler` is the request handler's plumbing: body reading (chunked too), framed answers,
  connection resets, and what the fault hook does after the operation (reset, flip or cut the body, close).
- :class:`Emulator` is a :class:`~migrator.sandbox.serve.LoopbackServer` with the in-process test API.

The S3 endpoint is moto behind a WSGI layer: it shares the error type and the fault errors, not the rest
(moto keeps its state, and the fault hook counts its requests).
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from migrator.sandbox.faults import CONTROL_PATH as FAULTS_PATH
from migrator.sandbox.faults import Action, FaultInjector, abort_connection
from migrator.sandbox.serve import LoopbackServer

STATS_PATH = "/_emulator/stats"
RESET_PATH = "/_emulator/reset"
CLOCK_PATH = "/_emulator/clock"

MAX_CLOCK_AHEAD = timedelta(days=1000 * 366)   # leaves room for century-long retention on top

FaultErrors = Mapping[int, tuple[str, str]]   # injected status -> (code, message) in the cloud's words
Reply = tuple[int, dict[str, str], bytes, int]  # status, headers, body, Content-Length


class ApiError(Exception):
    """A refused request: ``status``, the cloud's error ``code``, ``message`` and extra ``fields``."""

    def __init__(self, status: int, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def fault_error(status: int, errors: FaultErrors) -> ApiError:
    """The error an injected 500, 503 or 429 answers, in the emulator's own codes and messages."""
    code, message = errors[status]
    return ApiError(status, code, message)


def iso_millis(ts: datetime) -> str:
    """RFC 3339 with milliseconds and ``Z``, as OCI and GCS write times."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class Counters:
    """Requests per operation and errors per code; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def count(self, op: str) -> None:
        with self._lock:
            self.requests[op] = self.requests.get(op, 0) + 1

    def count_error(self, code: str) -> None:
        with self._lock:
            self.errors[code] = self.errors.get(code, 0) + 1

    def stats(self) -> dict[str, Any]:
        """The body of ``GET /_emulator/stats``."""
        with self._lock:
            return {"requests": dict(self.requests), "errors": dict(self.errors),
                    "total": sum(self.requests.values())}

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.errors.clear()


class Clock:
    """Real UTC time plus ``offset``, which only grows; callers that move it hold their service's lock."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Forward by ``seconds``: ValueError for a negative or non-finite amount, or one past
        ``MAX_CLOCK_AHEAD`` in all (the clock is left as it was)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the clock only moves forward, by a finite number of seconds")
        if seconds > (MAX_CLOCK_AHEAD - self.offset).total_seconds():
            raise ValueError(f"the clock stays within {MAX_CLOCK_AHEAD.days} days of real time")
        self.offset += timedelta(seconds=seconds)


class EmulatorService:
    """The lock, clock, counters and fault hook of one emulator, and the control paths they serve.

    ``lock`` (re-entrant) guards the emulator's model; the HTTP side holds it too while it reads the model to
    render an answer. Subclasses add the model and the operations, and extend ``reset``.
    """

    def __init__(self, endpoint: str) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.counters = Counters()
        self.faults = FaultInjector(endpoint)

    def now(self) -> datetime:
        """The emulator's clock: the times it stores and the rules that expire run on it."""
        return self.clock.now()

    def advance_clock(self, seconds: float) -> None:
        """Move the clock forward (ValueError when :meth:`Clock.advance` refuses)."""
        with self.lock:
            self.clock.advance(seconds)

    def count(self, op: str) -> None:
        self.counters.count(op)

    def count_error(self, code: str) -> None:
        self.counters.count_error(code)

    def stats(self) -> dict[str, Any]:
        return self.counters.stats()

    def reset(self) -> None:
        """Counts and the fault plan; subclasses clear their model first. The clock is kept: it never
        goes back, so nothing a client saw before the reset is later than what it sees after."""
        self.counters.reset()
        self.faults.reset()

    def control(self, method: str, path: str, query: Mapping[str, str], body: bytes,
                invalid: str) -> tuple[int, Any] | None:
        """Serve the control paths every emulator has: ``(status, JSON value or None)``, or None when
        ``path`` is none of them. ``invalid`` is the emulator's code for a bad parameter."""
        if method == "GET" and path == STATS_PATH:
            return 200, self.stats()
        if method == "POST" and path == RESET_PATH:
            self.reset()
            return 204, None
        if method == "POST" and path == CLOCK_PATH:
            try:
                seconds = float(query.get("advance", ""))
            except ValueError:
                raise ApiError(400, invalid, "advance must be a number of seconds") from None
            try:
                self.advance_clock(seconds)
            except ValueError as exc:
                raise ApiError(400, invalid, str(exc)) from None
            return 200, {"now": iso_millis(self.now())}
        if path == FAULTS_PATH:
            return self.faults.control(method, body)
        return None


class EmulatorHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive plumbing shared by the emulators' request handlers."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sys_version = ""
    timeout = 120  # idle keep-alive connections end instead of holding a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks run thousands of requests

    def version_string(self) -> str:
        return self.server_version

    def read_body(self) -> bytes:
        """The request body, Content-Length or chunked framing."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def abort(self) -> None:
        """Reset the connection (an injected fault): no answer, and nothing more on this socket."""
        abort_connection(self.connection)
        self.close_connection = True

    def write_answer(self, status: int, headers: dict[str, str], body: bytes, length: int) -> None:
        """Status, headers and ``Content-Length: length``, then ``body`` (none for HEAD)."""
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def answer(self, reply: Reply | None, action: Action | None, *, data_out: bool) -> None:
        """Write ``reply`` as the fault hook says once the operation is done: reset instead of answering,
        flip or cut an object body (``data_out``) under its original Content-Length, close after a cut."""
        if action is not None and action.drop_after:
            self.abort()
            return
        if reply is None:
            self.close_connection = True
            return
        status, headers, out, length = reply
        if action is not None and data_out and status in (200, 206):
            out = action.response_body(out)   # flipped or truncated; Content-Length stays the original
        try:
            self.write_answer(status, headers, out, length)
        except OSError:
            self.close_connection = True
            return
        if action is not None and action.close_after:
            self.close_connection = True


class Emulator(LoopbackServer):
    """An emulator on loopback with its in-process test API; ``start()`` returns once it is listening."""

    _service: EmulatorService

    def stats(self) -> dict[str, Any]:
        return self._service.stats()

    def reset(self) -> None:
        self._service.reset()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (retention and expiry) without sleeping; ValueError for a
        negative or non-finite amount, or one too far (see :class:`Clock`)."""
        self._service.advance_clock(seconds)

    def now(self) -> datetime:
        return self._service.now()

    @property
    def faults(self) -> FaultInjector:
        """The endpoint's fault hook (``configure(FaultPlan(...))``); also at ``/_emulator/faults``."""
        return self._service.faults
