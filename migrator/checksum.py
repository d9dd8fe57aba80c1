"""Checksums with provenance, a one-pass multi-hasher, and multipart ETag arithmetic.

Fail closed: comparing values that are not comparable (different algorithms, a composite value
against a whole-object one) raises ChecksumError. It never answers "equal".
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import google_crc32c

from migrator.errors import ChecksumError


class Algorithm(StrEnum):
    MD5 = "md5"
    SHA256 = "sha256"
    SHA1 = "sha1"
    CRC32 = "crc32"
    CRC32C = "crc32c"
    CRC64NVME = "crc64nvme"
    # MD5 of the concatenated binary part MD5s, plus the part count: S3 multipart ETag, OCI opc-multipart-md5.
    MULTIPART_MD5 = "multipart-md5"


class Provenance(StrEnum):
    COMPUTED = "computed"            # hashed by migrator over the bytes it streamed
    SOURCE = "source-reported"       # declared by the source cloud for the bytes it stores
    DESTINATION = "destination-reported"  # reported by the destination for the bytes it stored
    MANIFEST = "manifest"            # declared by the system of record, via the manifest
    REREAD = "second-read"           # computed over an independent second read of the source


@dataclass(frozen=True)
class Checksum:
    algorithm: Algorithm
    value: bytes
    provenance: Provenance
    # For composite values (multipart MD5, S3 composite SHA/CRC "-N"): the part count. None = whole object.
    parts: int | None = None

    @property
    def hex(self) -> str:
        return self.value.hex()

    @property
    def b64(self) -> str:
        return base64.b64encode(self.value).decode("ascii")

    @property
    def is_whole_object(self) -> bool:
        return self.parts is None

    def comparable(self, other: Checksum) -> bool:
        return self.algorithm == other.algorithm and self.parts == other.parts

    def matches(self, other: Checksum) -> bool:
        """True when equal, False when comparable and different; raises when incomparable."""
        if not self.comparable(other):
            raise ChecksumError(
                f"cannot compare {self.describe()} ({self.provenance.value}) with "
                f"{other.describe()} ({other.provenance.value})")
        if len(self.value) != len(other.value):
            raise ChecksumError(f"malformed {self.algorithm.value} value length")
        return self.value == other.value

    def describe(self) -> str:
        suffix = f"-{self.parts}" if self.parts is not None else ""
        return f"{self.algorithm.value}:{self.hex}{suffix}"

    def as_record(self) -> dict[str, object]:
        out: dict[str, object] = {"algorithm": self.algorithm.value, "hex": self.hex,
                                  "provenance": self.provenance.value}
        if self.parts is not None:
            out["parts"] = self.parts
        return out


_LENGTHS = {Algorithm.MD5: 16, Algorithm.SHA256: 32, Algorithm.SHA1: 20, Algorithm.CRC32: 4,
            Algorithm.CRC32C: 4, Algorithm.CRC64NVME: 8, Algorithm.MULTIPART_MD5: 16}


def from_b64(algorithm: Algorithm, text: str, provenance: Provenance, parts: int | None = None) -> Checksum:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise ChecksumError(f"malformed base64 {algorithm.value} value {text!r}") from exc
    return _checked(algorithm, raw, provenance, parts)


def from_hex(algorithm: Algorithm, text: str, provenance: Provenance, parts: int | None = None) -> Checksum:
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise ChecksumError(f"malformed hex {algorithm.value} value {text!r}") from exc
    return _checked(algorithm, raw, provenance, parts)


def _checked(algorithm: Algorithm, raw: bytes, provenance: Provenance, parts: int | None) -> Checksum:
    if len(raw) != _LENGTHS[algorithm]:
        raise ChecksumError(f"{algorithm.value} value has {len(raw)} bytes, want {_LENGTHS[algorithm]}")
    return Checksum(algorithm, raw, provenance, parts)


_ETAG = re.compile(r'^"?([0-9a-fA-F]{32})(?:-([0-9]+))?"?$')


def parse_s3_etag(etag: str, provenance: Provenance = Provenance.SOURCE) -> Checksum:
    """An S3 ETag as evidence. Multipart ETags become MULTIPART_MD5 with a part count, never MD5.

    Whether a single-part ETag is an MD5 at all depends on encryption: the caller decides that.
    """
    m = _ETAG.match(etag.strip())
    if not m:
        raise ChecksumError(f"ETag {etag!r} is not an MD5 or multipart MD5")
    if m.group(2) is None:
        return from_hex(Algorithm.MD5, m.group(1), provenance)
    return from_hex(Algorithm.MULTIPART_MD5, m.group(1), provenance, parts=int(m.group(2)))


def parse_oci_multipart_md5(text: str, provenance: Provenance) -> Checksum:
    b64, sep, count = text.rpartition("-")
    if not sep or not count.isdigit():
        raise ChecksumError(f"opc-multipart-md5 {text!r} has no part count")
    return from_b64(Algorithm.MULTIPART_MD5, b64, provenance, parts=int(count))


def crc32c_bytes(data: bytes) -> bytes:
    return int(google_crc32c.value(bytes(data))).to_bytes(4, "big")


def md5_and_crc32c(data: bytes, known: Iterable[Checksum] = ()) -> tuple[bytes, bytes]:
    """The body's MD5 and CRC32C for a one-request write: taken from ``known`` (digests computed over these
    same bytes as they were read) when present, else computed."""
    known = tuple(known)
    md5 = find(known, Algorithm.MD5)
    crc = find(known, Algorithm.CRC32C)
    return (md5.value if md5 else hashlib.md5(data).digest(),
            crc.value if crc else crc32c_bytes(data))


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def multipart_md5(part_md5s: Sequence[bytes], provenance: Provenance = Provenance.COMPUTED) -> Checksum:
    return Checksum(Algorithm.MULTIPART_MD5, hashlib.md5(b"".join(part_md5s)).digest(), provenance,
                    parts=len(part_md5s))


def _crc64nvme(data: bytes, previous: int) -> int:
    from awscrt import checksums  # botocore[crt]; imported only when a source declares CRC64NVME

    return int(checksums.crc64nvme(data, previous))


class MultiHasher:
    """MD5, SHA-256 and CRC32C in one pass (CRC64NVME on request), plus part MD5s at given boundaries.

    ``part_sizes`` lets the S3 multipart ETag be recomputed from the stream (evidence tier 2).
    """

    def __init__(self, *, crc64nvme: bool = False, part_sizes: Sequence[int] | None = None) -> None:
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self._crc32c = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        self._crc64: int | None = 0 if crc64nvme else None
        self.size = 0
        self._parts = list(part_sizes) if part_sizes else None
        self._part_md5s: list[bytes] = []
        self._part_hasher = hashlib.md5()
        self._part_left = self._parts[0] if self._parts else 0

    def update(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)  # google_crc32c wants bytes, not memoryview
        self._md5.update(data)
        self._sha256.update(data)
        self._crc32c.update(data)  # type: ignore[no-untyped-call]
        if self._crc64 is not None:
            self._crc64 = _crc64nvme(data, self._crc64)
        self.size += len(data)
        if self._parts is not None:
            self._update_parts(self._parts, data)

    def _update_parts(self, parts: list[int], data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._part_left <= 0:
                raise ChecksumError("stream is longer than the declared part sizes")
            take = min(self._part_left, len(view))
            self._part_hasher.update(view[:take])
            self._part_left -= take
            view = view[take:]
            if self._part_left == 0:
                self._part_md5s.append(self._part_hasher.digest())
                self._part_hasher = hashlib.md5()
                idx = len(self._part_md5s)
                self._part_left = parts[idx] if idx < len(parts) else 0

    def digests(self) -> list[Checksum]:
        out = [
            Checksum(Algorithm.MD5, self._md5.digest(), Provenance.COMPUTED),
            Checksum(Algorithm.SHA256, self._sha256.digest(), Provenance.COMPUTED),
            Checksum(Algorithm.CRC32C, bytes(self._crc32c.digest()), Provenance.COMPUTED),  # type: ignore[no-untyped-call]
        ]
        if self._crc64 is not None:
            out.append(Checksum(Algorithm.CRC64NVME, self._crc64.to_bytes(8, "big"), Provenance.COMPUTED))
        if self._parts is not None:
            rest = self._parts[len(self._part_md5s):]
            if rest and not any(rest) and self._part_left == 0:
                # Declared empty parts (an empty object uploaded as one part) hash the empty string.
                self._part_md5s.extend(hashlib.md5(b"").digest() for _ in rest)
            if len(self._part_md5s) != len(self._parts):
                raise ChecksumError("stream ended before the declared part sizes")
            out.append(multipart_md5(self._part_md5s))
        return out


def find(checksums: Iterable[Checksum], algorithm: Algorithm, *, parts: int | None = None) -> Checksum | None:
    for c in checksums:
        if c.algorithm == algorithm and c.parts == parts:
            return c
    return None
