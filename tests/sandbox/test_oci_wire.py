"""The OCI emulator as clients other than the Python SDK speak to it: raw, signed HTTP, shaped as they send it.

The OCI Go SDK (rclone's OCI backend, among others) sends every optional enum header that the caller left
unset as an empty header: ``opc-checksum-algorithm:`` and ``storage-tier:`` on PutObject, UploadPart and
CreateMultipartUpload. Listings are paged with ``limit``/``page`` until ``opc-next-page`` is absent. The last
tests hold the service lock's release open (deterministically, no sleeping) to show that what a request read
under the lock is what it answers, whatever lands right after.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import http.client
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from email.utils import formatdate
from types import TracebackType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from migrator.sandbox.oci.server import OciEmulator
from migrator.sandbox.oci_auth import OciSandboxCredentials, write_sandbox_config

NAMESPACE = "wirens"
COMPARTMENT = "ocid1.compartment.oc1..wire"
Answer = tuple[int, dict[str, str], bytes]


class Signer:
    """Signs requests as the OCI SDKs do (draft-cavage HTTP signatures, rsa-sha256)."""

    def __init__(self, creds: OciSandboxCredentials) -> None:
        config = configparser.ConfigParser()
        config.read(creds.config_path)
        profile = config["DEFAULT"]
        self.key_id = f"{profile['tenancy']}/{profile['user']}/{profile['fingerprint']}"
        key = serialization.load_pem_private_key(open(profile["key_file"], "rb").read(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self.key = key

    def headers(self, method: str, target: str, host: str, body: bytes | None) -> dict[str, str]:
        """Date, Host and Authorization; ``body`` (a JSON request body) is signed too, as SDKs sign it."""
        out = {"date": formatdate(usegmt=True), "host": host}
        names = ["date", "(request-target)", "host"]
        if body is not None:
            out.update({"content-length": str(len(body)), "content-type": "application/json",
                        "x-content-sha256": base64.b64encode(hashlib.sha256(body).digest()).decode()})
            names += ["content-length", "content-type", "x-content-sha256"]
        lines = [f"(request-target): {method.lower()} {target}" if n == "(request-target)" else f"{n}: {out[n]}"
                 for n in names]
        signature = self.key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
        out["authorization"] = (f'Signature version="1",keyId="{self.key_id}",algorithm="rsa-sha256",'
                                f'headers="{" ".join(names)}",signature="{base64.b64encode(signature).decode()}"')
        return out


class Wire:
    """Raw HTTP to the emulator, one connection per request."""

    def __init__(self, emulator: OciEmulator, signer: Signer) -> None:
        self.host = f"127.0.0.1:{emulator.port}"
        self.signer = signer

    def call(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
             *, signed_body: bool = False) -> Answer:
        all_headers = self.signer.headers(method, target, self.host, body if signed_body else None)
        all_headers.update(headers or {})
        conn = http.client.HTTPConnection(self.host, timeout=30)
        try:
            conn.request(method, target, body=body, headers=all_headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, target: str, value: Any, headers: dict[str, str] | None = None) -> Answer:
        return self.call(method, target, json.dumps(value).encode(), headers, signed_body=True)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OciEmulator, Wire]]:
    creds = write_sandbox_config(tmp_path_factory.mktemp("oci-wire"), NAMESPACE)
    with OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE) as em:
        yield em, Wire(em, Signer(creds))


@pytest.fixture
def wire(emulator: tuple[OciEmulator, Wire]) -> Wire:
    return emulator[1]


def new_bucket(wire: Wire) -> str:
    name = f"w-{uuid.uuid4().hex[:12]}"
    status, _, body = wire.json("POST", f"/n/{NAMESPACE}/b/", {"name": name, "compartmentId": COMPARTMENT})
    assert status == 200, body
    return name


# The headers the Go SDK sends for the enums a caller did not set.
GO_EMPTY = {"opc-checksum-algorithm": "", "storage-tier": ""}


def test_empty_checksum_algorithm_header_is_no_algorithm_on_put(wire: Wire) -> None:
    bucket, data = new_bucket(wire), b"put by the Go SDK"
    status, headers, body = wire.call("PUT", f"/n/{NAMESPACE}/b/{bucket}/o/put.txt", data,
                                      {**GO_EMPTY, "Content-Type": "text/plain"})
    assert status == 200, body
    assert headers["opc-content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert not {"opc-content-crc32c", "opc-content-sha256", "opc-content-sha384"} & set(headers)
    status, headers, body = wire.call("GET", f"/n/{NAMESPACE}/b/{bucket}/o/put.txt")
    assert (status, body, headers["storage-tier"]) == (200, data, "Standard")


def test_empty_checksum_algorithm_header_is_no_algorithm_on_multipart(wire: Wire) -> None:
    bucket = new_bucket(wire)
    status, _, body = wire.json("POST", f"/n/{NAMESPACE}/b/{bucket}/u", {"object": "mp.bin"}, GO_EMPTY)
    assert status == 200, body
    upload_id = json.loads(body)["uploadId"]
    parts, etags = [b"first part " * 100, b"second part"], []
    for num, part in enumerate(parts, start=1):
        status, headers, body = wire.call(
            "PUT", f"/n/{NAMESPACE}/b/{bucket}/u/mp.bin?uploadId={upload_id}&uploadPartNum={num}", part,
            {"opc-checksum-algorithm": ""})
        assert status == 200, body
        etags.append(headers["etag"])
    status, headers, body = wire.json(
        "POST", f"/n/{NAMESPACE}/b/{bucket}/u/mp.bin?uploadId={upload_id}",
        {"partsToCommit": [{"partNum": n, "etag": e} for n, e in enumerate(etags, start=1)]})
    assert status == 200, body
    assert headers["opc-multipart-md5"].endswith("-2")
    status, _, body = wire.call("GET", f"/n/{NAMESPACE}/b/{bucket}/o/mp.bin")
    assert (status, body) == (200, b"".join(parts))


def test_list_multipart_uploads_pages_each_upload_exactly_once(wire: Wire) -> None:
    # Several uploads of one object: their ids sort in no relation to their creation order.
    bucket = new_bucket(wire)
    made = set()
    for name in ["same"] * 7 + ["a-before", "z-after"]:
        status, _, body = wire.json("POST", f"/n/{NAMESPACE}/b/{bucket}/u", {"object": name})
        assert status == 200, body
        made.add((name, json.loads(body)["uploadId"]))
    for limit in (1, 2, 4):
        seen: list[tuple[str, str]] = []
        page: str | None = None
        for _ in range(2 * len(made)):   # bounded: a paging bug must not loop forever
            target = f"/n/{NAMESPACE}/b/{bucket}/u?limit={limit}" + (f"&page={page}" if page else "")
            status, headers, body = wire.call("GET", target)
            assert status == 200, body
            items = json.loads(body)
            assert 0 < len(items) <= limit
            seen += [(u["object"], u["uploadId"]) for u in items]
            page = headers.get("opc-next-page")
            if page is None:
                break
        assert sorted(seen) == sorted(made), f"limit={limit}"


class ReleaseHook:
    """Stands in for the service lock and runs ``action`` once, right after the first release of the lock
    once armed: what a concurrent request would do in the gap after a handler let go of the lock."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.action: Callable[[], object] | None = None
        self.fired = threading.Event()

    def __enter__(self) -> Any:
        return self.lock.__enter__()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.lock.__exit__(kind, exc, tb)
        action, self.action = self.action, None
        if action is not None:
            with self.lock:
                action()
            self.fired.set()


@pytest.fixture
def hook(emulator: tuple[OciEmulator, Wire], monkeypatch: pytest.MonkeyPatch) -> ReleaseHook:
    service = emulator[0]._service
    hook = ReleaseHook(service.lock)
    monkeypatch.setattr(service, "lock", hook)
    return hook


def test_list_buckets_answers_what_it_read_under_the_lock(wire: Wire, hook: ReleaseHook,
                                                          emulator: tuple[OciEmulator, Wire]) -> None:
    service = emulator[0]._service
    names = sorted(new_bucket(wire) for _ in range(3))
    # A DeleteBucket of the last name lands just after ListBuckets took its snapshot of names.
    hook.action = lambda: service.buckets.pop(names[-1])
    status, _, body = wire.call("GET", f"/n/{NAMESPACE}/b/?compartmentId={COMPARTMENT}&limit=1000")
    assert hook.fired.is_set()
    assert status == 200, body
    listed = [b["name"] for b in json.loads(body)]
    assert set(names) <= set(listed)   # the snapshot it took, whole


@pytest.mark.parametrize(("race", "status", "code"), [("abort", 404, "NoSuchUpload"),
                                                     ("replication", 403, "BucketIsReadonly")])
def test_upload_part_racing_a_change_is_refused_and_not_stored(wire: Wire, hook: ReleaseHook,
                                                               emulator: tuple[OciEmulator, Wire], race: str,
                                                               status: int, code: str) -> None:
    service = emulator[0]._service
    bucket = new_bucket(wire)
    _, _, body = wire.json("POST", f"/n/{NAMESPACE}/b/{bucket}/u", {"object": "raced"})
    upload_id = json.loads(body)["uploadId"]
    b = service.buckets[bucket]
    up = b.uploads[upload_id]

    # Just after UploadPart first looked the upload up: an abort, or a policy making the bucket a destination.
    def change() -> None:
        if race == "abort":
            b.uploads.pop(upload_id)
        else:
            b.read_only = True

    hook.action = change
    answer = wire.call("PUT", f"/n/{NAMESPACE}/b/{bucket}/u/raced?uploadId={upload_id}&uploadPartNum=1", b"late")
    assert hook.fired.is_set()
    assert (answer[0], json.loads(answer[2])["code"]) == (status, code)
    assert up.parts == {}
