"""The operational log (`run --log-file FILE`): one JSON object per line, for the operator's log pipeline.

Built from the wave's events (events.py), one line per step a row took and per wave milestone, in the shape
log shippers expect: ``time``, ``level``, ``msg``, ``wave_id``, ``location``, ``uri``, ``row``, ``step``,
``outcome``, and the cloud's ``request_id`` when a failure carried one. Progress is logged once a minute, not
once a second. Nothing a credential could be in reaches it: events hold what the journal holds (object names,
versions, sizes, reasons), never settings, headers or keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from migrator.events import JsonLines

__all__ = ["OpLog"]

PROGRESS_EVERY_SECONDS = 60.0
_LEVELS = {"HELD": "warning", "FAILED": "error", "wave.stopping": "warning", "wave.stopped": "warning"}
_ROW_MEMBERS = ("version", "bytes", "reason", "detail", "request_id", "targets", "versions", "destination")


class OpLog:
    def __init__(self, out: JsonLines, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._last_progress: float | None = None
        self._lock = threading.Lock()

    @property
    def failed(self) -> str | None:
        return self._out.failed

    def emit(self, ev: Mapping[str, Any]) -> None:
        line = self._line(ev)
        if line is not None:
            self._out.emit(line)

    def close(self) -> None:
        self._out.close()

    def _line(self, ev: Mapping[str, Any]) -> dict[str, Any] | None:
        kind = str(ev.get("type"))
        base: dict[str, Any] = {"time": ev.get("time"), "wave_id": ev.get("wave_id")}
        if kind == "row":
            state = str(ev.get("state"))
            line = {**base, "level": _LEVELS.get(state, "info"), "msg": f"row {ev.get('row')} {state}",
                    "row": ev.get("row"), "location": ev.get("location"),
                    "uri": None if ev.get("source") is None else str(ev.get("source")),
                    "step": state, "outcome": _outcome(state)}
            line.update({k: ev[k] for k in _ROW_MEMBERS if ev.get(k) is not None})
            return line
        if kind == "progress":
            with self._lock:
                now = self._clock()
                if self._last_progress is not None and now - self._last_progress < PROGRESS_EVERY_SECONDS:
                    return None
                self._last_progress = now
            keep = ("rows", "done", "by_state", "bytes_done", "bytes_total", "bytes_per_second", "eta_seconds")
            return {**base, "level": "info", "msg": "progress", "step": "progress", **{k: ev.get(k) for k in keep}}
        if kind.startswith("wave."):
            extra = {k: v for k, v in ev.items() if k not in ("schema", "type", "time", "wave_id", "locations")}
            return {**base, "level": _LEVELS.get(kind, "info"), "msg": kind.replace(".", " "), "step": kind,
                    **extra}
        return None   # the CLI's summary: the log already has wave.finished


def _outcome(state: str) -> str:
    if state in ("HELD", "FAILED"):
        return state.lower()
    if state in ("REMOVED", "OUT_OF_SCOPE"):
        return "done" if state == "REMOVED" else "out of scope"
    return "ok"
