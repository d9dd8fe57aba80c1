"""Protections read from the adapters' ``extra`` fields, the one place their cloud names are spelled.

Adapters keep the cloud's own fields in ``extra`` (records store them as raw evidence) and build their
``Protection`` from them here, so a Protection rebuilt from a stored ``extra`` (a resumed wave's earlier
verify) is the one the live store reported. Rules:
- S3 (snake_case of the HEAD fields): ``object_lock_legal_hold`` ON, ``object_lock_mode`` with
  ``object_lock_retain_until``, ``replication_status`` PENDING.
- GCS (JSON API names): ``temporaryHold``, ``eventBasedHold`` ("true"), ``retentionExpirationTime``
  (the bucket's retention policy), ``retainUntilTime`` (object retention).
- A date that is present but unparseable is ``FOREVER``: still retained (fail closed). An empty one is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from migrator.stores.base import FOREVER, NO_PROTECTION, Protection


def protection_from_extra(extra: Mapping[str, str]) -> Protection:
    """The Protection an adapter's ``extra`` describes (any adapter's: the names do not overlap)."""
    found = Protection(
        legal_hold=str(extra.get("object_lock_legal_hold", "")).upper() == "ON",
        retention_mode=extra.get("object_lock_mode") or None,
        retain_until=_date(extra.get("object_lock_retain_until")),
        temporary_hold=str(extra.get("temporaryHold", "")).lower() == "true",
        event_based_hold=str(extra.get("eventBasedHold", "")).lower() == "true",
        object_retain_until=_date(extra.get("retainUntilTime")),
        bucket_retain_until=_date(extra.get("retentionExpirationTime")),
        replication_pending=str(extra.get("replication_status", "")).upper() == "PENDING",
    )
    return NO_PROTECTION if found == NO_PROTECTION else found


def protection_extra(p: Protection) -> dict[str, str]:
    """``p`` in the same field names, for a store that has no vocabulary of its own (the memory store)."""
    out: dict[str, str] = {}
    if p.legal_hold:
        out["object_lock_legal_hold"] = "ON"
    if p.retention_mode:
        out["object_lock_mode"] = p.retention_mode
    for name, when in (("object_lock_retain_until", p.retain_until), ("retainUntilTime", p.object_retain_until),
                       ("retentionExpirationTime", p.bucket_retain_until)):
        if when is not None:
            out[name] = when.isoformat()
    out["temporaryHold"] = "true" if p.temporary_hold else "false"
    out["eventBasedHold"] = "true" if p.event_based_hold else "false"
    if p.replication_pending:
        out["replication_status"] = "PENDING"
    return out


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return FOREVER
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
