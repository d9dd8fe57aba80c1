"""The sandbox's one fault and latency hook, shared by the S3, GCS and OCI endpoints.

A :class:`FaultPlan` says what to inject: a fixed latency per request, and at a ``rate`` (0..1) one of
``kinds``, drawn from a seeded RNG so that the same sequence of requests always gets the same decisions:

- ``500``, ``503-slowdown``, ``429``: answer that status (S3: ``InternalError``, ``SlowDown``) without doing
  the operation;
- ``501``: answer 501 Not Implemented (S3: ``NotImplemented``) without doing the operation: a 5xx that
  migrator does not retry (see ``migrator/stores/errors.py``);
- ``reset-before``: reset the connection (TCP RST) without doing the operation;
- ``reset-after``: do the operation, then reset the connection instead of answering;
- ``timeout``: hold the request for ``timeout_ms`` (longer than the client's read timeout), then reset it
  without doing the operation;
- ``truncate`` (responses that carry object bytes): announce the full Content-Length, send a strict prefix of
  the body, then close the connection;
- ``flip-get`` (responses that carry object bytes): flip one bit of the body; headers are unchanged;
- ``flip-put`` (requests that carry object bytes): flip one bit of the body before the endpoint sees it, as a
  corrupting network would, so checksum validation applies to the flipped bytes.

``operations`` (optional) limits both latency and faults to the named operations (each endpoint's own names:
S3 uses API names such as ``GetObject``; see each endpoint's docstring). Empty means every operation.

The API an endpoint uses (one :class:`FaultInjector` per endpoint process)::

    injector = FaultInjector("gcs")
    # the unsigned control path, GET or POST /_emulator/faults (CONTROL_PATH):
    status, payload = injector.control(method, body)          # payload is a JSON-able dict
    # per request, before doing anything else (it sleeps the latency, and the timeout's hold):
    action = injector.before(op, data_in=is_upload, data_out=is_object_read)
    if action.drop_before: abort_connection(sock); return     # reset-before, timeout
    if action.status:      answer action.status in the endpoint's error dialect; return
    body = action.request_body(body)                           # flip-put
    ... do the operation ...
    if action.drop_after:  abort_connection(sock); return     # reset-after
    out = action.response_body(out)                            # flip-get, truncate (a strict prefix)
    send headers with the ORIGINAL Content-Length, then ``out``;
    if action.close_after: close the connection (truncate)

``injector.requests()`` counts every request that went through ``before`` by operation, and
``injector.snapshot()`` is what ``GET /_emulator/faults`` returns. ``injector.reset()`` clears the plan and
the counts. Tests and benchmarks use :func:`set_faults` / :func:`get_faults` / :func:`clear_faults`, which
talk to loopback endpoints only.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import struct
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.endpoints import require_loopback
from migrator.errors import InputError, SandboxError

CONTROL_PATH = "/_emulator/faults"

FAULT_KINDS: frozenset[str] = frozenset({
    "500", "501", "503-slowdown", "429", "reset-before", "reset-after", "timeout", "truncate", "flip-get",
    "flip-put",
})
ERROR_KINDS: Mapping[str, int] = {"500": 500, "501": 501, "503-slowdown": 503, "429": 429}
_DATA_OUT_KINDS = frozenset({"truncate", "flip-get"})
_DATA_IN_KINDS = frozenset({"flip-put"})
MAX_LATENCY_MS = 10_000.0
MAX_TIMEOUT_MS = 30_000.0
DEFAULT_TIMEOUT_MS = 2_000.0


@dataclass(frozen=True)
class FaultPlan:
    """What to inject. The default plan injects nothing."""

    latency_ms: float = 0.0
    rate: float = 0.0
    kinds: frozenset[str] = frozenset()
    seed: int = 0
    operations: frozenset[str] = frozenset()  # empty: every operation
    timeout_ms: float = DEFAULT_TIMEOUT_MS  # how long a "timeout" holds the request

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - FAULT_KINDS
        if unknown:
            raise InputError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}",
                             field="kinds")
        if not 0.0 <= self.rate <= 1.0:
            raise InputError("rate must be between 0 and 1", field="rate")
        if not 0.0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise InputError(f"latency_ms must be between 0 and {MAX_LATENCY_MS:.0f}", field="latency_ms")
        if not 0.0 <= self.timeout_ms <= MAX_TIMEOUT_MS:
            raise InputError(f"timeout_ms must be between 0 and {MAX_TIMEOUT_MS:.0f}", field="timeout_ms")
        if self.rate > 0 and not self.kinds:
            raise InputError("a rate above 0 needs at least one kind", field="kinds")

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or (self.rate > 0 and bool(self.kinds))

    def applies_to(self, op: str) -> bool:
        return not self.operations or op in self.operations

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FaultPlan:
        """Parse the control path's JSON; ``None`` or ``{}`` is the empty plan."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError("a fault plan is a JSON object")
        known = {"latency_ms", "rate", "kinds", "seed", "operations", "timeout_ms"}
        extra = set(data) - known
        if extra:
            raise InputError(f"unknown fault plan fields {sorted(extra)}")
        try:
            return cls(latency_ms=float(data.get("latency_ms", 0.0)), rate=float(data.get("rate", 0.0)),
                       kinds=frozenset(_strings(data.get("kinds", ()), "kinds")),
                       seed=int(data.get("seed", 0)),
                       operations=frozenset(_strings(data.get("operations", ()), "operations")),
                       timeout_ms=float(data.get("timeout_ms", DEFAULT_TIMEOUT_MS)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad fault plan: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "rate": self.rate, "kinds": sorted(self.kinds), "seed": self.seed,
                "operations": sorted(self.operations), "timeout_ms": self.timeout_ms}


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InputError(f"{name} must be a list of strings", field=name)
    items = list(value)
    if not all(isinstance(v, str) for v in items):
        raise InputError(f"{name} must be a list of strings", field=name)
    return items


@dataclass(frozen=True)
class Action:
    """What to do with one request. ``kind`` is None when nothing is injected (latency may still apply)."""

    kind: str | None = None
    salt: int = 0  # picks the flipped bit or the truncation point, from the plan's RNG

    @property
    def status(self) -> int | None:
        """500, 501, 503 or 429 to answer instead of doing the operation; None otherwise."""
        return ERROR_KINDS.get(self.kind or "")

    @property
    def drop_before(self) -> bool:
        """Reset the connection without doing the operation (reset-before, and timeout after its hold)."""
        return self.kind in ("reset-before", "timeout")

    @property
    def drop_after(self) -> bool:
        """Do the operation, then reset the connection instead of answering."""
        return self.kind == "reset-after"

    @property
    def close_after(self) -> bool:
        """The response body was cut short: close the connection after writing it."""
        return self.kind == "truncate"

    def request_body(self, body: bytes) -> bytes:
        return flip_bit(body, self.salt) if self.kind == "flip-put" else body

    def response_body(self, body: bytes) -> bytes:
        if self.kind == "flip-get":
            return flip_bit(body, self.salt)
        if self.kind == "truncate":
            return body[: self.salt % len(body)] if body else body
        return body


PASS = Action()


def flip_bit(body: bytes, salt: int) -> bytes:
    """``body`` with exactly one bit changed (chosen by ``salt``); an empty body stays empty."""
    if not body:
        return body
    bit = salt % (len(body) * 8)
    out = bytearray(body)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@dataclass
class _Counts:
    requests: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)


class FaultInjector:
    """Thread-safe: decisions are drawn under a lock from the plan's seeded RNG, in arrival order."""

    def __init__(self, endpoint: str, *, sleep: Any = time.sleep) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random(0)
        self._counts = _Counts()
        self._sleep = sleep  # injectable so unit tests never sleep

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def configure(self, plan: FaultPlan | None) -> None:
        """Install ``plan`` (None: off). The RNG restarts from the plan's seed; counts of injections restart."""
        with self._lock:
            self._plan = plan or FaultPlan()
            self._rng = random.Random(self._plan.seed)
            self._counts.injected = {}

    def decide(self, op: str, *, data_in: bool = False, data_out: bool = False) -> Action:
        """Count the request and decide its fault, without sleeping."""
        with self._lock:
            self._counts.requests[op] = self._counts.requests.get(op, 0) + 1
            plan = self._plan
            if plan.rate <= 0 or not plan.applies_to(op):
                return PASS
            eligible = sorted(k for k in plan.kinds
                              if (k not in _DATA_OUT_KINDS or data_out) and (k not in _DATA_IN_KINDS or data_in))
            if not eligible or self._rng.random() >= plan.rate:
                return PASS
            kind = eligible[self._rng.randrange(len(eligible))]
            self._counts.injected[kind] = self._counts.injected.get(kind, 0) + 1
            return Action(kind, self._rng.getrandbits(32))

    def before(self, op: str, *, data_in: bool = False, data_out: bool = False) -> Action:
        """``decide``, then sleep the plan's latency (and a timeout's hold). Call first thing per request.

        ``data_in``: the request body is object bytes (flip-put may apply); ``data_out``: the response body
        is object bytes (flip-get and truncate may apply).
        """
        action = self.decide(op, data_in=data_in, data_out=data_out)
        plan = self._plan
        delay = plan.latency_ms if plan.applies_to(op) else 0.0
        if action.kind == "timeout":
            delay += plan.timeout_ms
        if delay > 0:
            self._sleep(delay / 1000.0)
        return action

    def requests(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.requests)

    def injected(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts.injected)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"endpoint": self.endpoint, "plan": self._plan.to_json(), "active": self._plan.active,
                    "injected": dict(self._counts.injected), "requests": dict(self._counts.requests)}

    def reset(self) -> None:
        """Plan off, all counts cleared (the endpoints' ``POST /_emulator/reset``)."""
        with self._lock:
            self._plan = FaultPlan()
            self._rng = random.Random(0)
            self._counts = _Counts()

    def control(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Serve ``CONTROL_PATH``: GET returns the snapshot; POST installs the JSON plan in ``body``."""
        if method == "GET":
            return 200, self.snapshot()
        if method != "POST":
            return 405, {"error": f"{method} not allowed on {CONTROL_PATH}"}
        try:
            data = json.loads(body) if body.strip() else None
            self.configure(FaultPlan.from_json(data))
        except ValueError as exc:
            return 400, {"error": f"bad JSON: {exc}"}
        except InputError as exc:
            return 400, {"error": exc.diagnostics()}
        return 200, self.snapshot()


def abort_connection(sock: socket.socket) -> None:
    """Reset ``sock`` (RST, not FIN) at once, even while the server's file objects still reference it.

    ``close()`` would wait for those file objects, so the descriptor is detached and closed directly; later
    reads and writes by the server on the socket object fail with OSError (EBADF), which servers must treat
    as a dropped connection.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        fd = sock.detach()
    except OSError:
        return
    if fd >= 0:
        socket.socket(fileno=fd).close()


# -------------------------------------------------------------------------------------- client helpers

def _control_url(endpoint_url: str) -> str:
    require_loopback(endpoint_url, "sandbox faults")
    if not endpoint_url.startswith(("http://", "https://")):
        raise InputError(f"sandbox faults: {endpoint_url!r} is not an http(s) URL")
    return endpoint_url.rstrip("/") + CONTROL_PATH


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def _opener(ca_file: str | None) -> urllib.request.OpenerDirector:
    if ca_file is None:
        return _OPENER
    context = ssl.create_default_context(cafile=ca_file)
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def _call(url: str, data: bytes | None, ca_file: str | None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",  # noqa: S310 - http(s) loopback, checked
                                 headers={"Content-Type": "application/json"})
    try:
        with _opener(ca_file).open(req, timeout=10) as resp:
            payload = json.loads(resp.read() or b"{}")
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise SandboxError(f"fault control at {url} failed: {exc}") from None
    if not isinstance(payload, dict):
        raise SandboxError(f"fault control at {url} answered {payload!r}")
    return payload


def set_faults(endpoint_url: str, plan: FaultPlan | None, *, ca_file: str | None = None) -> dict[str, Any]:
    """Install ``plan`` on one sandbox endpoint (None: faults off). Returns the endpoint's snapshot.
    ``ca_file``: what to trust over HTTPS (``SandboxState.ca_file``); None: this process's defaults."""
    body = json.dumps(plan.to_json() if plan is not None else {}).encode()
    return _call(_control_url(endpoint_url), body, ca_file)


def clear_faults(endpoint_url: str, *, ca_file: str | None = None) -> dict[str, Any]:
    return set_faults(endpoint_url, None, ca_file=ca_file)


def get_faults(endpoint_url: str, *, ca_file: str | None = None) -> dict[str, Any]:
    """The endpoint's plan, injected counts by kind and request counts by operation."""
    return _call(_control_url(endpoint_url), None, ca_file)
