"""The GCS emulator, driven through the real ``google-cloud-storage`` client over HTTP on 127.0.0.1.

Each test checks a documented GCS behaviour that migrator relies on and that fake-gcs-server gets wrong
or lacks (pinned deletes, noncurrent generations, soft delete, holds, retention, batch, checksums).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import itertools
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import google_crc32c
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from migrator.sandbox.gcs.server import GcsEmulator, main

MiB = 1024 * 1024
SEVEN_DAYS = 7 * 24 * 3600
_names = itertools.count()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32c_b64(data: bytes) -> str:
    return b64(int(google_crc32c.value(data)).to_bytes(4, "big"))


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def det_bytes(size: int, seed: bytes = b"gcs") -> bytes:
    """Deterministic, incompressible-looking bytes (no randomness in tests)."""
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def reason(exc: gexc.GoogleAPICallError) -> str:
    return str(exc.errors[0]["reason"])


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    em = GcsEmulator().start()
    try:
        yield em
    finally:
        em.stop()


def anonymous() -> AnonymousCredentials:
    # google-auth's AnonymousCredentials.__init__ has no annotations.
    return AnonymousCredentials()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def client(emulator: GcsEmulator) -> storage.Client:
    return storage.Client(project="p", credentials=anonymous(),
                          client_options={"api_endpoint": emulator.url})


def new_bucket(client: storage.Client, *, versioned: bool = False, soft_delete: int | None = None,
               retention: int | None = None, default_hold: bool = False) -> storage.Bucket:
    b = client.bucket(f"bkt-{next(_names)}")
    b.versioning_enabled = versioned
    if soft_delete is not None:
        b.soft_delete_policy.retention_duration_seconds = soft_delete
    if retention is not None:
        b.retention_period = retention
    if default_hold:
        b.default_event_based_hold = True
    return client.create_bucket(b)


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw request (urllib sends no Accept-Encoding): for what the client does not expose."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def versions(client: storage.Client, bucket: str, **kw: object) -> list[tuple[str, int]]:
    return [(b.name, b.generation) for b in client.list_blobs(bucket, versions=True, **kw)]


# ---------------------------------------------------------------------------------------------- buckets

def test_bucket_resource_reports_documented_defaults(client: storage.Client) -> None:
    b = new_bucket(client)
    got = client.get_bucket(b.name)
    assert got.versioning_enabled is False
    assert got.soft_delete_policy.retention_duration_seconds == SEVEN_DAYS
    assert got.soft_delete_policy.effective_time is not None
    assert got.retention_period is None

    got.versioning_enabled = True
    got.soft_delete_policy.retention_duration_seconds = 0
    got.patch()
    again = client.get_bucket(b.name)
    assert again.versioning_enabled is True
    assert again.soft_delete_policy.retention_duration_seconds == 0
    assert again.metageneration == 2

    # Documented range: 0, or 7 to 90 days.
    again.soft_delete_policy.retention_duration_seconds = 3600
    with pytest.raises(gexc.BadRequest):
        again.patch()
    with pytest.raises(gexc.Conflict):
        client.create_bucket(b.name)
    with pytest.raises(gexc.NotFound):
        client.get_bucket("no-such-bucket")


def test_bucket_delete_refuses_a_non_empty_bucket(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True)
    blob = b.blob("o")
    blob.upload_from_string(b"x")
    b.blob("o").delete()  # noncurrent now: still counts (blob.delete() would name its generation)
    with pytest.raises(gexc.Conflict):
        b.delete()
    b.blob("o", generation=blob.generation).delete()
    b.delete()  # only soft-deleted generations left
    with pytest.raises(gexc.NotFound):
        client.get_bucket(b.name)


def test_list_buckets_pages(client: storage.Client) -> None:
    made = {new_bucket(client).name for _ in range(3)}
    pages = client.list_buckets(page_size=2).pages
    seen = [b.name for page in pages for b in page]
    assert made <= set(seen)
    assert len(seen) == len(set(seen))


# ---------------------------------------------------------------------------------------------- uploads

def test_multipart_upload_reports_hashes_and_metadata(client: storage.Client) -> None:
    b = new_bucket(client)
    data = det_bytes(1000)
    blob = b.blob("dir/one two.bin")
    blob.metadata = {"subject": "u1"}
    blob.upload_from_string(data, content_type="application/x-test")
    assert (blob.size, blob.md5_hash, blob.crc32c) == (1000, md5_b64(data), crc32c_b64(data))
    assert blob.metageneration == 1 and blob.generation is not None and blob.generation > 0
    got = b.get_blob("dir/one two.bin")
    assert got is not None
    assert (got.content_type, got.metadata, got.etag) == ("application/x-test", {"subject": "u1"}, blob.etag)
    assert got.download_as_bytes() == data


def test_media_upload(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    data = b"media bytes"
    status, _, body = http("POST", f"{emulator.url}/upload/storage/v1/b/{b.name}/o?uploadType=media&name=m/1",
                           data, {"Content-Type": "text/plain", "X-Goog-Hash": f"crc32c={crc32c_b64(data)}"})
    assert status == 200
    resource = json.loads(body)
    assert (resource["name"], resource["size"], resource["md5Hash"]) == ("m/1", "11", md5_b64(data))
    assert b.blob("m/1").download_as_bytes() == data


def test_resumable_upload_of_24_mib_in_8_mib_chunks(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    data = det_bytes(24 * MiB + 123)
    before = emulator.stats()["requests"].get("objects.insert.chunk", 0)
    blob = b.blob("big", chunk_size=8 * MiB)
    blob.upload_from_string(data)
    assert emulator.stats()["requests"]["objects.insert.chunk"] - before == 4
    assert (blob.size, blob.md5_hash, blob.crc32c) == (len(data), md5_b64(data), crc32c_b64(data))
    assert b.blob("big").download_as_bytes() == data


def test_resumable_upload_of_unknown_size(client: storage.Client) -> None:
    b = new_bucket(client)
    data = det_bytes(2 * 256 * 1024 + 7)
    blob = b.blob("stream", chunk_size=256 * 1024)
    blob.upload_from_file(io.BytesIO(data))  # no size: Content-Range totals are "*" until the end
    assert blob.size == len(data)
    assert b.blob("stream").download_as_bytes() == data


def test_resumable_session_reports_progress_with_308(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    status, headers, _ = http("POST", f"{emulator.url}/upload/storage/v1/b/{b.name}/o?uploadType=resumable",
                              json.dumps({"name": "r"}).encode(), {"Content-Type": "application/json"})
    assert status == 200
    location = headers["location"]
    assert location.startswith(emulator.url) and "upload_id=" in location
    first = det_bytes(256 * 1024)
    status, headers, _ = http("PUT", location, first, {"Content-Range": f"bytes 0-{len(first) - 1}/*"})
    assert (status, headers["range"]) == (308, f"bytes=0-{len(first) - 1}")
    status, headers, _ = http("PUT", location, b"", {"Content-Range": "bytes */*"})
    assert (status, headers["range"]) == (308, f"bytes=0-{len(first) - 1}")
    status, _, body = http("PUT", location, b"end", {"Content-Range": f"bytes {len(first)}-{len(first) + 2}/"
                                                                      f"{len(first) + 3}"})
    assert status == 200 and json.loads(body)["size"] == str(len(first) + 3)
    assert b.blob("r").download_as_bytes() == first + b"end"


def test_wrong_client_hashes_are_rejected(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    data = b"the real bytes"
    bad_crc = b.blob("bad-crc")
    bad_crc.crc32c = crc32c_b64(b"other bytes")
    with pytest.raises(gexc.BadRequest):
        bad_crc.upload_from_string(data, checksum=None)
    bad_md5 = b.blob("bad-md5")
    bad_md5.md5_hash = md5_b64(b"other bytes")
    with pytest.raises(gexc.BadRequest):
        bad_md5.upload_from_string(data)  # the client adds a correct crc32c; the md5 is still checked
    bad_resumable = b.blob("bad-resumable", chunk_size=256 * 1024)
    bad_resumable.md5_hash = md5_b64(b"other bytes")
    with pytest.raises(gexc.BadRequest):
        bad_resumable.upload_from_string(det_bytes(300 * 1024), checksum=None)
    status, _, body = http("POST", f"{emulator.url}/upload/storage/v1/b/{b.name}/o?uploadType=media&name=h",
                           data, {"X-Goog-Hash": f"md5={md5_b64(b'nope')}"})
    assert status == 400 and json.loads(body)["error"]["errors"][0]["reason"] == "invalid"
    assert list(client.list_blobs(b.name, versions=True)) == []
    good = b.blob("good")
    good.crc32c, good.md5_hash = crc32c_b64(data), md5_b64(data)
    good.upload_from_string(data, checksum=None)
    assert good.size == len(data)


def test_insert_preconditions(client: storage.Client) -> None:
    b = new_bucket(client)
    blob = b.blob("p")
    blob.upload_from_string(b"1", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):
        b.blob("p").upload_from_string(b"2", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):
        b.blob("p").upload_from_string(b"2", if_generation_match=blob.generation + 1)
    with pytest.raises(gexc.PreconditionFailed):
        b.blob("p").upload_from_string(b"2", if_metageneration_match=5)
    with pytest.raises(gexc.PreconditionFailed):
        b.blob("p").upload_from_string(b"2", if_generation_not_match=blob.generation)
    second = b.blob("p")
    second.upload_from_string(b"2", if_generation_match=blob.generation)
    assert second.generation > blob.generation
    assert b.blob("p").download_as_bytes() == b"2"


# ------------------------------------------------------------------------------------------------ reads

def test_generation_pinned_reads_ranges_and_headers(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client, versioned=True)
    v1, v2 = det_bytes(5000, b"v1"), det_bytes(3000, b"v2")
    first, second = b.blob("k"), b.blob("k")
    first.upload_from_string(v1)
    second.upload_from_string(v2)
    old = b.get_blob("k", generation=first.generation)
    assert old is not None and old.time_deleted is not None
    assert old.download_as_bytes() == v1
    assert b.blob("k", generation=first.generation).download_as_bytes(start=100, end=199) == v1[100:200]
    assert b.blob("k").download_as_bytes() == v2
    assert b.blob("k").download_as_bytes(start=2990) == v2[2990:]

    url = f"{emulator.url}/download/storage/v1/b/{b.name}/o/k?alt=media&generation={first.generation}"
    status, headers, body = http("GET", url, headers={"Range": "bytes=-10"})
    assert (status, body, headers["content-range"]) == (206, v1[-10:], "bytes 4990-4999/5000")
    assert headers["x-goog-generation"] == str(first.generation)
    assert headers["x-goog-metageneration"] == "1"
    assert headers["x-goog-hash"] == f"crc32c={crc32c_b64(v1)},md5={md5_b64(v1)}"
    assert headers["x-goog-stored-content-length"] == "5000"
    assert headers["x-goog-stored-content-encoding"] == "identity"
    assert headers["etag"] == old.etag
    status, _, _ = http("GET", url, headers={"Range": "bytes=9000-"})
    assert status == 416
    with pytest.raises(gexc.NotFound):
        b.blob("k", generation=12345).download_as_bytes()
    with pytest.raises(gexc.PreconditionFailed):
        b.blob("k").download_as_bytes(if_generation_match=first.generation)


def test_gzip_object_is_served_as_stored(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    plain = b"compressible " * 500
    stored = gzip.compress(plain, mtime=0)
    blob = b.blob("z.txt")
    blob.content_encoding = "gzip"
    blob.upload_from_string(stored, content_type="text/plain")
    assert blob.md5_hash == md5_b64(stored)
    assert b.blob("z.txt").download_as_bytes(raw_download=True) == stored
    assert b.blob("z.txt").download_as_bytes() == plain  # the client itself decodes Content-Encoding
    status, headers, body = http("GET", f"{emulator.url}/download/storage/v1/b/{b.name}/o/z.txt?alt=media",
                                 headers={"Accept-Encoding": "gzip"})
    assert (status, headers["content-encoding"], body) == (200, "gzip", stored)
    assert headers["x-goog-stored-content-encoding"] == "gzip"
    # Documented decompressive transcoding for a client that does not accept gzip.
    status, headers, body = http("GET", f"{emulator.url}/download/storage/v1/b/{b.name}/o/z.txt?alt=media")
    assert (status, body) == (200, plain) and "content-encoding" not in headers


# ------------------------------------------------------------------------------------------------ lists

def test_list_paging_prefix_delimiter_and_versions(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True)
    names = [f"p/{i:02d}" for i in range(25)] + ["q/a", "q/b", "top"]
    for n in names:
        b.blob(n).upload_from_string(n.encode())
    b.blob("p/00").upload_from_string(b"second generation")

    it = client.list_blobs(b.name, max_results=None, page_size=10)
    pages = [[x.name for x in page] for page in it.pages]
    assert [len(p) for p in pages] == [10, 10, 8]
    assert [n for p in pages for n in p] == sorted(names)

    it = client.list_blobs(b.name, delimiter="/", page_size=2)
    listed = [x.name for page in it.pages for x in page]
    assert listed == ["top"] and it.prefixes == {"p/", "q/"}

    assert [x.name for x in client.list_blobs(b.name, prefix="q/")] == ["q/a", "q/b"]
    assert [x.name for x in client.list_blobs(b.name, start_offset="p/23", end_offset="q/b")] == \
        ["p/23", "p/24", "q/a"]

    all_versions = versions(client, b.name, page_size=7)
    assert len(all_versions) == len(names) + 1
    assert [n for n, _ in all_versions] == sorted([*names, "p/00"])
    p00 = [g for n, g in all_versions if n == "p/00"]
    assert p00 == sorted(p00) and len(p00) == 2


def test_versions_flag_accepts_both_spellings(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client, versioned=True)
    b.blob("v").upload_from_string(b"1")
    b.blob("v").upload_from_string(b"2")
    for flag in ("true", "True"):
        status, _, body = http("GET", f"{emulator.url}/storage/v1/b/{b.name}/o?versions={flag}")
        assert status == 200 and len(json.loads(body)["items"]) == 2
    status, _, body = http("GET", f"{emulator.url}/storage/v1/b/{b.name}/o")
    assert len(json.loads(body)["items"]) == 1


# ---------------------------------------------------------------------------------------------- deletes

def test_stale_if_generation_match_on_delete_is_412(client: storage.Client) -> None:
    for versioned in (False, True):
        b = new_bucket(client, versioned=versioned)
        first = b.blob("d")
        first.upload_from_string(b"1")
        b.blob("d").upload_from_string(b"2")
        with pytest.raises(gexc.PreconditionFailed):
            b.blob("d").delete(if_generation_match=first.generation)
        assert b.blob("d").download_as_bytes() == b"2"


def test_deleting_a_noncurrent_generation_leaves_the_live_one(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True, soft_delete=0)
    first, second = b.blob("n"), b.blob("n")
    first.upload_from_string(b"old")
    second.upload_from_string(b"new")
    b.blob("n", generation=first.generation).delete()
    assert versions(client, b.name) == [("n", second.generation)]
    live = b.get_blob("n")
    assert live is not None and live.generation == second.generation and live.time_deleted is None
    assert live.download_as_bytes() == b"new"
    with pytest.raises(gexc.NotFound):
        b.blob("n", generation=first.generation).delete()


def test_delete_without_generation(client: storage.Client) -> None:
    versioned = new_bucket(client, versioned=True, soft_delete=0)
    blob = versioned.blob("x")
    blob.upload_from_string(b"x")
    versioned.blob("x").delete()
    assert versioned.get_blob("x") is None
    [kept] = list(client.list_blobs(versioned.name, versions=True))
    assert kept.generation == blob.generation and kept.time_deleted is not None
    with pytest.raises(gexc.NotFound):
        versioned.blob("x").delete()  # no live object any more

    plain = new_bucket(client, soft_delete=0)
    plain.blob("x").upload_from_string(b"x")
    plain.blob("x").delete()
    assert versions(client, plain.name) == []
    assert list(client.list_blobs(plain.name, soft_deleted=True)) == []


def test_delete_of_the_live_generation_by_number_is_permanent(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True, soft_delete=0)
    first, second = b.blob("y"), b.blob("y")
    first.upload_from_string(b"1")
    second.upload_from_string(b"2")
    b.blob("y", generation=second.generation).delete()
    assert versions(client, b.name) == [("y", first.generation)]
    assert b.get_blob("y") is None


# ------------------------------------------------------------------------------------------ soft delete

def test_soft_delete_lists_and_restores(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)  # default policy: 7 days
    blob = b.blob("s")
    blob.upload_from_string(b"keep me")
    b.blob("s").delete()
    assert list(client.list_blobs(b.name, versions=True)) == []
    [soft] = list(client.list_blobs(b.name, soft_deleted=True))
    assert soft.generation == blob.generation
    assert soft.soft_delete_time is not None and soft.hard_delete_time is not None
    assert soft.hard_delete_time - soft.soft_delete_time == timedelta(seconds=SEVEN_DAYS)
    got = b.get_blob("s", generation=blob.generation, soft_deleted=True)
    assert got is not None and got.hard_delete_time == soft.hard_delete_time
    with pytest.raises(gexc.NotFound):  # soft-deleted objects cannot be read
        b.blob("s", generation=blob.generation).download_as_bytes()
    with pytest.raises(gexc.NotFound):  # nor deleted again
        b.blob("s", generation=blob.generation).delete()

    restored = b.restore_blob("s", generation=blob.generation)
    assert restored.generation > blob.generation and restored.metageneration == 1
    assert b.blob("s").download_as_bytes() == b"keep me"
    assert restored.md5_hash == blob.md5_hash
    with pytest.raises(gexc.NotFound):
        b.restore_blob("s", generation=restored.generation)  # live, not soft-deleted


def test_restore_over_a_live_object_keeps_it_noncurrent(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True)
    first, second = b.blob("r"), b.blob("r")
    first.upload_from_string(b"1")
    second.upload_from_string(b"2")
    b.blob("r", generation=first.generation).delete()
    with pytest.raises(gexc.PreconditionFailed):
        b.restore_blob("r", generation=first.generation, if_generation_match=0)
    restored = b.restore_blob("r", generation=first.generation)
    assert versions(client, b.name) == [("r", second.generation), ("r", restored.generation)]
    assert b.blob("r").download_as_bytes() == b"1"


def test_overwrite_soft_deletes_the_replaced_object(client: storage.Client) -> None:
    b = new_bucket(client)
    first = b.blob("o")
    first.upload_from_string(b"1")
    b.blob("o").upload_from_string(b"2")
    assert [x.generation for x in client.list_blobs(b.name, soft_deleted=True)] == [first.generation]


def test_deleting_a_noncurrent_generation_soft_deletes_only_it(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True)
    first, second = b.blob("n"), b.blob("n")
    first.upload_from_string(b"old")
    second.upload_from_string(b"new")
    b.blob("n", generation=first.generation).delete()
    assert versions(client, b.name) == [("n", second.generation)]
    assert [x.generation for x in client.list_blobs(b.name, soft_deleted=True)] == [first.generation]


def test_policy_change_applies_to_later_deletes_only(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client)
    early = b.blob("early")
    early.upload_from_string(b"e")
    early.delete()
    b.soft_delete_policy.retention_duration_seconds = 0
    b.patch()
    late = b.blob("late")
    late.upload_from_string(b"l")
    late.delete()
    assert [x.name for x in client.list_blobs(b.name, soft_deleted=True)] == ["early"]
    emulator.advance_clock(SEVEN_DAYS + 1)  # past hardDeleteTime: gone for good
    assert list(client.list_blobs(b.name, soft_deleted=True)) == []


# -------------------------------------------------------------------------------- holds and retention

def test_holds_block_delete_and_overwrite(client: storage.Client) -> None:
    b = new_bucket(client, soft_delete=0)
    blob = b.blob("h")
    blob.upload_from_string(b"held")
    blob.temporary_hold = True
    blob.patch()
    assert blob.metageneration == 2 and blob.temporary_hold is True
    with pytest.raises(gexc.Forbidden) as info:
        b.blob("h").delete()
    assert reason(info.value) == "objectUnderActiveHold"
    with pytest.raises(gexc.Forbidden):
        b.blob("h", generation=blob.generation).delete()
    with pytest.raises(gexc.Forbidden):
        b.blob("h").upload_from_string(b"replacement")
    blob.temporary_hold = False
    blob.patch()
    assert blob.metageneration == 3
    b.blob("h").delete()
    assert b.get_blob("h") is None


def test_hold_on_a_noncurrent_generation_blocks_its_delete(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True)
    first = b.blob("g")
    first.upload_from_string(b"1")
    b.blob("g").upload_from_string(b"2")
    old = b.blob("g", generation=first.generation)
    old.event_based_hold = True
    old.patch()
    with pytest.raises(gexc.Forbidden) as info:
        b.blob("g", generation=first.generation).delete()
    assert reason(info.value) == "objectUnderActiveHold"


def test_default_event_based_hold(client: storage.Client) -> None:
    b = new_bucket(client, default_hold=True)
    blob = b.blob("e")
    blob.upload_from_string(b"e")
    assert blob.event_based_hold is True
    with pytest.raises(gexc.Forbidden):
        blob.delete()


def test_retention_policy_blocks_delete_until_met(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client, retention=3600, soft_delete=0)
    assert client.get_bucket(b.name).retention_period == 3600
    blob = b.blob("r")
    blob.upload_from_string(b"r")
    assert blob.retention_expiration_time == blob.time_created + timedelta(seconds=3600)
    with pytest.raises(gexc.Forbidden) as info:
        b.blob("r").delete()
    assert reason(info.value) == "retentionPolicyNotMet"
    with pytest.raises(gexc.Forbidden):
        b.blob("r").upload_from_string(b"overwrite")
    emulator.advance_clock(3601)
    b.blob("r").delete()
    assert b.get_blob("r") is None


def test_locked_retention_policy_cannot_be_reduced(client: storage.Client) -> None:
    b = new_bucket(client, retention=600)
    b.lock_retention_policy()
    got = client.get_bucket(b.name)
    assert got.retention_policy_locked is True
    got.retention_period = 60
    with pytest.raises(gexc.Forbidden):
        got.patch()
    got = client.get_bucket(b.name)
    got.retention_period = 6000
    got.patch()
    assert client.get_bucket(b.name).retention_period == 6000


def test_retention_in_a_versioned_bucket(client: storage.Client) -> None:
    b = new_bucket(client, versioned=True, retention=3600, soft_delete=0)
    blob = b.blob("v")
    blob.upload_from_string(b"v")
    b.blob("v").delete()  # documented: a live object under retention can still be made noncurrent
    assert versions(client, b.name) == [("v", blob.generation)]
    with pytest.raises(gexc.Forbidden) as info:
        b.blob("v", generation=blob.generation).delete()
    assert reason(info.value) == "retentionPolicyNotMet"


def test_releasing_an_event_based_hold_restarts_retention(client: storage.Client,
                                                           emulator: GcsEmulator) -> None:
    b = new_bucket(client, retention=60, default_hold=True, soft_delete=0)
    blob = b.blob("ebh")
    blob.upload_from_string(b"x")
    assert blob.retention_expiration_time is None
    emulator.advance_clock(120)
    blob.event_based_hold = False
    blob.patch()
    assert blob.retention_expiration_time == blob.updated + timedelta(seconds=60)
    with pytest.raises(gexc.Forbidden):
        blob.delete()


# ----------------------------------------------------------------------------------- metadata, compose

def test_patch_bumps_metageneration_and_merges_metadata(client: storage.Client) -> None:
    b = new_bucket(client)
    blob = b.blob("m")
    blob.metadata = {"a": "1", "b": "2"}
    blob.upload_from_string(b"m")
    generation = blob.generation
    blob.metadata = {"b": None, "c": "3"}
    blob.patch(if_metageneration_match=1)
    assert (blob.metadata, blob.metageneration, blob.generation) == ({"a": "1", "c": "3"}, 2, generation)
    with pytest.raises(gexc.PreconditionFailed):
        blob.patch(if_metageneration_match=1)


def test_compose_makes_a_composite_without_md5(client: storage.Client) -> None:
    b = new_bucket(client)
    parts = [det_bytes(1000, b"a"), det_bytes(2000, b"b")]
    for i, data in enumerate(parts):
        b.blob(f"part{i}").upload_from_string(data)
    dest = b.blob("whole")
    dest.compose([b.blob("part0"), b.blob("part1")])
    whole = b"".join(parts)
    assert dest.component_count == 2 and dest.md5_hash is None
    assert dest.crc32c == crc32c_b64(whole) and dest.size == len(whole)
    got = b.get_blob("whole")
    assert got is not None and got.md5_hash is None and got.component_count == 2
    assert got.download_as_bytes() == whole  # the client checks crc32c alone
    again = b.blob("twice")
    again.compose([b.blob("whole"), b.blob("part0")])
    assert again.component_count == 3


def test_copy_keeps_the_bytes_and_hashes(client: storage.Client) -> None:
    b = new_bucket(client)
    src = b.blob("src")
    src.upload_from_string(b"copy me", content_type="text/plain")
    dst = b.copy_blob(src, b, "dst")
    assert (dst.md5_hash, dst.crc32c, dst.content_type) == (src.md5_hash, src.crc32c, "text/plain")
    assert dst.generation != src.generation
    rewritten = b.blob("rw")
    rewritten.rewrite(src)
    assert b.blob("rw").download_as_bytes() == b"copy me"


# ------------------------------------------------------------------------------------------------ batch

def test_batch_deletes_report_each_result(client: storage.Client, emulator: GcsEmulator) -> None:
    b = new_bucket(client, versioned=True, soft_delete=0)
    gens = {}
    for i in range(4):
        blob = b.blob(f"b{i}")
        blob.upload_from_string(b"x")
        gens[blob.name] = blob.generation
    b.blob("b3").upload_from_string(b"newer")
    before = emulator.stats()["requests"].get("objects.delete", 0)
    with client.batch(raise_exception=False) as batch:
        b.blob("b0", generation=gens["b0"]).delete()
        b.blob("b1", generation=gens["b1"]).delete(if_generation_match=gens["b1"])
        b.blob("b2").delete(if_generation_match=gens["b2"] + 1)   # stale: 412
        b.blob("missing").delete()                                  # 404
        b.blob("b3", generation=gens["b3"]).delete()               # the noncurrent one only
    assert [r.status_code for r in batch._responses] == [204, 204, 412, 404, 204]
    assert emulator.stats()["requests"]["objects.delete"] - before == 5
    assert [n for n, _ in versions(client, b.name)] == ["b2", "b3"]
    assert b.blob("b3").download_as_bytes() == b"newer"


def test_batch_patch_and_raise(client: storage.Client) -> None:
    b = new_bucket(client)
    for i in range(3):
        b.blob(f"p{i}").upload_from_string(b"x")
    with client.batch():
        for i in range(3):
            blob = b.blob(f"p{i}")
            blob.metadata = {"i": str(i)}
            blob.patch()
    assert [x.metadata for x in client.list_blobs(b.name)] == [{"i": "0"}, {"i": "1"}, {"i": "2"}]
    with pytest.raises(gexc.NotFound), client.batch():
        b.blob("p0").delete()
        b.blob("nope").delete()
    assert b.get_blob("p0") is None  # the calls before the failure still ran


def test_batch_rejects_more_than_100_calls(client: storage.Client) -> None:
    b = new_bucket(client)
    with pytest.raises(gexc.BadRequest), client.batch():
        for i in range(101):
            b.blob(f"n{i}").delete()


def test_concurrent_writes_get_strictly_increasing_generations(client: storage.Client,
                                                                 emulator: GcsEmulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    b = new_bucket(client, versioned=True, soft_delete=0)
    before = emulator.stats()["requests"].get("objects.insert", 0)

    def put(i: int) -> int:
        blob = b.blob("hot")
        blob.upload_from_string(str(i).encode())
        assert blob.generation is not None
        return int(blob.generation)

    with ThreadPoolExecutor(8) as pool:
        gens = list(pool.map(put, range(64)))
    assert len(set(gens)) == 64
    listed = [g for _, g in versions(client, b.name)]
    assert listed == sorted(gens)
    live = b.get_blob("hot")
    assert live is not None and live.generation == max(gens)
    assert emulator.stats()["requests"]["objects.insert"] - before == 64


# ---------------------------------------------------------------------------------------------- control

def test_errors_use_the_documented_body(emulator: GcsEmulator) -> None:
    status, _, body = http("GET", f"{emulator.url}/storage/v1/b/missing-bucket/o/x")
    assert status == 404
    err = json.loads(body)["error"]
    assert err["code"] == 404 and err["errors"][0]["reason"] == "notFound" and err["message"]


def test_stats_and_reset() -> None:
    with GcsEmulator() as em:
        c = storage.Client(project="p", credentials=anonymous(), client_options={"api_endpoint": em.url})
        b = c.create_bucket("stats-bucket")
        b.blob("a").upload_from_string(b"a")
        status, _, body = http("GET", f"{em.url}/_emulator/stats")
        stats = json.loads(body)
        assert status == 200 and stats["requests"] == {"buckets.insert": 1, "objects.insert": 1}
        assert stats["total"] == 2
        assert http("POST", f"{em.url}/_emulator/reset")[0] == 204
        assert em.stats() == {"requests": {}, "errors": {}, "total": 0}
        with pytest.raises(gexc.NotFound):
            c.get_bucket("stats-bucket")


def test_refuses_non_loopback_host() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--host", "0.0.0.0"])
    assert info.value.code == 2
    with pytest.raises(ValueError, match="loopback"):
        GcsEmulator(host="0.0.0.0")


def test_runs_as_a_process(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "migrator.sandbox.gcs_emulator", "--host", "127.0.0.1",
                             "--port", "0", "--ready-file", str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():  # readiness probe, bounded
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(ready.read_text())}"
        c = storage.Client(project="p", credentials=anonymous(), client_options={"api_endpoint": url})
        c.create_bucket("proc-bucket").blob("x").upload_from_string(b"x")
        assert [b.name for b in c.list_blobs("proc-bucket")] == ["x"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
