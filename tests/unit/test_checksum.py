"""Known answers for the one-pass hasher and multipart arithmetic, from shared/vectors/checksums.json."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from migrator.checksum import (
    Algorithm,
    Checksum,
    MultiHasher,
    Provenance,
    find,
    from_b64,
    parse_oci_multipart_md5,
    parse_s3_etag,
)
from migrator.errors import ChecksumError
from tests.conftest import found

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "checksums.json").read_text())


def _bytes(obj: dict[str, Any]) -> bytes:
    if obj["name"] == "ascii-123456789":
        return b"123456789"
    if obj["name"] == "empty":
        return b""
    # det-*: SHA-256(b'migrator-vector-' || uint64_be(i)) concatenated, truncated to size.
    out = bytearray()
    i = 0
    while len(out) < obj["size"]:
        out += hashlib.sha256(b"migrator-vector-" + struct.pack(">Q", i)).digest()
        i += 1
    return bytes(out[: obj["size"]])


@pytest.mark.parametrize("obj", VECTORS["objects"], ids=lambda o: o["name"])
def test_one_pass_digests_and_multipart_etags(obj: dict[str, Any]) -> None:
    data = _bytes(obj)
    parts = [min(obj["part_size"], obj["size"] - i * obj["part_size"]) for i in range(obj["parts"])]
    hasher = MultiHasher(crc64nvme=True, part_sizes=parts)
    for off in range(0, len(data), 1_000_003):  # odd chunking crosses part boundaries
        hasher.update(data[off:off + 1_000_003])
    got = hasher.digests()
    assert found(got, Algorithm.MD5).hex == obj["md5_hex"]
    assert found(got, Algorithm.SHA256).hex == obj["sha256_hex"]
    assert found(got, Algorithm.CRC32C).b64 == obj["crc32c_base64_be"]
    assert found(got, Algorithm.CRC64NVME).b64 == obj["crc64nvme_base64_be"]
    multipart = find(got, Algorithm.MULTIPART_MD5, parts=obj["parts"])
    assert multipart is not None
    assert multipart.matches(parse_s3_etag(obj["s3_multipart_etag"], Provenance.SOURCE))
    assert multipart.matches(parse_oci_multipart_md5(obj["oci_opc_multipart_md5"], Provenance.DESTINATION))


def test_incomparable_values_raise_never_match() -> None:
    md5 = from_b64(Algorithm.MD5, "JfnnlDI7RTiF9RgfG2JNCw==", Provenance.COMPUTED)
    crc = from_b64(Algorithm.CRC32C, "4waSgw==", Provenance.SOURCE)
    with pytest.raises(ChecksumError):
        md5.matches(crc)
    # A multipart ETag is not an MD5, even when its hex would match.
    etag = parse_s3_etag('"25f9e794323b453885f5181f1b624d0b-1"')
    assert etag.algorithm == Algorithm.MULTIPART_MD5 and etag.parts == 1
    with pytest.raises(ChecksumError):
        md5.matches(etag)
    with pytest.raises(ChecksumError):
        Checksum(Algorithm.MD5, b"\x00" * 3, Provenance.SOURCE).matches(md5)
    with pytest.raises(ChecksumError):
        parse_s3_etag("not-an-etag")
