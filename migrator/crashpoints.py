"""Deterministic crash points for the reliability suite.

``MIGRATOR_CRASH_AT=name:N`` makes the process SIGKILL itself the Nth time it passes ``name``
(N defaults to 1). Unarmed, a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading

NAMES = (
    "after-copy-before-commit",
    "mid-multipart",
    "between-version-deletes",
    "after-delete-before-commit",
    "during-attestation",
)

_lock = threading.Lock()
_hits: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get("MIGRATOR_CRASH_AT", "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count) if count.isdigit() else 1


def hit(name: str) -> None:
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        n = _hits[name]
    if n == armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
