"""Decide whether a copy is VERIFIED: the computed digests must match the source's own evidence and
what the destination reports. Every check fails closed.

Source evidence tiers, strongest first:
  1 "source-checksum"   a whole-object checksum the source declares (S3 additional checksums, CRC64NVME,
                        a single-part MD5 ETag on a plaintext/SSE-S3 object, GCS crc32c/md5Hash, OCI MD5/CRC32C)
  2 "multipart-etag"    the S3 multipart ETag recomputed from the stream with the part sizes from HEAD
  3 "manifest"          a digest declared by the manifest
  4 "second-read"       a second, independent read whose SHA-256 matches
Every piece of evidence that is present must match; the tier recorded is the strongest one present.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migrator.checksum import Algorithm, Checksum, Provenance, find
from migrator.errors import ChecksumError, ChecksumMismatch

TIER_SOURCE = "source-checksum"
TIER_MULTIPART = "multipart-etag"
TIER_MANIFEST = "manifest"
TIER_REREAD = "second-read"

# Algorithms migrator computes while streaming.
COMPUTED_ALGORITHMS = frozenset({Algorithm.MD5, Algorithm.SHA256, Algorithm.CRC32C, Algorithm.CRC64NVME})


@dataclass(frozen=True)
class Evidence:
    tier: str
    source: tuple[str, ...]        # descriptions of the source-side checks that matched
    destination: tuple[str, ...]   # descriptions of the destination-side checks that matched


def _match_all(computed: Sequence[Checksum], claims: Sequence[Checksum], what: str) -> list[str]:
    """Compare every claim that migrator can compare; raise on any mismatch. Returns what matched."""
    matched = []
    for claim in claims:
        mine = find(computed, claim.algorithm, parts=claim.parts)
        if mine is None:
            continue
        if not mine.matches(claim):
            raise ChecksumMismatch(
                f"{what} {claim.algorithm.value} {claim.describe()} != computed {mine.describe()}")
        matched.append(f"{claim.algorithm.value}{'-' + str(claim.parts) if claim.parts else ''}"
                       f" ({claim.provenance.value})")
    return matched


def source_evidence(computed: Sequence[Checksum], source_claims: Sequence[Checksum],
                    manifest_claims: Sequence[Checksum], size: int, declared_size: int | None,
                    reread: Callable[[], Checksum] | None) -> tuple[str, list[str]]:
    """Return (tier, matched descriptions) or raise ChecksumError/ChecksumMismatch."""
    if declared_size is not None and declared_size != size:
        raise ChecksumMismatch(f"manifest size {declared_size} != bytes read {size}")
    whole = [c for c in source_claims if c.is_whole_object and c.algorithm in COMPUTED_ALGORITHMS]
    multipart = [c for c in source_claims if c.algorithm == Algorithm.MULTIPART_MD5]
    matched_source = _match_all(computed, whole, "source")
    matched_mp = _match_all(computed, multipart, "source multipart ETag")
    matched_manifest = _match_all(computed, manifest_claims, "manifest")
    if len(matched_manifest) != len(manifest_claims):
        raise ChecksumError("a manifest digest could not be compared with the computed digests")
    if matched_source:
        return TIER_SOURCE, matched_source + matched_mp + matched_manifest
    if matched_mp:
        return TIER_MULTIPART, matched_mp + matched_manifest
    if matched_manifest:
        return TIER_MANIFEST, matched_manifest
    if reread is not None:
        second = reread()
        sha = find(computed, Algorithm.SHA256)
        if sha is None or second.provenance != Provenance.REREAD:
            raise ChecksumError("no SHA-256 to compare with the second read")
        if not sha.matches(second):
            raise ChecksumMismatch(f"second read SHA-256 {second.hex} != first read {sha.hex}")
        return TIER_REREAD, ["sha256 (second-read)"]
    raise ChecksumError("no source evidence: the source declares no comparable checksum, the manifest "
                        "declares none, and a second read was not allowed")


def destination_evidence(computed: Sequence[Checksum], reported: Sequence[Checksum], size: int,
                         reported_size: int) -> list[str]:
    """The destination must report at least one whole-object digest that equals the computed one."""
    if reported_size != size:
        raise ChecksumMismatch(f"destination stored {reported_size} bytes, source had {size}")
    whole = [c for c in reported if c.is_whole_object and c.algorithm in COMPUTED_ALGORITHMS]
    matched = _match_all(computed, whole, "destination")
    if not matched:
        raise ChecksumError("the destination reported no whole-object checksum to compare "
                            f"(reported: {', '.join(c.describe() for c in reported) or 'none'})")
    return matched
