"""What blocks deleting a version (locks, holds, retention, pending replication), and the shape of a
removal proof. Listing and deleting in batches live in listing.py and pipeline.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from migrator.stores.base import ObjectInfo


def _future(value: str | None) -> bool:
    if not value:
        return False
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return True  # unparseable retention: assume it still applies (fail closed)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > datetime.now(UTC)


ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE", "ARCHIVE"})


def is_archived(storage_class: str | None) -> bool:
    """A storage class whose bytes cannot be read until restored."""
    return (storage_class or "").upper() in ARCHIVED_CLASSES


def blocking_reason(info: ObjectInfo) -> str | None:
    """Why this version cannot be deleted now, from what the cloud reported; None when nothing blocks."""
    return blocking_reason_of(info.extra)


def blocking_reason_of(x: Mapping[str, str]) -> str | None:
    """Keys are the adapters' ``extra`` names (S3: snake_case of the HEAD fields; GCS: JSON API names)."""
    if str(x.get("object_lock_legal_hold", "")).upper() == "ON":
        return "S3 Object Lock legal hold"
    mode = x.get("object_lock_mode")
    if mode and _future(x.get("object_lock_retain_until")):
        return f"S3 Object Lock {mode.lower()} retention"
    if str(x.get("temporaryHold", "")).lower() == "true":
        return "GCS temporary hold"
    if str(x.get("eventBasedHold", "")).lower() == "true":
        return "GCS event-based hold"
    if _future(x.get("retentionExpirationTime")):
        return "GCS bucket retention"
    if _future(x.get("retainUntilTime")):
        return "GCS object retention"
    if str(x.get("replication_status", "")).upper() == "PENDING":
        return "S3 replication PENDING"
    return None


@dataclass(frozen=True)
class Proof:
    listed_at: str
    locations: tuple[str, ...]
    leftovers: tuple[str, ...]
    soft_deleted: tuple[str, ...] = ()   # restorable until their hard-deletion time: not removed yet

    @property
    def empty(self) -> bool:
        return not self.leftovers and not self.soft_deleted

    def as_record(self) -> dict[str, object]:
        return {"listed_at": self.listed_at, "locations": list(self.locations), "empty": self.empty,
                "leftovers": list(self.leftovers), "soft_deleted": list(self.soft_deleted),
                "listed": ["versions", "delete markers", "incomplete uploads", "soft-deleted (where the cloud has it)"]}
