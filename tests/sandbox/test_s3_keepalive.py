"""The sandbox's S3 endpoint keeps HTTP/1.1 connections alive, as S3 does, and closes them when it must.

Most tests run the endpoint in this process (``make_server`` on a thread) so they can count the TCP
connections it accepted; one talks to the sandbox's own S3 process. Clients never retry, so a reconnect
cannot hide a closed connection. Client read timeouts are short, so a connection left open after a cut body
fails the test instead of hanging it.
"""

from __future__ import annotations

import http.client
import itertools
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from migrator.sandbox.control import SandboxState
from migrator.sandbox.faults import FaultPlan, clear_faults, set_faults
from migrator.sandbox.s3.http import S3Layer
from migrator.sandbox.s3.server import S3Server, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from mypy_boto3_s3 import S3Client

_names = itertools.count()


class Condition(TypedDict, total=False):
    """The conditional-write fields of put_object."""

    IfNoneMatch: str
    IfMatch: str


def bucket_name() -> str:
    return f"keepalive-{next(_names)}"


def serve(app: S3Layer | None = None) -> tuple[S3Server, threading.Thread]:
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def stop(server: S3Server, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    srv, thread = serve()
    yield srv
    stop(srv, thread)


def url_of(server: S3Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def client(url: str, **config: Any) -> S3Client:   # config: botocore Config options
    """One pooled connection, no retries, and a read timeout short enough to fail rather than hang."""
    cfg = Config(max_pool_connections=1, retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=5,
                 s3={"addressing_style": "path"}, **config)
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=cfg)


def status_of(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_every_kind_of_request_shares_one_connection(server: S3Server) -> None:
    s3 = client(url_of(server))
    # Without SDK checksums nothing makes the layer read a PUT body; a refused PUT leaves its body unread.
    bare = client(url_of(server), request_checksum_calculation="when_required")
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    bare.list_buckets()  # each client opens its one connection
    before = server.accepted

    body = bytes(range(256)) * 64
    s3.put_object(Bucket=bucket, Key="a", Body=body)
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key="a")["ContentLength"] == len(body)  # HEAD: length, no body
    assert s3.get_object(Bucket=bucket, Key="a", Range="bytes=0-9")["Body"].read() == body[:10]
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="missing")
    assert status_of(missing.value) == 404
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="missing")
    assert status_of(missing.value) == 404
    conditions: tuple[Condition, ...] = ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'})
    for refused in conditions:
        with pytest.raises(botocore.exceptions.ClientError) as failed:
            bare.put_object(Bucket=bucket, Key="a", Body=b"refused" * 50_000, **refused)
        assert status_of(failed.value) == 412
    with pytest.raises(botocore.exceptions.ClientError) as no_bucket:
        bare.put_object(Bucket=bucket_name(), Key="k", Body=b"nobody" * 50_000)
    assert status_of(no_bucket.value) == 404
    bare.put_object(Bucket=bucket, Key="b", Body=b"bare")
    s3.put_object(Bucket=bucket, Key="c", Body=b"")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a", "b", "c"]
    s3.delete_object(Bucket=bucket, Key="a")  # 204: no body
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["b", "c"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    assert server.accepted == before  # no request opened a new connection


def test_raw_client_sends_two_requests_on_one_socket(sandbox: SandboxState) -> None:
    """The sandbox's own S3 process; the second request carries a body the endpoint never reads."""
    scheme, _, where = sandbox.s3.url.partition("://")
    host, port = where.split(":")
    conn = http.client.HTTPSConnection(host, int(port), timeout=10,
                                       context=ssl.create_default_context(cafile=sandbox.ca_file)) \
        if scheme == "https" else http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/_emulator/stats")
        first = conn.getresponse()
        assert first.status == 200 and first.getheader("Connection") is None
        first.read()
        sock = conn.sock
        assert sock is not None  # http.client drops its socket after a "Connection: close" answer
        local = sock.getsockname()
        conn.request("PUT", "/_emulator/stats", body=b"u" * 300_000)  # not read by the app: drained
        second = conn.getresponse()
        assert second.status == 404
        second.read()
        conn.request("GET", "/_emulator/stats")
        third = conn.getresponse()
        assert third.status == 200 and b"total" in third.read()
        assert conn.sock is sock and sock.getsockname() == local
    finally:
        conn.close()


def test_chunked_request_upload_works_and_closes(server: S3Server) -> None:
    s3 = client(url_of(server))
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    parts = [b"first-", b"x" * 100_000, b"-last"]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.request("PUT", f"/{bucket}/chunked", body=iter(parts), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200
        assert answer.getheader("Connection") == "close"  # the end of a chunked body is not ours to find
    finally:
        conn.close()
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"".join(parts)


@pytest.fixture
def faulty(server: S3Server) -> Iterator[str]:
    url = url_of(server)
    yield url
    clear_faults(url)


def test_truncated_body_is_a_short_read_then_a_new_connection(server: S3Server, faulty: str) -> None:
    s3 = client(faulty)
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    body = b"0123456789" * 10_000
    s3.put_object(Bucket=bucket, Key="t", Body=body)
    set_faults(faulty, FaultPlan(rate=1.0, kinds=frozenset({"truncate"}), operations=frozenset({"GetObject"})))
    with pytest.raises((botocore.exceptions.IncompleteReadError,
                        botocore.exceptions.ResponseStreamingError)) as cut:
        s3.get_object(Bucket=bucket, Key="t")["Body"].read()
    assert "timed out" not in str(cut.value).lower()  # the close ends the body; the client did not wait
    clear_faults(faulty)  # its own connection
    before = server.accepted
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == body
    assert server.accepted == before + 1  # the cut connection was not reused


@pytest.mark.parametrize("kind", ["reset-before", "reset-after"])
def test_reset_surfaces_then_a_new_connection_works(server: S3Server, faulty: str, kind: str) -> None:
    s3 = client(faulty)
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="r", Body=b"reset me")
    set_faults(faulty, FaultPlan(rate=1.0, kinds=frozenset({kind}), operations=frozenset({"HeadObject"})))
    with pytest.raises(botocore.exceptions.HTTPClientError):  # ConnectionClosedError
        s3.head_object(Bucket=bucket, Key="r")
    clear_faults(faulty)
    assert s3.head_object(Bucket=bucket, Key="r")["ContentLength"] == 8


# -- framing, with a plain WSGI app behind the layer (the layer passes /moto-api/ through untouched)

def _app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/moto-api/stream":  # no Content-Length: sent chunked, the connection stays
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"abc", b"", b"def"])
    if path == "/moto-api/empty":
        start_response("204 No Content", [])
        return [b""]
    if path == "/moto-api/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]
    if path == "/moto-api/half-read":
        line = environ["wsgi.input"].readline()
        start_response("200 OK", [("Content-Length", str(len(line)))])
        return [line]
    if path == "/moto-api/broken-before":
        raise RuntimeError("app bug before the answer (expected in this test)")
    if path == "/moto-api/broken-during":
        start_response("200 OK", [("Content-Length", "10")])
        return _broken_body()
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello"]


def _broken_body() -> Iterator[bytes]:
    yield b"12345"
    raise RuntimeError("app bug mid-answer (expected in this test)")


@pytest.fixture(scope="module")
def plain() -> Iterator[S3Server]:
    srv, thread = serve(S3Layer(_app))
    yield srv
    stop(srv, thread)


def _exchange(conn: http.client.HTTPConnection, method: str, path: str,
              body: bytes | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, body=body)
    answer = conn.getresponse()
    return answer, answer.read()


def test_framing_keeps_the_connection(plain: S3Server) -> None:
    before = plain.accepted
    conn = http.client.HTTPConnection("127.0.0.1", plain.server_address[1], timeout=10)
    try:
        answer, data = _exchange(conn, "GET", "/moto-api/stream")
        assert (answer.getheader("Transfer-Encoding"), data) == ("chunked", b"abcdef")
        answer, data = _exchange(conn, "HEAD", "/moto-api/plain")
        assert (answer.getheader("Content-Length"), data) == ("5", b"")
        answer, data = _exchange(conn, "HEAD", "/moto-api/stream")
        assert data == b"" and answer.getheader("Transfer-Encoding") is None
        answer, data = _exchange(conn, "DELETE", "/moto-api/empty")
        assert (answer.status, data) == (204, b"")
        assert _exchange(conn, "POST", "/moto-api/echo", b"e" * 70_000)[1] == b"e" * 70_000
        assert _exchange(conn, "POST", "/moto-api/half-read", b"line\n" + b"rest" * 50_000)[1] == b"line\n"
        assert _exchange(conn, "POST", "/moto-api/plain", b"unread" * 50_000)[1] == b"hello"
        assert _exchange(conn, "GET", "/moto-api/plain")[1] == b"hello"
    finally:
        conn.close()
    assert plain.accepted == before + 1


def test_errors_close_the_connection(plain: S3Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plain.server_address[1], timeout=10)
    try:
        answer, _ = _exchange(conn, "GET", "/moto-api/broken-before")
        assert (answer.status, answer.getheader("Connection")) == (500, "close")
        conn.request("GET", "/moto-api/broken-during")
        answer = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            answer.read()  # 5 of 10 bytes, then the server closes
    finally:
        conn.close()


def test_client_asking_for_close_gets_it(plain: S3Server) -> None:
    with socket.create_connection(("127.0.0.1", plain.server_address[1]), timeout=10) as sock:
        sock.sendall(b"GET /moto-api/plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b"".join(iter(lambda: sock.recv(65536), b""))  # ends: the server closed
    assert received.startswith(b"HTTP/1.1 200") and b"Connection: close\r\n" in received
    with socket.create_connection(("127.0.0.1", plain.server_address[1]), timeout=10) as sock:
        sock.sendall(b"GET /moto-api/plain HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive
        received = b"".join(iter(lambda: sock.recv(65536), b""))
    assert received.endswith(b"\r\n\r\nhello")


def test_stopping_the_server_ends_idle_connections() -> None:
    srv, thread = serve(S3Layer(_app))
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=10) as sock:
        sock.sendall(b"GET /moto-api/plain HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"hello")
        stop(srv, thread)  # returns although a connection is open and idle
        assert sock.recv(65536) == b""  # and that connection was ended, not left to answer
    assert not thread.is_alive()

