"""The journal: durable transitions, group commit across threads, the manifest pin and the run lock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from migrator.errors import StateError
from migrator.journal import Journal, RunLock, State


def test_group_commit_writes_every_callers_rows(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.ensure_rows(list(range(1, 401)))
    barrier = threading.Barrier(16)

    def worker(start: int) -> None:
        barrier.wait()
        for row in range(start, 401, 16):
            journal.transition(row, State.COPYING, {"step": 1})
            journal.transition(row, State.VERIFIED, {"step": 2}, detail={"v": row})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    # Read back through a separate connection: what a resumed process would see.
    conn = sqlite3.connect(tmp_path / Journal.FILE)
    assert conn.execute("SELECT COUNT(*) FROM objects WHERE state=? AND data=?",
                        (State.VERIFIED, '{"step":2}')).fetchone()[0] == 400
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 800
    order = conn.execute("SELECT state FROM events WHERE row=7 ORDER BY id").fetchall()
    assert [s for (s,) in order] == [State.COPYING, State.VERIFIED]


def test_state_folder_is_pinned_to_one_manifest(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    wave = journal.bind_manifest("a" * 64, "wave-1", {})
    assert journal.bind_manifest("a" * 64, "wave-2", {}) == wave
    with pytest.raises(StateError, match="another manifest"):
        journal.bind_manifest("b" * 64, "wave-3", {})


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(StateError):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path):
        pass
