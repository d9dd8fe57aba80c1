"""The sandbox fault hook on the GCS emulator, seen through the real ``google-cloud-storage`` client.

Client retries are switched off per call (``retry=None``): the tests look at what one request sees.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import google_crc32c
import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption

from migrator.sandbox.faults import FaultPlan, clear_faults, get_faults, set_faults
from migrator.sandbox.gcs.server import GcsEmulator

_names = itertools.count()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DATA = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(512))   # 16 KiB


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with GcsEmulator() as em:
        yield em


@pytest.fixture(scope="module")
def client(emulator: GcsEmulator) -> storage.Client:
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]  # google-auth is untyped here
    return storage.Client(project="p", credentials=anonymous, client_options={"api_endpoint": emulator.url})


@pytest.fixture
def bucket(client: storage.Client, emulator: GcsEmulator) -> Iterator[storage.Bucket]:
    b = client.create_bucket(f"faults-{next(_names)}")
    yield b
    clear_faults(emulator.url)


def stats(url: str) -> dict[str, Any]:
    with _OPENER.open(url + "/_emulator/stats", timeout=10) as resp:
        value = json.loads(resp.read())
    assert isinstance(value, dict)
    return value


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(int(google_crc32c.value(data)).to_bytes(4, "big")).decode()


def test_503_reaches_the_client_and_is_counted(bucket: storage.Bucket, emulator: GcsEmulator) -> None:
    blob = bucket.blob("o")
    blob.upload_from_string(DATA, retry=None)
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"503-slowdown"}),
                                       operations=frozenset({"objects.get.media"})))
    for _ in range(2):
        with pytest.raises(gexc.ServiceUnavailable):
            blob.download_as_bytes(retry=None)
    assert bucket.get_blob("o", retry=None) is not None   # metadata reads are not in the plan
    snapshot = get_faults(emulator.url)
    assert snapshot["injected"] == {"503-slowdown": 2}
    assert snapshot["requests"]["objects.get.media"] == 2
    counted = stats(emulator.url)
    assert counted["requests"]["objects.get.media"] >= 2 and counted["errors"]["backendError"] >= 2
    clear_faults(emulator.url)
    assert blob.download_as_bytes(retry=None) == DATA


def test_injected_429_and_500_reach_the_sdk_as_their_errors_and_store_nothing(bucket: storage.Bucket,
                                                                             emulator: GcsEmulator) -> None:
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"429"}),
                                       operations=frozenset({"objects.insert"})))
    with pytest.raises(gexc.TooManyRequests):
        bucket.blob("o").upload_from_string(DATA, retry=None)
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"500"}),
                                       operations=frozenset({"objects.insert"})))
    with pytest.raises(gexc.InternalServerError):
        bucket.blob("o").upload_from_string(DATA, retry=None)
    clear_faults(emulator.url)
    assert list(bucket.list_blobs(retry=None)) == []


def test_flipped_upload_is_rejected_by_the_declared_checksum(bucket: storage.Bucket,
                                                              emulator: GcsEmulator) -> None:
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"flip-put"}), seed=11))
    # A multipart upload carries the client's crc32c (or md5) in its metadata: the service checks it.
    with pytest.raises(gexc.BadRequest):
        bucket.blob("crc").upload_from_string(DATA, checksum="crc32c", retry=None)
    with pytest.raises(gexc.BadRequest):
        bucket.blob("md5").upload_from_string(DATA, checksum="md5", retry=None)
    blob = bucket.blob("declared")
    blob.crc32c = crc32c_b64(DATA)
    with pytest.raises(gexc.BadRequest):
        blob.upload_from_string(DATA, checksum=None, retry=None)
    # Without a declared checksum the flipped bytes are stored: only a client-side check can notice.
    bucket.blob("unchecked").upload_from_string(DATA, checksum=None, retry=None)
    clear_faults(emulator.url)
    assert [b.name for b in bucket.list_blobs(retry=None)] == ["unchecked"]
    stored = bucket.blob("unchecked").download_as_bytes(checksum=None, retry=None)
    assert len(stored) == len(DATA) and stored != DATA
    assert get_faults(emulator.url)["injected"] == {}


def test_flipped_resumable_chunk_is_rejected_by_the_final_hash(bucket: storage.Bucket,
                                                              emulator: GcsEmulator) -> None:
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"flip-put"}), seed=5,
                                       operations=frozenset({"objects.insert.chunk"})))
    blob = bucket.blob("resumable", chunk_size=256 * 1024)
    # No size given: a resumable upload in two chunks; the client sends X-Goog-Hash with the last one.
    with pytest.raises(gexc.BadRequest):
        blob.upload_from_file(io.BytesIO(DATA * 20), checksum="crc32c", retry=None)
    assert get_faults(emulator.url)["injected"] == {"flip-put": 2}
    clear_faults(emulator.url)
    assert list(bucket.list_blobs(retry=None)) == []


def test_flipped_and_truncated_downloads(bucket: storage.Bucket, emulator: GcsEmulator) -> None:
    blob = bucket.blob("o")
    blob.upload_from_string(DATA, retry=None)
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"flip-get"}), seed=2))
    with pytest.raises(DataCorruption):
        blob.download_as_bytes(checksum="crc32c", retry=None)
    raw = blob.download_as_bytes(checksum=None, retry=None)
    assert len(raw) == len(DATA) and sum(bin(a ^ b).count("1") for a, b in zip(raw, DATA, strict=True)) == 1
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"truncate"}), seed=2))
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                        DataCorruption)):
        blob.download_as_bytes(checksum=None, retry=None)
    clear_faults(emulator.url)
    assert blob.download_as_bytes(retry=None) == DATA


def test_resets(bucket: storage.Bucket, emulator: GcsEmulator) -> None:
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"reset-before"}),
                                       operations=frozenset({"objects.insert"})))
    with pytest.raises(requests.exceptions.ConnectionError):
        bucket.blob("before").upload_from_string(DATA, retry=None)
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"reset-after"}),
                                       operations=frozenset({"objects.insert"})))
    with pytest.raises(requests.exceptions.ConnectionError):
        bucket.blob("after").upload_from_string(DATA, retry=None)
    set_faults(emulator.url, FaultPlan(rate=1.0, kinds=frozenset({"timeout"}), timeout_ms=1,
                                       operations=frozenset({"objects.get"})))
    with pytest.raises(requests.exceptions.ConnectionError):
        bucket.get_blob("after", retry=None)
    clear_faults(emulator.url)
    # reset-after did the operation: the object is there although its answer was lost.
    assert [b.name for b in bucket.list_blobs(retry=None)] == ["after"]


def test_control_path_and_reset(emulator: GcsEmulator) -> None:
    snapshot = set_faults(emulator.url, FaultPlan(latency_ms=0, rate=0.5, kinds=frozenset({"500"}), seed=1))
    assert snapshot["endpoint"] == "gcs" and snapshot["plan"]["rate"] == 0.5 and snapshot["active"]
    req = urllib.request.Request(emulator.url + "/_emulator/faults", data=b'{"rate": 2}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        _OPENER.open(req, timeout=10)
    assert info.value.code == 400
    assert get_faults(emulator.url)["plan"]["rate"] == 0.5   # a bad plan leaves the old one in place
    with _OPENER.open(urllib.request.Request(emulator.url + "/_emulator/reset", data=b"", method="POST"),
                      timeout=10) as resp:
        assert resp.status == 204
    after = get_faults(emulator.url)
    assert after["active"] is False and after["requests"] == {}
