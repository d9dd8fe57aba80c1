"""The wave's events: one versioned JSON object per happening, for `run --events` and the operational log.

Schema ``migrator.events/1`` (docs/events.md). Every event carries ``schema``, ``type``, ``time`` (UTC, the
journal's format) and ``wave_id``; the types are ``wave.started``, ``row`` (one per journaled transition),
``progress`` (a snapshot, about once a second), ``wave.stopping``, ``wave.stopped``, ``wave.finished``, and
``summary`` (the CLI's final result, last). A new member may appear in a later minor revision; a member's
meaning never changes without a new schema number.

A row event is sent after its transition is journaled (the wave's own commit), so an event never announces a
state a kill could take back. Events name objects, never credentials: they hold what the journal holds.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from migrator.errors import InputError
from migrator.journal import now

__all__ = ["SCHEMA", "EventSink", "Fanout", "JsonLines", "event", "open_events"]

SCHEMA = "migrator.events/1"


def event(kind: str, wave_id: str | None, **members: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "type": kind, "time": now(), "wave_id": wave_id, **members}


class EventSink(Protocol):
    def emit(self, ev: Mapping[str, Any]) -> None: ...


class Fanout:
    """Every event to every sink, in order; one lock, so sinks see one order and lines never interleave."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self._sinks = list(sinks)
        self._lock = threading.Lock()

    def emit(self, ev: Mapping[str, Any]) -> None:
        with self._lock:
            for sink in self._sinks:
                sink.emit(ev)


class JsonLines:
    """One compact JSON object per line, flushed as written: a reader tailing the file sees each event as
    it happens."""

    def __init__(self, fh: IO[str], *, close: bool = False) -> None:
        self._fh = fh
        self._close = close
        self._lock = threading.Lock()
        self.failed: str | None = None   # why writing stopped (a full disk, a closed pipe); the CLI says so

    def emit(self, ev: Mapping[str, Any]) -> None:
        line = json.dumps(ev, sort_keys=True, separators=(",", ":"), default=str)
        with self._lock:
            if self.failed is not None:
                return
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except (OSError, ValueError) as exc:
                # Events are sent after the journal commit: a reader gone away must not fail the wave.
                self.failed = getattr(exc, "strerror", None) or str(exc)

    def close(self) -> None:
        if self._close:
            try:
                self._fh.close()
            except OSError as exc:
                self.failed = self.failed or exc.strerror or str(exc)


def open_events(path: Path, what: str) -> JsonLines:
    """Append to ``path``, created 0600: events name every object of the wave, as the journal does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise InputError(f"cannot open {what}: {exc.strerror}", file=str(path)) from None
    return JsonLines(os.fdopen(fd, "w", encoding="utf-8"), close=True)
