"""in-toto Statement v1 with the removal predicate (v1, v2), and the tally that fills its totals.

The payload signed in the DSSE envelope is canonical_json(statement).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from migrator.attest.merkle import ALGORITHM as MERKLE_ALGORITHM
from migrator.errors import InputError
from migrator.records import FINAL_STATES, Record

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE_V1 = "https://provable-migrator.dev/removal/v1"
# v2 = v1 plus the required member "subjects": null, or the keyed per-subject index (docs/attestation.md).
PREDICATE_TYPE_V2 = "https://provable-migrator.dev/removal/v2"
# v3 = v2 plus totals.out_of_scope (the state OUT_OF_SCOPE, record schema 2), `complete` over the rows in
# scope, and the required member "locations": null, or the identities of the wave's named locations.
PREDICATE_TYPE_V3 = "https://provable-migrator.dev/removal/v3"
PREDICATE_TYPES = (PREDICATE_TYPE_V1, PREDICATE_TYPE_V2, PREDICATE_TYPE_V3)
WITH_SUBJECTS = (PREDICATE_TYPE_V2, PREDICATE_TYPE_V3)   # the types whose predicate requires "subjects"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
RECORDS_SUBJECT = "records.jsonl"
SUBJECTS_SUBJECT = "subjects.jsonl"
STATES = tuple(str(s) for s in FINAL_STATES)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def build_statement(*, subjects: list[tuple[str, str]], predicate_type: str,
                    predicate: dict[str, Any]) -> dict[str, Any]:
    """subjects: (name, lowercase sha256 hex) pairs, in the order given."""
    names = [name for name, _ in subjects]
    if len(set(names)) != len(names):
        raise InputError("subject names must be distinct")
    for name, digest in subjects:
        if not name or not _SHA256_HEX.fullmatch(digest):
            raise InputError(f"subject {name!r} needs a name and a lowercase hex SHA-256")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with a Z, to the second: 2025-01-31T12:00:00Z."""
    if moment.tzinfo is None:
        raise InputError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RecordTally:
    """Counts records by state and exceptions by reason, as the predicate reports them."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts = dict.fromkeys(STATES, 0)
        self.by_reason: dict[str, int] = {}

    def add(self, record: Record) -> None:
        self.count(record.state, record.reason)

    def count(self, state: str, reason: str | None) -> None:
        if state not in self.counts:
            raise InputError(f"record state must be one of {', '.join(STATES)}")
        self.rows += 1
        self.counts[state] += 1
        if state != "REMOVED":
            if not isinstance(reason, str) or not reason:
                raise InputError("a HELD, FAILED or OUT_OF_SCOPE record needs a reason")
            if state != "OUT_OF_SCOPE":
                self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def totals(self) -> dict[str, int]:
        return {"rows": self.rows, "removed": self.counts["REMOVED"], "held": self.counts["HELD"],
                "failed": self.counts["FAILED"], "out_of_scope": self.counts["OUT_OF_SCOPE"]}

    def exceptions(self) -> dict[str, Any]:
        return {"held": self.counts["HELD"], "failed": self.counts["FAILED"],
                "by_reason": dict(sorted(self.by_reason.items()))}

    @property
    def complete(self) -> bool:
        """Every row in scope was removed; rows left untouched by policy are out of scope, never removed."""
        return self.counts["REMOVED"] == self.rows - self.counts["OUT_OF_SCOPE"]


def build_predicate(*, wave_id: str, tool_name: str, tool_version: str, started: datetime,
                    finished: datetime, policy: Mapping[str, Any], tally: RecordTally,
                    merkle_root: bytes, tree_size: int, scope: Sequence[str],
                    extra: Mapping[str, Any] | None = None,
                    predicate_type: str = PREDICATE_TYPE_V3) -> dict[str, Any]:
    """The removal predicate (docs/attestation.md). ``extra`` adds members: v2 needs ``subjects``, v3 also
    ``locations``. v1 and v2 know no OUT_OF_SCOPE state: their totals have four counts."""
    if tree_size != tally.rows:
        raise InputError("the Merkle tree must have one leaf per record")
    totals = tally.totals()
    if predicate_type != PREDICATE_TYPE_V3:
        if totals.pop("out_of_scope"):
            raise InputError(f"{predicate_type} has no OUT_OF_SCOPE state")
    predicate: dict[str, Any] = {
        "wave_id": wave_id,
        "tool": {"name": tool_name, "version": tool_version},
        "started": format_time(started),
        "finished": format_time(finished),
        "policy": dict(policy),
        "totals": totals,
        "exceptions": tally.exceptions(),
        "complete": tally.complete,
        "merkle": {"algorithm": MERKLE_ALGORITHM, "tree_size": tree_size, "root": merkle_root.hex()},
        "scope": list(scope),
    }
    for key, value in (extra or {}).items():
        if key in predicate:
            raise InputError(f"predicate member {key!r} is reserved")
        predicate[key] = value
    return predicate
