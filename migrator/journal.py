"""The durable state of a wave: a SQLite journal in the state folder.

``transition`` is durable (committed with synchronous=FULL) before it returns, so a step that
follows it may rely on it surviving a kill -9. The state folder also holds the run's lock (an flock,
which the kernel releases when the process dies, so a crashed run never leaves it stuck) and the
manifest's digest, which pins the folder to one manifest.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrator.errors import StateError
from migrator.records import Record, State, Transition

__all__ = ["Entry", "Journal", "JournalReader", "RunLock", "State", "now"]


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"   # every time the journal and the records write: UTC, microseconds


def now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    row INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    data TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_row ON events(row);
"""


@dataclass(frozen=True)
class Entry:
    row: int
    state: str
    reason: str | None
    data: dict[str, Any]

    def record(self) -> Record:
        """The row's record as the journal holds it (working members included)."""
        return Record.from_journal(self.row, self.state, self.reason, self.data)


class RunLock:
    """An exclusive flock on STATE/lock for the life of a run."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"another migrator run holds {self.path}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @staticmethod
    def holder(state_dir: Path) -> int | None:
        """The pid of the run that holds the folder's lock, or None when no run does. Probed with a shared
        lock for an instant, without creating anything (0 when the holder wrote no pid)."""
        try:
            fd = os.open(state_dir / "lock", os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _private(path: Path) -> None:
    """The journal holds every object's URIs and the wave's policy: 0600, like the keys. SQLite gives its
    -wal and -shm files the database file's mode, so creating that one 0600 covers all three; a journal
    from an older run is narrowed to 0600 too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm"):
        other = path.with_name(path.name + side)
        if other.exists():
            other.chmod(0o600)


def _dotted(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables flattened to dotted keys (``locations.oci-us.region``), so a changed resume names the
    one field that changed, not a whole table."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _said(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


class Journal:
    FILE = "journal.sqlite"

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = state_dir / self.FILE
        _private(self.path)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        # Group commit (see submit): one writer thread commits whatever has queued up, in order.
        self._cond = threading.Condition()
        self._pending: list[tuple[int, str, str, str | None, str, str]] = []
        self._ticket = 0
        self._committed = 0
        self._broken: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._closing = False
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join()
        with self._lock:
            self._conn.close()

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def started(self) -> datetime:
        """When the wave's first run bound this folder to its manifest."""
        text = self.get_meta("started")
        if text is None:
            raise StateError(f"state folder {self.path.parent} has no start time: it was never bound to a manifest")
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def bind_manifest(self, sha256: str, wave_id: str, settings: Mapping[str, Any], *,
                      allow_changed: bool = False) -> str:
        """Pin this state folder to one manifest and one policy (``settings``, the first run's: the policy and
        the estate's digest). Returns the wave id (the first run's). A resume with another policy is refused,
        naming the keys that differ: the attestation names one policy, and it must be true of every record of
        the wave. With ``allow_changed`` the resume goes on under the new settings, and the change is kept
        (``policy_changes``) for the attestation to record."""
        existing = self.get_meta("manifest_sha256")
        if existing is not None and existing != sha256:
            raise StateError(
                f"state folder {self.path.parent} belongs to another manifest (sha256 {existing[:16]}...); "
                "use a new --state folder for a different manifest")
        if existing is not None:
            first = _dotted(json.loads(self.get_meta("settings") or "{}"))
            now_bound = _dotted(settings)
            differ = sorted(k for k in {*first, *now_bound} if first.get(k) != now_bound.get(k))
            if differ and not allow_changed:
                said = "; ".join(f"{k} {_said(first.get(k))} (this run: {_said(now_bound.get(k))})"
                                 for k in differ)
                raise StateError(f"state folder {self.path.parent} is bound to another policy or estate: {said}; "
                                 "resume with the settings it is bound to (its first run's, or the last change "
                                 "allowed), use a new --state folder, or pass --allow-changed-policy, which the "
                                 "attestation records")
            if differ:
                changes = json.loads(self.get_meta("policy_changes") or "[]")
                changes.append({"at": now(), "changed": {k: {"before": first.get(k), "after": now_bound.get(k)}
                                                         for k in differ}})
                with self._lock:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [
                        ("settings", json.dumps(dict(settings), sort_keys=True)),
                        ("policy_changes", json.dumps(changes, sort_keys=True)),
                    ])
                    self._conn.execute("COMMIT")
        else:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [
                    ("manifest_sha256", sha256), ("wave_id", wave_id), ("started", now()),
                    ("settings", json.dumps(dict(settings), sort_keys=True)),
                ])
                self._conn.execute("COMMIT")
        wid = self.get_meta("wave_id")
        if wid is None:
            raise StateError(f"state folder {self.path.parent} is damaged: it names a manifest but no wave id")
        return wid

    # -- objects ------------------------------------------------------------------------------------
    def policy_changes(self) -> list[dict[str, Any]]:
        """The changes resumes were allowed to make to the bound policy and estate, oldest first."""
        changes: list[dict[str, Any]] = json.loads(self.get_meta("policy_changes") or "[]")
        return changes

    def ensure_rows(self, rows: Iterator[int] | list[int]) -> None:
        """Create PENDING entries for rows the journal has not seen (idempotent)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT OR IGNORE INTO objects(row, state, reason, data, updated) VALUES (?, ?, NULL, '{}', ?)",
                ((r, State.PENDING, now()) for r in rows))
            self._conn.execute("COMMIT")

    def get(self, row: int) -> Entry:
        with self._lock:
            r = self._conn.execute("SELECT row, state, reason, data FROM objects WHERE row=?", (row,)).fetchone()
        if r is None:
            raise StateError(f"journal has no row {row}")
        return Entry(int(r[0]), str(r[1]), r[2], json.loads(r[3]))

    def transition(self, row: int, state: str, data: Mapping[str, Any], *, reason: str | None = None,
                   detail: Mapping[str, Any] | None = None) -> None:
        """Record a new state and a raw payload; durable on return. The pipeline writes Transitions."""
        self.wait(self._submit([(row, state, data, reason, detail or {})]))

    def transition_many(self, items: Iterable[Transition]) -> None:
        """Rows' transitions, durable on return."""
        self.wait(self.submit(items))

    def submit(self, items: Iterable[Transition]) -> int:
        """Queue transitions for the writer thread and return a ticket for ``wait``. The data is captured
        now. Nothing may act on these transitions until ``wait`` (or ``flush``) has returned: until then a
        kill may lose them, and the resumed run redoes the step from the state before.

        Group commit: the writer commits everything queued since its last commit in one transaction, so
        many workers share each fsync; tickets are committed in order.
        """
        return self._submit([(t.row, str(t.state), t.record.journal_data(), t.record.reason, t.detail)
                             for t in items])

    def _submit(self, items: Iterable[tuple[int, str, Mapping[str, Any], str | None, Mapping[str, Any]]]) -> int:
        at = now()
        batch = [(row, state, json.dumps(dict(data), sort_keys=True, separators=(",", ":")), reason,
                  json.dumps(dict(detail), sort_keys=True), at) for row, state, data, reason, detail in items]
        with self._cond:
            if self._broken is not None:
                raise StateError(f"the journal could not be written earlier: {self._broken}")
            if self._closing:
                raise StateError("the journal is closed")
            if not batch:
                return self._ticket
            self._ticket += 1
            self._pending.extend(batch)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
                self._writer.start()
            self._cond.notify_all()
            return self._ticket

    def wait(self, ticket: int) -> None:
        """Return once every transition submitted up to ``ticket`` is durable."""
        with self._cond:
            while self._committed < ticket:
                if self._broken is not None:
                    raise StateError(f"the journal could not be written: {self._broken}")
                self._cond.wait()

    def flush(self) -> None:
        with self._cond:
            ticket = self._ticket
        self.wait(ticket)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                todo, upto = self._pending, self._ticket
                self._pending = []
            try:
                self._write(todo)
            except BaseException as exc:  # noqa: BLE001 - recorded for every waiter, who raise it
                with self._cond:
                    self._broken = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._committed = upto
                self._cond.notify_all()

    def _write(self, batch: list[tuple[int, str, str, str | None, str, str]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("UPDATE objects SET state=?, reason=?, data=?, updated=? WHERE row=?",
                                       [(st, reason, payload, at, row) for row, st, payload, reason, _, at in batch])
                self._conn.executemany("INSERT INTO events(row, state, at, detail) VALUES (?, ?, ?, ?)",
                                       [(row, st, at, detail) for row, st, _, _, detail, at in batch])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def entries(self) -> Iterator[Entry]:
        """Every entry in row order, read in pages so the journal is never held whole."""
        last = 0
        while True:
            with self._lock:
                page = self._conn.execute(
                    "SELECT row, state, reason, data FROM objects WHERE row>? ORDER BY row LIMIT 1000",
                    (last,)).fetchall()
            if not page:
                return
            for r in page:
                yield Entry(int(r[0]), str(r[1]), r[2], json.loads(r[3]))
            last = int(page[-1][0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in rows}


class JournalReader:
    """A read-only view of a journal, for `migrator status` in another terminal while a run writes: SQLite's
    WAL lets this reader and the run's writer go on together, and a read-only connection can never take the
    run's write lock or change a byte."""

    def __init__(self, state_dir: Path) -> None:
        path = state_dir / Journal.FILE
        if not path.is_file():
            raise StateError(f"no journal in {state_dir}: no wave has run with this --state folder")
        try:
            self._conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            self._conn.execute("PRAGMA query_only=ON")
            self._conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read the journal {path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT state, COUNT(*) FROM objects GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in rows}

    def last_update(self) -> str | None:
        row = self._conn.execute("SELECT MAX(updated) FROM objects").fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def entries_in(self, states: Iterable[str], limit: int) -> list[Entry]:
        """The first ``limit`` entries in these states, in row order."""
        wanted = sorted(set(states))
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(f"SELECT row, state, reason, data FROM objects WHERE state IN ({marks}) "  # noqa: S608 - placeholders only
                                  "ORDER BY row LIMIT ?", (*wanted, limit)).fetchall()
        return [Entry(int(r[0]), str(r[1]), r[2], json.loads(r[3])) for r in rows]
