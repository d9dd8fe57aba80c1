"""The GCS emulator as clients other than the Python SDK speak to it: raw HTTP, byte for byte as they send it.

Each request here is shaped after a client that was tried against the sandbox (rclone and others that use
Go's ``google.golang.org/api``): a multipart upload whose parts carry no headers (Go's ``mime/multipart``
with an empty content type, which RFC 2046 allows), and resumable chunks sent with ``X-GUploader-No-308: yes``,
which asks for ``200`` plus ``X-HTTP-Status-Code-Override: 308`` instead of a bare 308.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from migrator.sandbox.gcs.server import GcsEmulator

_names = itertools.count()
# Bytes that trip a careless splitter: blank lines in both conventions, dashes, a bare CR at the end.
TRICKY = b"\r\n\r\nline\n\nmore--\r\n--not-a-boundary\r\n" + bytes(range(256)) + b"\r"


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with GcsEmulator() as em:
        yield em


def call(url: str, method: str, target: str, body: bytes = b"",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(urlsplit(url).hostname or "", urlsplit(url).port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def bucket(emulator: GcsEmulator) -> str:
    name = f"wire-{next(_names)}"
    status, _, body = call(emulator.url, "POST", "/storage/v1/b?project=p", json.dumps({"name": name}).encode(),
                           {"Content-Type": "application/json"})
    assert status == 200, body
    return name


def media(url: str, bucket: str, name: str) -> bytes:
    status, _, body = call(url, "GET", f"/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media")
    assert status == 200, body
    return body


def go_multipart(boundary: str, parts: list[tuple[str, bytes]], eol: bytes = b"\r\n") -> bytes:
    """A body as Go's mime/multipart Writer lays it out; an empty content type gives a part no headers."""
    out = b""
    for i, (ctype, content) in enumerate(parts):
        out += (eol if i else b"") + b"--" + boundary.encode() + eol
        if ctype:
            out += b"Content-Type: " + ctype.encode() + eol
        out += eol + content
    return out + eol + b"--" + boundary.encode() + b"--" + eol


def insert_multipart(url: str, bucket: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    status, _, answer = call(url, "POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=multipart", body,
                             {"Content-Type": content_type})
    return status, json.loads(answer)


@pytest.mark.parametrize("data", [b"hello from rclone", TRICKY], ids=["plain", "tricky"])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("meta_type", ["application/json; charset=UTF-8", ""], ids=["meta-typed", "meta-bare"])
def test_multipart_parts_without_headers_keep_every_byte(emulator: GcsEmulator, bucket: str, eol: bytes,
                                                         meta_type: str, data: bytes) -> None:
    # rclone sends the media part with no headers at all; the metadata part may be bare as well.
    name = f"obj-{next(_names)}"
    meta = json.dumps({"name": name, "contentType": "text/x-rclone"}).encode()
    body = go_multipart("b0undary", [(meta_type, meta), ("", data)], eol)
    status, obj = insert_multipart(emulator.url, bucket, body, "multipart/related; boundary=b0undary")
    assert status == 200, obj
    assert obj["size"] == str(len(data))
    assert obj["contentType"] == "text/x-rclone"
    assert obj["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert media(emulator.url, bucket, name) == data


def test_multipart_media_part_type_applies_when_metadata_has_none(emulator: GcsEmulator, bucket: str) -> None:
    name = f"obj-{next(_names)}"
    body = go_multipart("xyz", [("application/json", json.dumps({"name": name}).encode()),
                                ("image/png", b"\x89PNG")])
    status, obj = insert_multipart(emulator.url, bucket, body, "multipart/related; boundary=xyz")
    assert status == 200 and obj["contentType"] == "image/png"
    bare = f"obj-{next(_names)}"
    body = go_multipart("xyz", [("", json.dumps({"name": bare}).encode()), ("", b"raw")])
    status, obj = insert_multipart(emulator.url, bucket, body, "multipart/related; boundary=xyz")
    # Neither part says: GCS serves application/octet-stream for an upload without a content type.
    assert status == 200 and obj["contentType"] == "application/octet-stream"


def test_multipart_preamble_epilogue_padding_and_quoted_boundary(emulator: GcsEmulator, bucket: str) -> None:
    # RFC 2046: a preamble and an epilogue are ignored, a delimiter line may end in spaces, and a quoted
    # boundary may hold characters (space, ';', '=') that an unquoted one may not.
    name = f"obj-{next(_names)}"
    boundary = "a b;c=d"
    body = (b"This is the preamble.\r\n--a b;c=d  \r\nContent-Type: application/json\r\n\r\n"
            + json.dumps({"name": name}).encode()
            + b"\r\n--a b;c=d\r\ncontent-type: application/octet-stream\r\n\r\n" + TRICKY
            + b"\r\n--a b;c=d--\r\nThis is the epilogue.\r\n")
    status, obj = insert_multipart(emulator.url, bucket, body, f'multipart/related; Boundary="{boundary}"')
    assert status == 200, obj
    assert media(emulator.url, bucket, name) == TRICKY


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["gcsfs", "python-sdk"])
def test_multipart_as_gcsfs_and_the_python_sdk_lay_it_out(emulator: GcsEmulator, bucket: str, eol: bytes) -> None:
    # gcsfs frames with bare LF, google-resumable-media with CRLF; both quote the boundary "==0==" and end
    # the body right after the closing delimiter.
    name = f"obj-{next(_names)}"
    body = (b"--==0==" + eol + b"Content-Type: application/json; charset=UTF-8" + eol + eol
            + json.dumps({"name": name}).encode() + eol + b"--==0==" + eol
            + b"Content-Type: application/octet-stream" + eol + eol + TRICKY + eol + b"--==0==--")
    status, obj = insert_multipart(emulator.url, bucket, body, 'multipart/related; boundary="==0=="')
    assert status == 200, obj
    assert media(emulator.url, bucket, name) == TRICKY


@pytest.mark.parametrize("body", [
    b"--B\r\nContent-Type: application/json\r\n\r\n{}\r\n--B\r\n\r\nno closing delimiter",
    b"--B\r\n\r\n{}\r\n--B--\r\n",
], ids=["unterminated", "one-part"])
def test_multipart_malformed_bodies_are_refused(emulator: GcsEmulator, bucket: str, body: bytes) -> None:
    status, obj = insert_multipart(emulator.url, bucket, body, "multipart/related; boundary=B")
    assert status == 400 and obj["error"]["errors"][0]["reason"] == "invalid"


def test_multipart_encoded_media_part_is_refused_not_stored_encoded(emulator: GcsEmulator, bucket: str) -> None:
    name = f"obj-{next(_names)}"
    body = (b"--B\r\nContent-Type: application/json\r\n\r\n" + json.dumps({"name": name}).encode()
            + b"\r\n--B\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--B--\r\n")
    status, obj = insert_multipart(emulator.url, bucket, body, "multipart/related; boundary=B")
    assert status == 400, obj
    assert call(emulator.url, "GET", f"/storage/v1/b/{bucket}/o/{name}")[0] == 404


def start_session(url: str, bucket: str, name: str) -> str:
    status, headers, body = call(url, "POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=resumable",
                                 json.dumps({"name": name}).encode(),
                                 {"Content-Type": "application/json", "X-Upload-Content-Type": "text/plain"})
    assert status == 200, body
    loc = urlsplit(headers["location"])
    return f"{loc.path}?{loc.query}"


def test_resumable_no_308_answers_200_with_the_override(emulator: GcsEmulator, bucket: str) -> None:
    # As google.golang.org/api's gensupport sends chunks: POST, "bytes a-b/*" until the last, then the total.
    name = f"big-{next(_names)}"
    target = start_session(emulator.url, bucket, name)
    chunk = 256 * 1024
    data = (TRICKY * (3 * chunk // len(TRICKY) + 1))[:2 * chunk + 100]
    no308 = {"X-GUploader-No-308": "yes", "Content-Type": "text/plain"}
    for first in (0, chunk):
        status, headers, _ = call(emulator.url, "POST", target, data[first:first + chunk],
                                  {**no308, "Content-Range": f"bytes {first}-{first + chunk - 1}/*"})
        assert status == 200
        assert headers["x-http-status-code-override"] == "308"
        assert headers["range"] == f"bytes=0-{first + chunk - 1}"
    # A status query (no bytes) is answered the same way.
    status, headers, _ = call(emulator.url, "POST", target, b"", {**no308, "Content-Range": "bytes */*"})
    assert status == 200 and headers["x-http-status-code-override"] == "308"
    assert headers["range"] == f"bytes=0-{2 * chunk - 1}"
    status, headers, body = call(emulator.url, "POST", target, data[2 * chunk:],
                                 {**no308, "Content-Range": f"bytes {2 * chunk}-{len(data) - 1}/{len(data)}"})
    assert status == 200 and "x-http-status-code-override" not in headers
    assert json.loads(body)["size"] == str(len(data))
    assert media(emulator.url, bucket, name) == data


def test_resumable_without_the_header_still_answers_308(emulator: GcsEmulator, bucket: str) -> None:
    target = start_session(emulator.url, bucket, f"plain-{next(_names)}")
    status, headers, _ = call(emulator.url, "PUT", target, b"x" * 10, {"Content-Range": "bytes 0-9/*"})
    assert status == 308 and headers["range"] == "bytes=0-9"
    assert "x-http-status-code-override" not in headers
