"""How one row's processing ends early: HELD (it cannot be removed now) or FAILED (it could not be processed)."""

from __future__ import annotations

from migrator.errors import MigratorError
from migrator.records import Reason, State


class Outcome(MigratorError):
    """Ends one object's processing: ``reason`` is the category counted in the predicate, ``detail`` the
    specifics (URIs, versions) kept in the object's record."""

    state = State.FAILED

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class Held(Outcome):
    """This object cannot be removed now; its sources stay as they are."""

    state = State.HELD


class Failed(Outcome):
    """This object could not be processed; a later run retries it."""

    state = State.FAILED
