"""The fail-closed decision that a copy is VERIFIED: source evidence by tier, then the destination's report."""

from __future__ import annotations

import hashlib

import pytest

from migrator.checksum import Algorithm, Checksum, MultiHasher, Provenance, find, multipart_md5
from migrator.errors import ChecksumError, ChecksumMismatch
from migrator.evidence import (
    TIER_MANIFEST,
    TIER_MULTIPART,
    TIER_REREAD,
    TIER_SOURCE,
    destination_evidence,
    source_evidence,
)

DATA = b"the bytes of one object" * 100
OTHER = b"some other bytes" * 100


def _computed(data: bytes = DATA, parts: list[int] | None = None) -> list[Checksum]:
    h = MultiHasher(part_sizes=parts)
    h.update(data)
    return h.digests()


def _as(data: bytes, algorithm: Algorithm, provenance: Provenance) -> Checksum:
    found = find(_computed(data), algorithm)
    assert found is not None
    return Checksum(algorithm, found.value, provenance)


def _reread(data: bytes) -> Checksum:
    return Checksum(Algorithm.SHA256, hashlib.sha256(data).digest(), Provenance.REREAD)


def test_a_source_checksum_is_the_strongest_tier_and_every_present_claim_must_match() -> None:
    src = [_as(DATA, Algorithm.CRC32C, Provenance.SOURCE), _as(DATA, Algorithm.MD5, Provenance.SOURCE)]
    manifest = [_as(DATA, Algorithm.SHA256, Provenance.MANIFEST)]
    tier, matched = source_evidence(_computed(), src, manifest, len(DATA), len(DATA), None)
    assert tier == TIER_SOURCE
    assert matched == ["crc32c (source-reported)", "md5 (source-reported)", "sha256 (manifest)"]


@pytest.mark.parametrize("bad", ["source", "manifest"])
def test_one_mismatching_claim_fails_even_when_another_matches(bad: str) -> None:
    good_src = _as(DATA, Algorithm.MD5, Provenance.SOURCE)
    src = [good_src, _as(OTHER, Algorithm.CRC32C, Provenance.SOURCE)] if bad == "source" else [good_src]
    manifest = [_as(OTHER, Algorithm.SHA256, Provenance.MANIFEST)] if bad == "manifest" else []
    with pytest.raises(ChecksumMismatch):
        source_evidence(_computed(), src, manifest, len(DATA), None, None)


def test_a_manifest_size_that_differs_from_the_bytes_read_fails() -> None:
    with pytest.raises(ChecksumMismatch, match="manifest size"):
        source_evidence(_computed(), [_as(DATA, Algorithm.MD5, Provenance.SOURCE)], [], len(DATA), len(DATA) + 1,
                        None)


def test_the_s3_multipart_etag_recomputed_from_the_stream_is_tier_2() -> None:
    parts = [1000, 1000, len(DATA) - 2000]
    computed = _computed(parts=parts)
    etag = find(computed, Algorithm.MULTIPART_MD5, parts=3)
    assert etag is not None
    claim = Checksum(Algorithm.MULTIPART_MD5, etag.value, Provenance.SOURCE, parts=3)
    tier, matched = source_evidence(computed, [claim], [], len(DATA), None, None)
    assert (tier, matched) == (TIER_MULTIPART, ["multipart-md5-3 (source-reported)"])
    wrong = multipart_md5([hashlib.md5(b"x").digest()] * 3)
    with pytest.raises(ChecksumMismatch):
        source_evidence(computed, [Checksum(Algorithm.MULTIPART_MD5, wrong.value, Provenance.SOURCE, parts=3)], [],
                        len(DATA), None, None)


def test_a_manifest_digest_alone_is_tier_3() -> None:
    tier, _ = source_evidence(_computed(), [], [_as(DATA, Algorithm.SHA256, Provenance.MANIFEST)], len(DATA), None,
                              None)
    assert tier == TIER_MANIFEST


def test_a_manifest_digest_that_cannot_be_compared_fails_closed() -> None:
    crc32 = Checksum(Algorithm.CRC32, b"\x00\x00\x00\x01", Provenance.MANIFEST)   # migrator does not compute CRC32
    with pytest.raises(ChecksumError, match="could not be compared"):
        source_evidence(_computed(), [], [crc32], len(DATA), None, lambda: _reread(DATA))


def test_a_second_read_is_the_last_resort_and_must_match() -> None:
    tier, matched = source_evidence(_computed(), [], [], len(DATA), None, lambda: _reread(DATA))
    assert (tier, matched) == (TIER_REREAD, ["sha256 (second-read)"])
    with pytest.raises(ChecksumMismatch, match="second read"):
        source_evidence(_computed(), [], [], len(DATA), None, lambda: _reread(OTHER))


def test_a_second_read_that_is_not_an_independent_read_is_refused() -> None:
    not_a_reread = _as(DATA, Algorithm.SHA256, Provenance.COMPUTED)
    with pytest.raises(ChecksumError, match="second read"):
        source_evidence(_computed(), [], [], len(DATA), None, lambda: not_a_reread)


def test_no_evidence_at_all_is_an_error_never_a_match() -> None:
    with pytest.raises(ChecksumError, match="no source evidence"):
        source_evidence(_computed(), [], [], len(DATA), None, None)


def test_source_claims_migrator_cannot_compute_are_no_evidence() -> None:
    sha1 = Checksum(Algorithm.SHA1, hashlib.sha1(DATA).digest(), Provenance.SOURCE)
    with pytest.raises(ChecksumError, match="no source evidence"):
        source_evidence(_computed(), [sha1], [], len(DATA), None, None)


def test_the_destination_must_report_a_matching_whole_object_digest() -> None:
    reported = [_as(DATA, Algorithm.MD5, Provenance.DESTINATION), _as(DATA, Algorithm.CRC32C, Provenance.DESTINATION)]
    assert destination_evidence(_computed(), reported, len(DATA), len(DATA)) == [
        "md5 (destination-reported)", "crc32c (destination-reported)"]


def test_a_destination_that_reports_other_bytes_or_another_size_fails() -> None:
    with pytest.raises(ChecksumMismatch):
        destination_evidence(_computed(), [_as(OTHER, Algorithm.MD5, Provenance.DESTINATION)], len(DATA), len(DATA))
    with pytest.raises(ChecksumMismatch, match="stored"):
        destination_evidence(_computed(), [_as(DATA, Algorithm.MD5, Provenance.DESTINATION)], len(DATA),
                             len(DATA) - 1)


def test_a_destination_that_reports_only_composite_or_unknown_digests_fails_closed() -> None:
    composite = Checksum(Algorithm.MULTIPART_MD5, b"\x01" * 16, Provenance.DESTINATION, parts=2)
    with pytest.raises(ChecksumError, match="no whole-object checksum"):
        destination_evidence(_computed(), [composite], len(DATA), len(DATA))
    with pytest.raises(ChecksumError, match="reported: none"):
        destination_evidence(_computed(), [], len(DATA), len(DATA))
