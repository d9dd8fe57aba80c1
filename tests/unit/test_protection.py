"""Protection: the typed lock/hold/retention value, rebuilt from an adapter's ``extra`` as removal reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from migrator.stores.base import FOREVER, NO_PROTECTION, DeleteTarget, Protection, VersionEntry
from migrator.stores.protection import protection_extra, protection_from_extra

NOW = datetime.now(UTC)
LATER = (NOW + timedelta(days=30)).isoformat()
EARLIER = (NOW - timedelta(days=30)).isoformat()

# What the adapters put in ``extra`` (S3: snake_case of HEAD fields; GCS: JSON API names), and the reason
# removal.blocking_reason_of gave for it at 440d51f: the Protection built from it must say the same.
EXTRAS: list[tuple[dict[str, str], str | None]] = [
    ({}, None),
    ({"object_lock_legal_hold": "ON"}, "S3 Object Lock legal hold"),
    ({"object_lock_legal_hold": "on"}, "S3 Object Lock legal hold"),
    ({"object_lock_legal_hold": "OFF"}, None),
    ({"object_lock_mode": "GOVERNANCE", "object_lock_retain_until": LATER}, "S3 Object Lock governance retention"),
    ({"object_lock_mode": "COMPLIANCE", "object_lock_retain_until": LATER}, "S3 Object Lock compliance retention"),
    ({"object_lock_mode": "COMPLIANCE", "object_lock_retain_until": EARLIER}, None),
    ({"object_lock_mode": "GOVERNANCE"}, None),                                   # a mode with no date
    ({"object_lock_retain_until": LATER}, None),                                  # a date with no mode
    ({"object_lock_mode": "COMPLIANCE", "object_lock_retain_until": "not a date"},  # fail closed
     "S3 Object Lock compliance retention"),
    ({"object_lock_mode": "GOVERNANCE", "object_lock_retain_until": "2999-01-01T00:00:00Z"},
     "S3 Object Lock governance retention"),
    ({"object_lock_mode": "GOVERNANCE", "object_lock_retain_until": "2999-01-01T00:00:00"},  # naive: UTC
     "S3 Object Lock governance retention"),
    ({"object_lock_legal_hold": "ON", "object_lock_mode": "GOVERNANCE", "object_lock_retain_until": LATER},
     "S3 Object Lock legal hold"),
    ({"temporaryHold": "true", "eventBasedHold": "false"}, "GCS temporary hold"),
    ({"temporaryHold": "false", "eventBasedHold": "true"}, "GCS event-based hold"),
    ({"temporaryHold": "false", "eventBasedHold": "false", "retentionExpirationTime": LATER}, "GCS bucket retention"),
    ({"temporaryHold": "false", "eventBasedHold": "false", "retentionExpirationTime": EARLIER}, None),
    ({"retentionExpirationTime": "garbage"}, "GCS bucket retention"),
    ({"retainUntilTime": LATER, "retentionMode": "Unlocked"}, "GCS object retention"),
    ({"retainUntilTime": EARLIER}, None),
    ({"retainUntilTime": ""}, None),
    ({"replication_status": "PENDING"}, "S3 replication PENDING"),
    ({"replication_status": "pending"}, "S3 replication PENDING"),
    ({"replication_status": "COMPLETED"}, None),
    ({"info_source": "response-headers"}, None),
]


@pytest.mark.parametrize(("extra", "reason"), EXTRAS,
                         ids=lambda x: ",".join(f"{k}={v[:12]}" for k, v in x.items()) or "none"
                         if isinstance(x, dict) else str(x))
def test_protection_from_extra_blocks_as_removal_did(extra: dict[str, str], reason: str | None) -> None:
    assert protection_from_extra(extra).blocking_reason() == reason


def test_nothing_reported_is_no_protection() -> None:
    assert protection_from_extra({"info_source": "response-headers", "temporaryHold": "false"}) == NO_PROTECTION
    assert NO_PROTECTION.blocking_reason() is None


def test_an_unparseable_retention_date_is_forever() -> None:
    p = protection_from_extra({"object_lock_mode": "COMPLIANCE", "object_lock_retain_until": "next tuesday"})
    assert p.retain_until == FOREVER
    assert p.blocking_reason(NOW + timedelta(days=365 * 1000)) == "S3 Object Lock compliance retention"


def test_retention_ends_at_its_date() -> None:
    until = NOW + timedelta(hours=1)
    p = Protection(retention_mode="COMPLIANCE", retain_until=until)
    assert p.blocking_reason(NOW) == "S3 Object Lock compliance retention"
    assert p.blocking_reason(until) is None


def test_governance_bypass_lifts_only_governance_retention() -> None:
    governance = Protection(retention_mode="GOVERNANCE", retain_until=NOW + timedelta(days=1))
    assert governance.under_governance()
    assert governance.blocking_reason() == "S3 Object Lock governance retention"
    assert governance.blocking_reason(bypass_governance=True) is None
    held = Protection(legal_hold=True, retention_mode="GOVERNANCE", retain_until=NOW + timedelta(days=1))
    assert held.blocking_reason(bypass_governance=True) == "S3 Object Lock legal hold"
    compliance = Protection(retention_mode="COMPLIANCE", retain_until=NOW + timedelta(days=1))
    assert not compliance.under_governance()
    assert compliance.blocking_reason(bypass_governance=True) == "S3 Object Lock compliance retention"
    pending = Protection(retention_mode="GOVERNANCE", retain_until=NOW + timedelta(days=1), replication_pending=True)
    assert pending.blocking_reason(bypass_governance=True) == "S3 replication PENDING"
    expired = Protection(retention_mode="GOVERNANCE", retain_until=NOW - timedelta(days=1))
    assert not expired.under_governance() and expired.blocking_reason() is None


@pytest.mark.parametrize("p", [
    NO_PROTECTION,
    Protection(legal_hold=True),
    Protection(retention_mode="GOVERNANCE", retain_until=NOW + timedelta(days=2)),
    Protection(temporary_hold=True, event_based_hold=True),
    Protection(object_retain_until=NOW + timedelta(days=3), bucket_retain_until=NOW + timedelta(days=4)),
    Protection(replication_pending=True),
    Protection(retention_mode="COMPLIANCE", retain_until=FOREVER),
])
def test_protection_extra_round_trips(p: Protection) -> None:
    assert protection_from_extra(protection_extra(p)) == p


def test_pinned_delete_targets() -> None:
    version = VersionEntry("k", "v1", is_delete_marker=False, is_latest=True, etag='"e"')
    assert DeleteTarget.pinned(version) == DeleteTarget("k", "v1")
    unversioned = VersionEntry("k", None, is_delete_marker=False, is_latest=True, etag='"e"')
    assert DeleteTarget.pinned(unversioned) == DeleteTarget("k", None, if_match='"e"')
    marker = VersionEntry("k", "m1", is_delete_marker=True, is_latest=True)
    assert DeleteTarget.pinned(marker) == DeleteTarget("k", "m1", delete_marker=True)
