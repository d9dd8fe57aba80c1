"""A wave's live figures: rows by state and by location, bytes verified, rates and an ETA.

The wave tells ``WaveProgress`` each row as it reaches it (``begin``, with the state the journal holds) and
each transition once it is journaled (``moved``). Counts start from the journal's own counts, so a resumed
wave shows what earlier runs did; rates and the ETA are this run's alone (a window of recent completions),
so a resume does not look faster than it is. Only rows in flight are held per row: memory stays bounded by
the two batches a wave keeps in flight.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.records import TERMINAL, State

__all__ = ["LocationFigures", "Snapshot", "WaveProgress"]

WINDOW_SECONDS = 60.0   # rates over the last minute: steady enough to read, recent enough to follow a cap


@dataclass
class LocationFigures:
    rows: int = 0                 # rows whose source is in this location (the manifest's count)
    reached: int = 0              # rows this run has reached so far
    by_state: Counter[str] = field(default_factory=Counter)
    bytes: int = 0                # verified bytes of the rows reached

    def as_record(self) -> dict[str, Any]:
        return {"rows": self.rows, "reached": self.reached, "bytes": self.bytes,
                "by_state": dict(sorted((k, v) for k, v in self.by_state.items() if v))}


@dataclass(frozen=True)
class Snapshot:
    rows: int
    done: int                      # rows in a final state (removed, held, failed, out of scope)
    by_state: Mapping[str, int]
    bytes_done: int                # every verified version's bytes, earlier runs' included
    bytes_total: int | None        # the sizes the manifest declares, when it declares them
    bytes_this_run: int
    bytes_per_second: float
    objects_per_second: float
    eta_seconds: float | None
    elapsed_seconds: float
    by_location: Mapping[str, LocationFigures]

    def as_record(self) -> dict[str, Any]:
        return {"rows": self.rows, "done": self.done, "by_state": dict(sorted(self.by_state.items())),
                "bytes_done": self.bytes_done, "bytes_total": self.bytes_total,
                "bytes_this_run": self.bytes_this_run,
                "bytes_per_second": round(self.bytes_per_second, 1),
                "objects_per_second": round(self.objects_per_second, 3),
                "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
                "elapsed_seconds": round(self.elapsed_seconds, 3),
                "by_location": {k: v.as_record() for k, v in sorted(self.by_location.items())}}


class WaveProgress:
    def __init__(self, rows: int, journal_counts: Mapping[str, int], *, bytes_total: int | None = None,
                 locations: Mapping[str, int] | None = None, bytes_before: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._start = clock()
        self._rows = rows
        self._by_state: Counter[str] = Counter({str(k): v for k, v in journal_counts.items()})
        self._bytes_total = bytes_total or None
        self._bytes_done = bytes_before
        self._bytes_run = 0
        self._locations = {loc: LocationFigures(rows=n, by_state=Counter()) for loc, n in (locations or {}).items()}
        self._flight: dict[int, tuple[str, str]] = {}   # row -> (state, location), rows not yet final
        self._recent: deque[tuple[float, int, int]] = deque()   # (when, bytes, rows finished)

    def _location(self, name: str) -> LocationFigures:
        figures = self._locations.get(name)
        if figures is None:
            figures = self._locations[name] = LocationFigures(by_state=Counter())
        return figures

    def begin(self, row: int, state: str, location: str, verified_bytes: int = 0) -> None:
        """The wave reached ``row``, which the journal holds in ``state`` (its bytes: earlier runs')."""
        with self._lock:
            figures = self._location(location)
            figures.reached += 1
            figures.bytes += verified_bytes
            self._bytes_done += verified_bytes
            figures.by_state[state] += 1
            if state not in TERMINAL or state in (State.HELD, State.FAILED):   # held rows are tried again
                self._flight[row] = (state, location)

    def moved(self, row: int, state: str, verified_bytes: int = 0) -> str | None:
        """``row`` is journaled in ``state``; ``verified_bytes`` of it were verified by this step. Returns the
        row's location (None: a row this wave never began)."""
        now = self._clock()
        with self._lock:
            before = self._flight.get(row)
            if before is None:
                return None   # never begun: not this wave's row
            old, location = before
            figures = self._location(location)
            if old != state:
                self._by_state[old] -= 1
                self._by_state[state] += 1
                figures.by_state[old] -= 1
                figures.by_state[state] += 1
            figures.bytes += verified_bytes
            self._bytes_done += verified_bytes
            self._bytes_run += verified_bytes
            finished = state in TERMINAL
            if finished:
                del self._flight[row]
            else:
                self._flight[row] = (state, location)
            if verified_bytes or finished:
                self._recent.append((now, verified_bytes, int(finished)))
            return location

    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            while self._recent and self._recent[0][0] < now - WINDOW_SECONDS:
                self._recent.popleft()
            elapsed = now - self._start
            span = min(elapsed, WINDOW_SECONDS)
            window_bytes = sum(b for _, b, _ in self._recent)
            window_rows = sum(r for _, _, r in self._recent)
            bps = window_bytes / span if span > 0 else 0.0
            ops = window_rows / span if span > 0 else 0.0
            by_state = {k: v for k, v in self._by_state.items() if v}
            done = sum(v for k, v in by_state.items() if k in TERMINAL)
            eta = self._eta(done, bps, ops)
            return Snapshot(rows=self._rows, done=done, by_state=by_state, bytes_done=self._bytes_done,
                            bytes_total=self._bytes_total, bytes_this_run=self._bytes_run, bytes_per_second=bps,
                            objects_per_second=ops, eta_seconds=eta, elapsed_seconds=elapsed,
                            by_location={k: LocationFigures(v.rows, v.reached, Counter(v.by_state), v.bytes)
                                         for k, v in self._locations.items()})

    def _eta(self, done: int, bps: float, ops: float) -> float | None:
        """By bytes when the manifest declares them and bytes are moving; else by rows."""
        if done >= self._rows:
            return 0.0
        if self._bytes_total is not None and bps > 0 and self._bytes_done < self._bytes_total:
            return (self._bytes_total - self._bytes_done) / bps
        if ops > 0:
            return (self._rows - done) / ops
        return None
