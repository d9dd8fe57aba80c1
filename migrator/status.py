"""`migrator status`: what a wave's state folder says, during a run (from another terminal) or after it.

Counts and the rows held or failed come from the journal (read-only, live); bytes, rates, the ETA and the
per-location figures from the last progress snapshot the run wrote (STATE/progress.json, about once a
second); whether a run is going on from the folder's lock; the attestation's state from attestation.json
beside the journal. Nothing here writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.attest.produce import ATTESTATION_FILE
from migrator.errors import VerificationError
from migrator.journal import JournalReader, RunLock
from migrator.observe import read_progress
from migrator.records import State

__all__ = ["WaveStatus", "wave_status"]

EXCEPTIONS_SHOWN = 50


@dataclass(frozen=True)
class WaveStatus:
    state_dir: Path
    wave_id: str | None
    manifest_sha256: str | None
    policy: dict[str, Any]
    run: str                        # running, stopping, finished, stopped, interrupted, not started
    pid: int | None
    rows: int
    by_state: dict[str, int]
    exceptions: list[dict[str, Any]]   # the first held and failed rows, with reasons
    exceptions_total: int
    progress: dict[str, Any] | None    # the last snapshot: bytes, rates, ETA, by location
    attestation: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        return {"schema": "migrator.status/1", "state": str(self.state_dir), "wave_id": self.wave_id,
                "manifest_sha256": self.manifest_sha256, "policy": self.policy, "run": self.run, "pid": self.pid,
                "rows": self.rows, "by_state": self.by_state, "exceptions": self.exceptions,
                "exceptions_total": self.exceptions_total, "progress": self.progress,
                "attestation": self.attestation}


def wave_status(state_dir: Path) -> WaveStatus:
    with JournalReader(state_dir) as journal:
        counts = journal.counts()
        held = [State.HELD, State.FAILED]
        entries = journal.entries_in(held, EXCEPTIONS_SHOWN)
        exceptions = [{"row": e.row, "state": e.state, "reason": e.record().exception} for e in entries]
        wave_id = journal.meta("wave_id")
        last_update = journal.last_update()
        policy = json.loads(journal.meta("settings") or "{}")
        manifest_sha = journal.meta("manifest_sha256")
    pid = RunLock.holder(state_dir)
    progress = read_progress(state_dir)
    if progress is not None and progress.get("wave_id") != wave_id:
        progress = None   # a snapshot of another wave (a reused folder): not this one's figures
    if pid is not None:
        run = "stopping" if progress is not None and progress.get("status") == "stopping" else "running"
    elif progress is None:
        run = "not started" if set(counts) <= {State.PENDING} else "stopped"
    else:
        said = str(progress.get("status"))
        # A snapshot saying "running" with no run holding the lock: the run was killed.
        run = "interrupted" if said in ("running", "stopping") else said
    return WaveStatus(state_dir=state_dir, wave_id=wave_id, manifest_sha256=manifest_sha, policy=policy,
                      run=run, pid=pid, rows=sum(counts.values()), by_state=dict(sorted(counts.items())),
                      exceptions=exceptions, exceptions_total=sum(counts.get(s, 0) for s in held),
                      progress=progress, attestation=_attestation(state_dir, wave_id, last_update))


def _attestation(state_dir: Path, wave_id: str | None, last_update: str | None) -> dict[str, Any]:
    """none, current, or stale (rows changed after it was signed: the next run signs again). Parsed, not
    verified: `audit verify` is the auditor's check."""
    from migrator.attest.verify import parse_attestation

    path = state_dir / ATTESTATION_FILE
    if not path.is_file():
        return {"state": "none", "path": None}
    try:
        predicate = parse_attestation(path.read_bytes())[1].get("predicate", {})
    except (OSError, VerificationError) as exc:
        return {"state": "unreadable", "path": str(path), "error": str(exc)}
    finished = predicate.get("finished")
    stale = predicate.get("wave_id") != wave_id or (
        last_update is not None and isinstance(finished, str) and _later(last_update, finished))
    return {"state": "stale" if stale else "current", "path": str(path), "complete": predicate.get("complete"),
            "finished": finished, "totals": predicate.get("totals")}


def _later(journal_time: str, attested: str) -> bool:
    """The journal's time (microseconds) after the predicate's (RFC 3339, maybe seconds only)."""
    from datetime import datetime

    try:
        a = datetime.fromisoformat(journal_time.replace("Z", "+00:00"))
        b = datetime.fromisoformat(attested.replace("Z", "+00:00"))
    except ValueError:
        return False
    # The predicate's time has whole seconds, taken after the last journal write: a write in that same second
    # came before it.
    return a.replace(microsecond=0) > b
