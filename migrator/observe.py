"""What a running wave tells the world: row events after each journal commit, a progress snapshot about once
a second (as an event, and as STATE/progress.json for `migrator status` in another terminal).

The wave calls ``begin`` for each row it reaches and ``committed`` with each batch of transitions it has
journaled; nothing here writes the journal or decides anything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from migrator.errors import MigratorError
from migrator.events import EventSink, event
from migrator.files import replace_atomically
from migrator.progress import Snapshot, WaveProgress
from migrator.records import Record, State, Transition
from migrator.stopping import Stopper

__all__ = ["PROGRESS_FILE", "Observer", "Ticker", "read_progress"]

PROGRESS_FILE = "progress.json"


class Observer:
    def __init__(self, wave_id: str, progress: WaveProgress, sink: EventSink | None = None) -> None:
        self.wave_id = wave_id
        self.progress = progress
        self.sink = sink

    def emit(self, kind: str, **members: Any) -> None:
        if self.sink is not None:
            self.sink.emit(event(kind, self.wave_id, **members))

    def begin(self, row: int, state: str, location: str, record: Record | None = None) -> None:
        self.progress.begin(row, state, location, record.bytes if record is not None else 0)

    def committed(self, items: Iterable[Transition]) -> None:
        for t in items:
            rec = t.record
            verified = bool(t.detail.get("verified")) and bool(rec.versions)
            size = rec.versions[-1].size if verified else 0
            location = self.progress.moved(t.row, str(t.state), size)
            if self.sink is None:
                continue
            members: dict[str, Any] = {"row": t.row, "state": str(t.state), "location": location,
                                       "source": rec.source, "destination": rec.destination}
            if verified:
                members.update(version=rec.versions[-1].version, bytes=size, verified=True)
            if t.state in (State.HELD, State.FAILED, State.OUT_OF_SCOPE):
                members.update(reason=str(rec.reason) if rec.reason else None, detail=rec.detail)
            for key in ("request_id", "targets", "versions"):
                if key in t.detail:
                    members[key] = t.detail[key]
            self.emit("row", **members)


class Ticker:
    """A daemon thread: every ``interval`` seconds a ``progress`` event and STATE/progress.json (0600)."""

    def __init__(self, observer: Observer, state_dir: Path, facts: Mapping[str, Any], interval: float = 1.0,
                 stopper: Stopper | None = None) -> None:
        self._observer = observer
        self._stopper = stopper
        self._announced = False
        self._path = state_dir / PROGRESS_FILE
        self._facts = dict(facts)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def tick(self, status: str = "running") -> Snapshot:
        if self._stopper is not None and self._stopper.requested and not self._announced:
            # Announced from here, not from the signal handler: that runs on the main thread between any
            # two bytecodes, perhaps inside an emit that holds the sinks' lock.
            self._announced = True
            self._observer.emit("wave.stopping", signal=self._stopper.signal_name)
        if status == "running" and self._stopper is not None and self._stopper.requested:
            status = "stopping"
        snap = self._observer.progress.snapshot()
        record = snap.as_record()
        self._observer.emit("progress", **record)
        from migrator.journal import now

        body = {"schema": "migrator.progress/1", "wave_id": self._observer.wave_id, "status": status,
                "updated": now(), **self._facts, **record}
        replace_atomically(self._path, (json.dumps(body, sort_keys=True, indent=1) + "\n").encode(), mode=0o600)
        return snap

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except (OSError, MigratorError):
                pass   # a full disk or a closed pipe must not stop the wave: the journal is what counts

    def stop(self, status: str) -> Snapshot:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.tick(status)


def read_progress(state_dir: Path) -> dict[str, Any] | None:
    """The last snapshot a run wrote, or None (never run, or by a version without one)."""
    try:
        data: dict[str, Any] = json.loads((state_dir / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
