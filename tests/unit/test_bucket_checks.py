"""BucketChecks on in-memory stores: each bucket-level hold comes from what a store can do (its features)
and what a bucket is set to (its facts), never from the URI's scheme; facts are read once until forgotten."""

from __future__ import annotations

import dataclasses
from typing import Any

from migrator.bucket_checks import BucketChecks
from migrator.config import WavePolicy
from migrator.manifest import ManifestRow
from migrator.stores.base import ObjectStore
from migrator.stores.memory import MemoryStore
from migrator.uri import Location, ObjectURI
from tests.conftest import store_transfer


class _Stores:
    """The one call BucketChecks makes of a registry."""

    def __init__(self, *stores: MemoryStore) -> None:
        self._by_scheme = {s.scheme: s for s in stores}

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        return self._by_scheme[uri.scheme]


def _checks(*stores: MemoryStore, **policy: Any) -> BucketChecks:
    return BucketChecks(_Stores(*stores), WavePolicy(**policy))  # type: ignore[arg-type]


def _row(source: ObjectURI, destination: ObjectURI, *replicas: ObjectURI) -> ManifestRow:
    return ManifestRow(line=2, row=1, source=source, destination=destination, replicas=replicas)


def _pair() -> tuple[MemoryStore, MemoryStore]:
    src, dst = MemoryStore("gs", transfer=store_transfer()), MemoryStore("oci", transfer=store_transfer())
    dst.create_bucket("dst", versioned=True)
    return src, dst


SRC = ObjectURI("gs", "src", "k")
DST = ObjectURI("oci", "dst", "k", "ns")


def test_soft_delete_on_or_unknown_holds_unless_the_policy_attests_it() -> None:
    src, dst = _pair()
    src.create_bucket("src", soft_delete_seconds=7 * 24 * 3600)
    blocked = _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST))
    assert blocked is not None and blocked[0] == "GCS soft delete on" and "clear-soft-delete" in blocked[1]
    assert _checks(src, dst, soft_delete="attest-pending").location_blocks(src, SRC, _row(SRC, DST)) is None
    src.configure_bucket("src", soft_delete_seconds=0)
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST)) is None
    unknown = MemoryStore("gs", transfer=store_transfer())
    unknown.create_bucket("src", soft_delete_seconds=None)
    assert _checks(unknown, dst).soft_delete_blocks(unknown, SRC) == (
        "GCS soft delete unknown", "gs://src: set its soft-delete retention to 0 (gcloud storage buckets update "
        "--clear-soft-delete) before the wave")


def test_a_store_without_soft_delete_is_never_asked_about_it() -> None:
    src, dst = _pair()
    src.create_bucket("src", soft_delete_seconds=None)
    src.features = dataclasses.replace(src.features, soft_deleted=None)
    assert _checks(src, dst).soft_delete_blocks(src, SRC) is None
    assert src.requests["GetBucket"] == 0


def test_bucket_retention_holds_only_where_versions_cannot_report_their_own() -> None:
    src, dst = _pair()
    src.create_bucket("src", retention=True)
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST)) is None   # checked per version instead
    src.features = dataclasses.replace(src.features, reports_protection=False)
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST)) == (
        "OCI retention rule", "gs://src has retention rules; deletes would be refused")


def test_replication_to_an_unlisted_bucket_holds() -> None:
    src, dst = _pair()
    src.create_bucket("src", replicates_to=[Location("gs", "backup")])
    replica = ObjectURI("gs", "backup", "k")
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST)) == (
        "unlisted replication target", "gs://src replicates to gs://backup")
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST, replica)) is None
    src.features = dataclasses.replace(src.features, replication_targets=None)
    assert _checks(src, dst).location_blocks(src, SRC, _row(SRC, DST)) is None


def test_destination_must_be_versioned_or_retained() -> None:
    src, dst = _pair()
    src.create_bucket("src")
    dst.create_bucket("open")
    dst.create_bucket("kept", retention=True)
    open_dst, kept = ObjectURI("oci", "open", "k", "ns"), ObjectURI("oci", "kept", "k", "ns")
    assert _checks(src, dst).destination_unprotected(_row(SRC, DST)) is None
    assert _checks(src, dst).destination_unprotected(_row(SRC, kept)) is None
    message = _checks(src, dst).destination_unprotected(_row(SRC, open_dst))
    assert message is not None and message.startswith("oci://ns/open is neither versioned nor under retention")
    assert _checks(src, dst, require_destination_protection=False).destination_unprotected(
        _row(SRC, open_dst)) is None


def test_facts_are_read_once_per_bucket_until_forgotten() -> None:
    src, dst = _pair()
    src.create_bucket("src", soft_delete_seconds=0)
    checks = _checks(src, dst)
    for _ in range(3):
        assert checks.location_blocks(src, SRC, _row(SRC, DST)) is None
    assert src.requests["GetBucket"] == 1 and src.requests["GetReplication"] == 1
    src.configure_bucket("src", soft_delete_seconds=3600)
    assert checks.soft_delete_blocks(src, SRC) is None          # still the settings read before
    checks.forget()
    blocked = checks.soft_delete_blocks(src, SRC)
    assert blocked is not None and blocked[0] == "GCS soft delete on"
    assert src.requests["GetBucket"] == 2
