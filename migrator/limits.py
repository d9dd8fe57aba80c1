"""Request and byte caps (rclone's ``--tpslimit`` and ``--bwlimit``): token buckets, and the gates that
acquire from several at once.

A cap is operational, never policy: it changes how fast a wave goes, not what it does or proves, so a state
folder does not bind it and a resume may run with other caps (``WaveSettings.binding`` leaves them out).

The pieces:

- ``Limiter``: anything with ``acquire(n)``, which blocks until ``n`` tokens are granted. ``TokenBucket`` is
  the one implementation in a process; ``UNLIMITED`` grants at once.
- ``TokenBucket(rate, burst)``: ``rate`` tokens a second, holding at most ``burst`` (default: one second's
  worth, at least ``min_burst``). ``acquire(n)`` *reserves* its tokens at once, letting the balance go
  negative, and then sleeps until the debt is paid. So a request above ``burst`` waits for its debt instead
  of waiting for a bucket that can never hold it (no deadlock), callers are served in the order they
  reserved (no starvation of large requests by small ones), and whatever ``acquire`` has returned by time
  ``t`` after the bucket was built is at most ``rate x t + burst`` tokens, whatever the number of threads.
- ``Gate``: several limiters that one ``acquire`` draws from, one after the other (a request to location
  ``dc`` draws from ``dc``'s bucket and from the wave's). ``Gate.join`` merges gates without drawing twice
  from a bucket they share (a copy's bytes count once against the wave, and once against each of its two
  locations).
- ``Rates``: one place's caps as settings resolve them (requests a second, bytes a second; None or 0 means
  unlimited). ``Caps``: a wave's buckets, built once from the wave's ``Rates`` and each location's: ONE
  wave-wide bucket of each kind, shared by every store of the registry, and one of each kind per location.
  ``caps.limits(location)`` is the ``StoreLimits`` (a requests gate and a bytes gate) a store is built with.

What is metered: every HTTP request an adapter sends (at its HTTP layer, so an SDK's own retries and a
resumable upload's chunks count too) takes one request token from its store's requests gate; every byte a
copy reads from its source takes a byte token from both locations' byte buckets and the wave's, in pieces of
at most ``READ_PIECE`` (1 MiB) so that no single acquire holds a bucket's whole burst for long.

Sharing a cap between N workers (a cluster; not built here). A wave's cap is global to the wave, so N
worker processes must not each get the whole rate. Two designs fit the ``Limiter`` protocol unchanged:

1. Leases: a coordinator (the process that hands out batches) owns the wave's true buckets and gives each
   live worker a lease of ``rate / N`` (burst ``burst / N``), renewed with its heartbeat; a worker's local
   ``TokenBucket`` runs at its lease. When a worker joins or its lease expires, the coordinator re-divides
   the rate among the live ones; leases are granted so that their sum never exceeds the rate (a new
   worker's share starts only once the others have renewed at the smaller share, or their leases ran
   out). Idle workers can hand back unused share on renewal so busy ones get more. No round trip per
   request; the bound holds to within one lease period.
2. A shared bucket in PostgreSQL (the wave's state database): one row per bucket (``tokens``, ``updated``),
   and an ``acquire`` that takes tokens in blocks (say a tenth of a second's worth) with one
   ``UPDATE ... SET tokens = least(burst, tokens + rate * (now() - updated)) - :block ... RETURNING`` and
   then serves the block locally. Exact, one query per block, and the database's clock is the one clock.

Either way the clock of record must be one clock (the coordinator's or the database's), never each
worker's own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from migrator.errors import InputError

__all__ = ["NO_LIMITS", "READ_PIECE", "UNLIMITED", "Caps", "Gate", "Limiter", "MiB", "Rates", "StoreLimits",
           "TokenBucket", "acquire_in_pieces"]

MiB = 1024 * 1024
READ_PIECE = MiB   # bytes one acquire takes at most (a read of more acquires in pieces)


@runtime_checkable
class Limiter(Protocol):
    """Grants tokens: ``acquire(n)`` returns once ``n`` tokens (n >= 0) are this caller's."""

    def acquire(self, n: float = 1) -> None: ...


class _Unlimited:
    """A limiter that grants at once."""

    def acquire(self, n: float = 1) -> None:
        if n < 0:
            raise ValueError(f"cannot acquire a negative number of tokens ({n})")

    def __repr__(self) -> str:
        return "UNLIMITED"


UNLIMITED: Limiter = _Unlimited()


def _check_rate(rate: float, what: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {rate!r}")
    return float(rate)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; thread-safe. ``clock`` and ``sleep`` are injectable
    (tests pass a fake clock whose ``sleep`` advances it).

    ``burst`` defaults to one second's worth, at least ``min_burst`` (1 for requests; pass 1 MiB for bytes,
    so that one ``READ_PIECE`` fits). The bucket starts full.
    """

    def __init__(self, rate: float, burst: float | None = None, *, min_burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 name: str = "") -> None:
        self.rate = _check_rate(rate, "rate")
        self.burst = _check_rate(burst, "burst") if burst is not None else max(self.rate, float(min_burst))
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def __repr__(self) -> str:
        return f"TokenBucket({self.name or '?'}: {self.rate:g}/s, burst {self.burst:g})"

    @property
    def tokens(self) -> float:
        """The balance now (negative while callers wait for their debt)."""
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, n: float) -> float:
        """Take ``n`` tokens now (the balance may go negative) and return the seconds until they are paid
        for: the caller may go ahead only after that long."""
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n < 0:
            raise ValueError(f"cannot acquire {n!r} tokens: want a finite number >= 0")
        with self._lock:
            self._refill()
            self._tokens -= n
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self, n: float = 1) -> None:
        """Block until ``n`` tokens are granted. ``n`` may exceed ``burst``: the caller then waits for the
        debt (``(n - balance) / rate``); later callers queue behind it."""
        wait = self.reserve(n)
        # Sleep outside the lock; sleep() may return early under a fake clock or a signal, so re-check the
        # clock until the debt this caller's reservation made is paid.
        deadline = self._clock() + wait
        while wait > 0:
            self._sleep(wait)
            wait = deadline - self._clock()


@dataclass(frozen=True)
class Gate:
    """Limiters one ``acquire`` draws from, in order (each one's bound holds on its own). Empty: unlimited."""

    limiters: tuple[Limiter, ...] = ()

    def acquire(self, n: float = 1) -> None:
        for limiter in self.limiters:
            limiter.acquire(n)

    def __bool__(self) -> bool:
        return bool(self.limiters)

    @classmethod
    def join(cls, *gates: Gate) -> Gate:
        """One gate drawing from every limiter of ``gates``, each once even when several gates share it."""
        seen: dict[int, Limiter] = {}
        for gate in gates:
            for limiter in gate.limiters:
                seen.setdefault(id(limiter), limiter)
        return cls(tuple(seen.values()))


def acquire_in_pieces(limiter: Limiter, n: int, piece: int = READ_PIECE) -> None:
    """``n`` tokens from ``limiter`` in acquires of at most ``piece``, so that concurrent callers interleave
    and no acquire asks for more than one piece (the bucket's burst stays the bound on a burst)."""
    while n > 0:
        take = min(n, piece)
        limiter.acquire(take)
        n -= take


@dataclass(frozen=True)
class StoreLimits:
    """What one store is metered by: one request token per HTTP request, one byte token per byte read."""

    requests: Gate = field(default_factory=Gate)
    bytes: Gate = field(default_factory=Gate)


NO_LIMITS = StoreLimits()


def _check_requests(value: float | None, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"want a number of requests a second (0: unlimited), got {value!r}", field=field)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"want a finite number of requests a second >= 0 (0: unlimited), got {value!r}",
                         field=field)


def _check_bytes(value: int | None, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"want a whole number of bytes a second (0: unlimited), got {value!r}", field=field)
    if value < 0:
        raise InputError(f"want bytes a second >= 0 (0: unlimited), got {value!r}", field=field)


@dataclass(frozen=True)
class Rates:
    """One place's caps (the wave's, or one location's). None or 0: unlimited. Checked on construction;
    ``where`` prefixes the field an error names (``transfer``, ``locations.dc``)."""

    requests_per_second: float | None = None
    bytes_per_second: int | None = None
    where: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        prefix = f"{self.where}." if self.where else ""
        _check_requests(self.requests_per_second, f"{prefix}requests_per_second")
        _check_bytes(self.bytes_per_second, f"{prefix}bytes_per_second")

    def __bool__(self) -> bool:
        return bool(self.requests_per_second) or bool(self.bytes_per_second)


def _bucket(rate: float | None, *, min_burst: float, clock: Callable[[], float],
            sleep: Callable[[float], None], name: str) -> tuple[Limiter, ...]:
    if not rate:   # None or 0: unlimited, no bucket at all
        return ()
    return (TokenBucket(rate, min_burst=min_burst, clock=clock, sleep=sleep, name=name),)


class Caps:
    """A wave's buckets: one wave-wide bucket per kind (requests, bytes) and one per kind per location.

    Built once per registry, so that every store of the wave shares the same wave-wide buckets; a location's
    store gets ``limits(name)``, a store of no named location (the environment's endpoints) ``limits(None)``:
    the wave's buckets only.
    """

    def __init__(self, wave: Rates = Rates(), locations: Mapping[str, Rates] | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.wave = wave
        self.locations = dict(locations or {})

        def buckets(rates: Rates, who: str) -> tuple[tuple[Limiter, ...], tuple[Limiter, ...]]:
            return (_bucket(rates.requests_per_second, min_burst=1, clock=clock, sleep=sleep,
                            name=f"{who} requests"),
                    _bucket(rates.bytes_per_second, min_burst=MiB, clock=clock, sleep=sleep, name=f"{who} bytes"))

        self._wave = buckets(wave, "wave")
        self._limits: dict[str | None, StoreLimits] = {None: self._store_limits(((), ()))}
        for name, rates in self.locations.items():
            self._limits[name] = self._store_limits(buckets(rates, f"location {name}"))

    def _store_limits(self, own: tuple[tuple[Limiter, ...], tuple[Limiter, ...]]) -> StoreLimits:
        # The location's own bucket first: while it holds a caller back, the caller does not hold wave tokens
        # that other locations' stores could use.
        if not (own[0] or own[1] or self._wave[0] or self._wave[1]):
            return NO_LIMITS
        return StoreLimits(requests=Gate(own[0] + self._wave[0]), bytes=Gate(own[1] + self._wave[1]))

    def limits(self, location: str | None = None) -> StoreLimits:
        """The limits of location ``location``'s store (None or unknown: the wave's buckets only)."""
        return self._limits.get(location, self._limits[None])

    def __bool__(self) -> bool:
        return any(self._limits[name] is not NO_LIMITS for name in self._limits)
