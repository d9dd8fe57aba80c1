"""The OCI emulator, driven through the real ``oci`` SDK client over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c
import oci
import pytest

from migrator.sandbox.oci.server import OciEmulator, main
from migrator.sandbox.oci_auth import OciSandboxCredentials, write_sandbox_config

if TYPE_CHECKING:
    # The OCI SDK ships no annotations (to mypy this is Any): the name tells the reader what a value is.
    from oci.object_storage import ObjectStorageClient

NAMESPACE = "sandboxns"
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "checksums.json"
MODELS = oci.object_storage.models


def _vectors() -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in json.loads(VECTORS.read_text())["objects"]}


def det_bytes(size: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(b"migrator-vector-" + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32c_b64(data: bytes) -> str:
    return b64(int(google_crc32c.value(data)).to_bytes(4, "big"))


def md5_b64(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> OciSandboxCredentials:
    return write_sandbox_config(tmp_path_factory.mktemp("oci-creds"), NAMESPACE)


@pytest.fixture(scope="module")
def emulator(creds: OciSandboxCredentials) -> Iterator[OciEmulator]:
    emu = OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE).start()
    yield emu
    emu.stop()


def make_client(config_path: Path, url: str) -> ObjectStorageClient:
    config = oci.config.from_file(str(config_path))
    return oci.object_storage.ObjectStorageClient(config, service_endpoint=url,
                                                  retry_strategy=oci.retry.NoneRetryStrategy())


@pytest.fixture(scope="module")
def client(creds: OciSandboxCredentials, emulator: OciEmulator) -> ObjectStorageClient:
    return make_client(creds.config_path, emulator.url)


def new_bucket(client: ObjectStorageClient, versioning: str = "Disabled") -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(NAMESPACE, MODELS.CreateBucketDetails(
        name=name, compartment_id="ocid1.compartment.oc1..sandbox", versioning=versioning))
    return name


@pytest.fixture()
def bucket(client: ObjectStorageClient) -> str:
    return new_bucket(client)


@pytest.fixture()
def vbucket(client: ObjectStorageClient) -> str:
    return new_bucket(client, "Enabled")


def service_error(fn: Callable[[], object]) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as info:
        fn()
    return info.value


# ------------------------------------------------------------------------------------------ auth


def test_namespace_and_bucket(client: ObjectStorageClient, vbucket: str) -> None:
    assert client.get_namespace().data == NAMESPACE
    got = client.get_bucket(NAMESPACE, vbucket).data
    assert got.name == vbucket and got.versioning == "Enabled"
    err = service_error(lambda: client.create_bucket(NAMESPACE, MODELS.CreateBucketDetails(
        name=vbucket, compartment_id="ocid1.compartment.oc1..sandbox")))
    assert (err.status, err.code) == (409, "BucketAlreadyExists")
    err = service_error(lambda: client.get_bucket(NAMESPACE, "nope"))
    assert (err.status, err.code) == (404, "BucketNotFound")


def test_wrong_key_is_rejected(tmp_path: Path, emulator: OciEmulator, bucket: str) -> None:
    # Same fingerprint in the keyId, different private key: the signature cannot verify.
    other = write_sandbox_config(tmp_path, NAMESPACE)
    bad = make_client(other.config_path, emulator.url)
    err = service_error(lambda: bad.put_object(NAMESPACE, bucket, "k", b"data"))
    assert (err.status, err.code) == (401, "NotAuthenticated")
    err = service_error(lambda: bad.get_namespace())
    assert err.status == 401


def test_forged_fingerprint_and_unsigned_requests_are_rejected(
        tmp_path: Path, creds: OciSandboxCredentials, emulator: OciEmulator, client: ObjectStorageClient,
        bucket: str) -> None:
    other = write_sandbox_config(tmp_path, NAMESPACE)
    config = oci.config.from_file(str(other.config_path))
    config["fingerprint"] = creds.fingerprint  # claims the right key, signs with another
    forged = oci.object_storage.ObjectStorageClient(config, service_endpoint=emulator.url,
                                                    retry_strategy=oci.retry.NoneRetryStrategy())
    assert service_error(lambda: forged.head_object(NAMESPACE, bucket, "k")).status == 401
    conn = http.client.HTTPConnection(emulator.host, emulator.port, timeout=10)
    conn.request("PUT", f"/n/{NAMESPACE}/b/{bucket}/o/unsigned", body=b"x")
    resp = conn.getresponse()
    assert resp.status == 401 and json.loads(resp.read())["code"] == "NotAuthenticated"
    conn.close()
    assert service_error(lambda: client.head_object(NAMESPACE, bucket, "unsigned")).status == 404


# ----------------------------------------------------------------------------------- checksums


def test_put_reports_md5_and_crc32c_vectors(client: ObjectStorageClient, bucket: str) -> None:
    v = _vectors()["ascii-123456789"]
    resp = client.put_object(NAMESPACE, bucket, "nine", b"123456789", content_md5=v["md5_base64"],
                             opc_checksum_algorithm="CRC32C", opc_content_crc32c=v["crc32c_base64_be"])
    assert resp.headers["opc-content-md5"] == v["md5_base64"]
    assert resp.headers["opc-content-crc32c"] == v["crc32c_base64_be"]
    assert resp.headers["version-id"] and resp.headers["etag"]
    head = client.head_object(NAMESPACE, bucket, "nine").headers
    assert head["content-md5"] == v["md5_base64"]
    assert head["opc-content-crc32c"] == v["crc32c_base64_be"]
    assert head["version-id"] == resp.headers["version-id"]
    assert int(head["content-length"]) == 9
    # Algorithm without a declared value: the service computes and reports it.
    resp = client.put_object(NAMESPACE, bucket, "empty", b"", opc_checksum_algorithm="CRC32C")
    assert resp.headers["opc-content-crc32c"] == _vectors()["empty"]["crc32c_base64_be"]
    assert resp.headers["opc-content-md5"] == _vectors()["empty"]["md5_base64"]


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"content_md5": md5_b64(b"other")}, "UnmatchedContentMD5"),
    ({"opc_checksum_algorithm": "CRC32C", "opc_content_crc32c": crc32c_b64(b"other")},
     "UnmatchedContentCRC32C"),
    ({"opc_checksum_algorithm": "SHA256", "opc_content_sha256": b64(hashlib.sha256(b"o").digest())},
     "UnmatchedContentSHA256"),
])
def test_checksum_mismatch_is_rejected(client: ObjectStorageClient, bucket: str, kwargs: dict[str, str],
                                       code: str) -> None:
    err = service_error(lambda: client.put_object(NAMESPACE, bucket, "bad", b"payload", **kwargs))
    assert (err.status, err.code) == (400, code)
    assert service_error(lambda: client.head_object(NAMESPACE, bucket, "bad")).status == 404


def test_part_checksum_mismatch_is_rejected(client: ObjectStorageClient, bucket: str) -> None:
    up = client.create_multipart_upload(NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="m"),
                                        opc_checksum_algorithm="CRC32C").data
    err = service_error(lambda: client.upload_part(NAMESPACE, bucket, "m", up.upload_id, 1, b"abc",
                                                   content_md5=md5_b64(b"abd")))
    assert (err.status, err.code) == (400, "UnmatchedContentMD5")
    err = service_error(lambda: client.upload_part(NAMESPACE, bucket, "m", up.upload_id, 1, b"abc",
                                                   opc_content_crc32c=crc32c_b64(b"abd")))
    assert (err.status, err.code) == (400, "UnmatchedContentCRC32C")
    assert client.list_multipart_upload_parts(NAMESPACE, bucket, "m", up.upload_id).data == []
    client.abort_multipart_upload(NAMESPACE, bucket, "m", up.upload_id)


# ---------------------------------------------------------------------------------- conditions


def test_if_none_match(client: ObjectStorageClient, vbucket: str) -> None:
    client.put_object(NAMESPACE, vbucket, "once", b"1", if_none_match="*")
    err = service_error(lambda: client.put_object(NAMESPACE, vbucket, "once", b"2", if_none_match="*"))
    assert (err.status, err.code) == (412, "IfNoneMatchFailed")
    assert client.get_object(NAMESPACE, vbucket, "once").data.content == b"1"
    client.delete_object(NAMESPACE, vbucket, "once")  # a delete marker is not a live object
    client.put_object(NAMESPACE, vbucket, "once", b"3", if_none_match="*")


def test_if_match(client: ObjectStorageClient, bucket: str) -> None:
    etag = client.put_object(NAMESPACE, bucket, "k", b"1").headers["etag"]
    stale = "not-" + etag
    for call in (lambda: client.put_object(NAMESPACE, bucket, "k", b"2", if_match=stale),
                 lambda: client.get_object(NAMESPACE, bucket, "k", if_match=stale),
                 lambda: client.head_object(NAMESPACE, bucket, "k", if_match=stale),
                 lambda: client.delete_object(NAMESPACE, bucket, "k", if_match=stale)):
        err = service_error(call)
        assert err.status == 412
        assert err.code in ("IfMatchFailed", None)  # HEAD answers have no body to carry a code
    new = client.put_object(NAMESPACE, bucket, "k", b"2", if_match=etag).headers["etag"]
    assert new != etag
    client.delete_object(NAMESPACE, bucket, "k", if_match=new)
    assert service_error(lambda: client.head_object(NAMESPACE, bucket, "k")).status == 404


# ------------------------------------------------------------------------------------ versions


def _versions(client: ObjectStorageClient, bucket: str, prefix: str, limit: int = 1000) -> list[Any]:
    items: list[Any] = []
    page = None
    while True:
        kwargs = {"prefix": prefix, "limit": limit, "fields": "name,size,etag,md5,timeCreated"}
        if page:
            kwargs["page"] = page
        resp = client.list_object_versions(NAMESPACE, bucket, **kwargs)
        items += resp.data.items
        page = resp.headers.get("opc-next-page")
        if not page:
            return items


def test_versions_and_delete_markers(client: ObjectStorageClient, vbucket: str) -> None:
    v1 = client.put_object(NAMESPACE, vbucket, "doc", b"one").headers["version-id"]
    v2 = client.put_object(NAMESPACE, vbucket, "doc", b"two").headers["version-id"]
    deleted = client.delete_object(NAMESPACE, vbucket, "doc")
    marker = deleted.headers["version-id"]
    assert deleted.headers["is-delete-marker"] == "true"
    assert service_error(lambda: client.head_object(NAMESPACE, vbucket, "doc")).status == 404
    assert service_error(lambda: client.get_object(NAMESPACE, vbucket, "doc")).code == "ObjectNotFound"
    assert client.get_object(NAMESPACE, vbucket, "doc", version_id=v1).data.content == b"one"
    rows = _versions(client, vbucket, "doc")
    assert [(r.version_id, r.is_delete_marker) for r in rows] == [(marker, True), (v2, False), (v1, False)]
    assert rows[1].size == 3 and rows[1].md5 == md5_b64(b"two")
    # Deleting the marker by id brings v2 back; deleting a version id is permanent.
    client.delete_object(NAMESPACE, vbucket, "doc", version_id=marker)
    assert client.get_object(NAMESPACE, vbucket, "doc").data.content == b"two"
    client.delete_object(NAMESPACE, vbucket, "doc", version_id=v2)
    assert client.get_object(NAMESPACE, vbucket, "doc").data.content == b"one"
    err = service_error(lambda: client.get_object(NAMESPACE, vbucket, "doc", version_id=v2))
    assert err.status == 404
    client.delete_object(NAMESPACE, vbucket, "doc", version_id=v1)
    assert _versions(client, vbucket, "doc") == []


def test_unversioned_bucket_reports_version_ids(client: ObjectStorageClient, bucket: str) -> None:
    first = client.put_object(NAMESPACE, bucket, "x", b"1").headers["version-id"]
    second = client.put_object(NAMESPACE, bucket, "x", b"2").headers["version-id"]
    assert first and second and first != second
    rows = _versions(client, bucket, "x")
    assert [r.version_id for r in rows] == [second]
    resp = client.delete_object(NAMESPACE, bucket, "x")
    assert resp.headers["is-delete-marker"] == "false"
    assert _versions(client, bucket, "x") == []


def test_suspend_versioning(client: ObjectStorageClient, vbucket: str) -> None:
    client.update_bucket(NAMESPACE, vbucket, MODELS.UpdateBucketDetails(versioning="Suspended"))
    assert client.get_bucket(NAMESPACE, vbucket).data.versioning == "Suspended"
    client.update_bucket(NAMESPACE, vbucket, MODELS.UpdateBucketDetails(versioning="Enabled"))
    assert client.get_bucket(NAMESPACE, vbucket).data.versioning == "Enabled"


def test_version_paging(client: ObjectStorageClient, vbucket: str) -> None:
    expected = []
    for key in ("p/a", "p/b", "p/c"):
        for i in range(3):
            resp = client.put_object(NAMESPACE, vbucket, key, bytes([i]))
            expected.append((key, resp.headers["version-id"]))
    rows = _versions(client, vbucket, "p/", limit=2)
    got = [(r.name, r.version_id) for r in rows]
    assert sorted(got) == sorted(expected) and len(got) == 9
    # Within a name the listing is newest first.
    assert [v for k, v in got if k == "p/a"] == [v for k, v in expected if k == "p/a"][::-1]


def test_list_objects_paging(client: ObjectStorageClient, bucket: str) -> None:
    names = [f"dir/{i:02d}" for i in range(7)] + ["other"]
    for n in names:
        client.put_object(NAMESPACE, bucket, n, n.encode())
    seen: list[str] = []
    start = None
    while True:
        kwargs: dict[str, Any] = {"prefix": "dir/", "limit": 3, "fields": "name,size,md5"}
        if start:
            kwargs["start"] = start
        data = client.list_objects(NAMESPACE, bucket, **kwargs).data
        seen += [o.name for o in data.objects]
        assert all(o.size == 6 for o in data.objects)
        start = data.next_start_with
        if not start:
            break
    assert seen == names[:7]
    top = client.list_objects(NAMESPACE, bucket, delimiter="/").data
    assert top.prefixes == ["dir/"] and [o.name for o in top.objects] == ["other"]


def test_edge_names_round_trip(client: ObjectStorageClient, bucket: str) -> None:
    names = ["sp ace.txt", "pct%41", "plus+sign", "q?x#y", "a/../b", "/leading", "ünï/çødé.bin", "..", "."]
    for n in names:
        client.put_object(NAMESPACE, bucket, n, n.encode())
    for n in names:
        assert client.get_object(NAMESPACE, bucket, n).data.content == n.encode()
    listed = [o.name for o in client.list_objects(NAMESPACE, bucket).data.objects]
    assert listed == sorted(names)


def test_range_get(client: ObjectStorageClient, bucket: str) -> None:
    client.put_object(NAMESPACE, bucket, "r", b"0123456789")
    assert client.get_object(NAMESPACE, bucket, "r", range="bytes=2-4").data.content == b"234"
    resp = client.get_object(NAMESPACE, bucket, "r", range="bytes=7-")
    assert resp.data.content == b"789" and resp.headers["content-range"] == "bytes 7-9/10"
    assert client.get_object(NAMESPACE, bucket, "r", range="bytes=-2").data.content == b"89"
    assert service_error(lambda: client.get_object(NAMESPACE, bucket, "r", range="bytes=10-")).status == 416


# ----------------------------------------------------------------------------------- multipart


def test_multipart_commit_reports_vector_checksums(client: ObjectStorageClient, vbucket: str) -> None:
    v = _vectors()["det-20MiB-8MiB-parts"]
    data = det_bytes(v["size"])
    size = v["part_size"]
    details = MODELS.CreateMultipartUploadDetails(object="big.bin", content_type="application/x-test",
                                                  metadata={"opc-meta-owner": "alice"})
    up = client.create_multipart_upload(NAMESPACE, vbucket, details, opc_checksum_algorithm="CRC32C").data
    parts = []
    for num, off in enumerate(range(0, len(data), size), start=1):
        chunk = data[off:off + size]
        resp = client.upload_part(NAMESPACE, vbucket, "big.bin", up.upload_id, num, chunk,
                                  content_md5=md5_b64(chunk), opc_content_crc32c=crc32c_b64(chunk))
        assert resp.headers["opc-content-md5"] == md5_b64(chunk)
        assert resp.headers["opc-content-crc32c"] == crc32c_b64(chunk)
        parts.append(MODELS.CommitMultipartUploadPartDetails(part_num=num, etag=resp.headers["etag"]))
    listed = client.list_multipart_upload_parts(NAMESPACE, vbucket, "big.bin", up.upload_id, limit=2)
    assert [p.part_number for p in listed.data] == [1, 2] and listed.headers["opc-next-page"]
    uploads = client.list_multipart_uploads(NAMESPACE, vbucket).data
    assert [u.upload_id for u in uploads] == [up.upload_id]
    commit = client.commit_multipart_upload(NAMESPACE, vbucket, "big.bin", up.upload_id,
                                            MODELS.CommitMultipartUploadDetails(parts_to_commit=parts))
    assert commit.headers["opc-multipart-md5"] == v["oci_opc_multipart_md5"]
    assert commit.headers["opc-content-crc32c"] == v["crc32c_base64_be"]
    head = client.head_object(NAMESPACE, vbucket, "big.bin").headers
    assert head["opc-multipart-md5"] == v["oci_opc_multipart_md5"]
    assert head["opc-content-crc32c"] == v["crc32c_base64_be"]
    assert "content-md5" not in head
    assert head["content-type"] == "application/x-test" and head["opc-meta-owner"] == "alice"
    assert head["version-id"] == commit.headers["version-id"]
    got = client.get_object(NAMESPACE, vbucket, "big.bin").data.content
    assert hashlib.md5(got).hexdigest() == v["md5_hex"]
    assert client.list_multipart_uploads(NAMESPACE, vbucket).data == []


def test_multipart_sha256_and_errors(client: ObjectStorageClient, bucket: str) -> None:
    up = client.create_multipart_upload(NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="s"),
                                        opc_checksum_algorithm="SHA256").data
    chunks = [b"a" * 10, b"b" * 5]
    etags = [client.upload_part(NAMESPACE, bucket, "s", up.upload_id, i + 1, c).headers["etag"]
             for i, c in enumerate(chunks)]
    bad = [MODELS.CommitMultipartUploadPartDetails(part_num=1, etag="wrong")]
    err = service_error(lambda: client.commit_multipart_upload(
        NAMESPACE, bucket, "s", up.upload_id, MODELS.CommitMultipartUploadDetails(parts_to_commit=bad)))
    assert err.status == 400
    good = [MODELS.CommitMultipartUploadPartDetails(part_num=i + 1, etag=e) for i, e in enumerate(etags)]
    commit = client.commit_multipart_upload(NAMESPACE, bucket, "s", up.upload_id,
                                            MODELS.CommitMultipartUploadDetails(parts_to_commit=good))
    part_shas = b"".join(hashlib.sha256(c).digest() for c in chunks)
    assert commit.headers["opc-multipart-sha256"] == f"{b64(hashlib.sha256(part_shas).digest())}-2"
    part_md5s = b"".join(hashlib.md5(c).digest() for c in chunks)
    assert commit.headers["opc-multipart-md5"] == f"{b64(hashlib.md5(part_md5s).digest())}-2"
    err = service_error(lambda: client.abort_multipart_upload(NAMESPACE, bucket, "s", up.upload_id))
    assert (err.status, err.code) == (404, "NoSuchUpload")


def test_multipart_if_none_match_and_abort(client: ObjectStorageClient, bucket: str) -> None:
    client.put_object(NAMESPACE, bucket, "taken", b"x")
    err = service_error(lambda: client.create_multipart_upload(
        NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="taken"), if_none_match="*"))
    assert (err.status, err.code) == (412, "IfNoneMatchFailed")
    up = client.create_multipart_upload(NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="free"),
                                        if_none_match="*").data
    etag = client.upload_part(NAMESPACE, bucket, "free", up.upload_id, 1, b"data").headers["etag"]
    client.put_object(NAMESPACE, bucket, "free", b"raced")  # someone else wrote it meanwhile
    part = [MODELS.CommitMultipartUploadPartDetails(part_num=1, etag=etag)]
    err = service_error(lambda: client.commit_multipart_upload(
        NAMESPACE, bucket, "free", up.upload_id, MODELS.CommitMultipartUploadDetails(parts_to_commit=part)))
    assert (err.status, err.code) == (412, "IfNoneMatchFailed")
    client.abort_multipart_upload(NAMESPACE, bucket, "free", up.upload_id)
    assert client.list_multipart_uploads(NAMESPACE, bucket).data == []


# ------------------------------------------------------------------------------- stats, process


def test_stats_and_reset(creds: OciSandboxCredentials) -> None:
    with OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE) as emu:
        c = make_client(creds.config_path, emu.url)
        name = new_bucket(c)
        c.put_object(NAMESPACE, name, "a", b"1")
        c.put_object(NAMESPACE, name, "b", b"2")
        conn = http.client.HTTPConnection(emu.host, emu.port, timeout=10)
        conn.request("GET", "/_emulator/stats")
        stats = json.loads(conn.getresponse().read())
        assert stats["requests"]["PutObject"] == 2 and stats["requests"]["CreateBucket"] == 1
        conn.request("POST", "/_emulator/reset")
        assert conn.getresponse().status == 204
        conn.close()
        assert service_error(lambda: c.get_bucket(NAMESPACE, name)).status == 404
        assert emu.stats()["requests"] == {"GetBucket": 1}


def test_refuses_non_loopback_host(creds: OciSandboxCredentials) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--host", "0.0.0.0", "--public-key", str(creds.public_key_path), "--namespace", NAMESPACE])
    assert info.value.code == 2
    with pytest.raises(ValueError, match="loopback"):
        OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE, host="0.0.0.0")


def test_runs_as_a_process(tmp_path: Path, creds: OciSandboxCredentials) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "migrator.sandbox.oci_emulator", "--host", "127.0.0.1",
                             "--port", "0", "--public-key", str(creds.public_key_path),
                             "--namespace", NAMESPACE, "--ready-file", str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():  # readiness probe, bounded
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        port = int(ready.read_text())
        c = make_client(creds.config_path, f"http://127.0.0.1:{port}")
        assert c.get_namespace().data == NAMESPACE
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
