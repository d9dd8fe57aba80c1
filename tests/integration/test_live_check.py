"""Live spot checks against the sandbox: a finished wave holds up; a planted source copy, a replaced or
substituted destination, a soft-deleted copy and a vanished HELD source are each named; the check makes
no write (proved through endpoints that refuse every write); the attestation log works in an OCI bucket."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import io
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from migrator import logstore
from migrator.attest import notes, tlog
from migrator.attest.canonical import canonical_json
from migrator.attest.dsse import sign_envelope
from migrator.attest.keys import PublicKey, generate_keypair, load_public_key, load_signer
from migrator.attest.live import Finding, LiveReport, ObjectResult, check_live, sample_rows
from migrator.attest.policy import Threshold
from migrator.attest.statement import PAYLOAD_TYPE
from migrator.config import load_wave
from migrator.errors import MigratorError, VerificationError
from migrator.live_stores import reach_scope
from migrator.runner import run_wave
from migrator.sandbox.buckets import create_bucket, gcs_client, oci_client, s3_client
from migrator.sandbox.control import SandboxState
from migrator.stores.base import ObjectStore, PutRequest
from migrator.stores.registry import Stores
from migrator.stores.settings import EndpointSettings
from migrator.uri import ObjectURI, parse_uri
from tests.conftest import unique, wave_settings

SIZE = 3000
PRISTINE = (1, 2, 3, 4, 5)  # rows no test changes; every other row belongs to exactly one test


@dataclass
class Wave:
    state: Path
    keys: Path
    pub: PublicKey
    src: str        # S3, versioned
    locked: str     # S3 with Object Lock: rows 4 and 12 are HELD by a legal hold
    gsrc: str       # GCS source
    gsoft: str      # GCS source whose soft delete one test turns on
    gbak: str       # GCS replica bucket
    dst: str        # OCI, versioned
    ns: str

    @property
    def attestation(self) -> bytes:
        return (self.state / "attestation.json").read_bytes()

    @property
    def records(self) -> bytes:
        return (self.state / "records.jsonl").read_bytes()

    def check(self, stores: Stores, *, download: bool = False, sample: int = 50, seed: int = 1) -> LiveReport:
        return check_live(self.attestation, self.records, Threshold([self.pub]), stores.for_uri, sample=sample,
                          seed=seed, download=download)


@pytest.fixture(scope="module")
def wave(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Wave:
    """One wave of twelve rows on S3 and GCS sources into OCI. Rows 1-5 stay as the wave left them."""
    tmp = tmp_path_factory.mktemp("live")
    s3, gcs = s3_client(sandbox), gcs_client(sandbox)
    w = Wave(tmp / "state", tmp / "keys", load_public_key(generate_keypair(tmp / "keys")[1]), unique("lsrc"),
             unique("llock"), unique("lgsrc"), unique("lgsoft"), unique("lgbak"), unique("ldst"),
             sandbox.oci_namespace)
    create_bucket(sandbox, "s3", w.src, versioned=True)
    create_bucket(sandbox, "s3", w.locked, object_lock=True)
    create_bucket(sandbox, "gs", w.gsrc, versioned=True)
    create_bucket(sandbox, "gs", w.gsoft)
    create_bucket(sandbox, "gs", w.gbak)
    create_bucket(sandbox, "oci", w.dst, versioned=True)
    dest = f"oci://{w.ns}/{w.dst}"
    rows: list[dict[str, object]] = []

    def s3_row(key: str, versions: int = 1, replica: bool = False, bucket: str = "") -> None:
        body = b""
        for v in range(versions):
            body = os.urandom(SIZE + v)
            extra = {"ObjectLockLegalHoldStatus": "ON"} if bucket else {}
            s3.put_object(Bucket=bucket or w.src, Key=key, Body=body, **extra)
        row: dict[str, object] = {"source": f"s3://{bucket or w.src}/{key}", "destination": f"{dest}/{key}"}
        if replica:
            gcs.bucket(w.gbak).blob(key).upload_from_string(body)
            row["replicas"] = [f"gs://{w.gbak}/{key}"]
        rows.append(row)

    def gs_row(bucket: str, key: str) -> None:
        gcs.bucket(bucket).blob(key).upload_from_string(os.urandom(SIZE))
        rows.append({"source": f"gs://{bucket}/{key}", "destination": f"{dest}/{key}"})

    s3_row("u/a", versions=2)                      # 1
    s3_row("u/b", replica=True)                    # 2
    gs_row(w.gsrc, "u/c")                          # 3
    s3_row("u/d", bucket=w.locked)                 # 4 HELD
    s3_row("u/e")                                  # 5 (substituted by a proxy only)
    s3_row("u/f")                                  # 6 a version planted back
    s3_row("u/g")                                  # 7 an incomplete upload planted
    s3_row("u/h", replica=True)                    # 8 a replica planted back
    gs_row(w.gsoft, "u/i")                         # 9 a soft-deleted copy
    s3_row("u/j")                                  # 10 destination replaced
    s3_row("u/k", versions=2)                      # 11 a destination version deleted
    s3_row("u/l", bucket=w.locked)                 # 12 HELD, then its source vanishes
    manifest = tmp / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_wave(manifest, w.state, load_signer(w.keys / "signing.key"), wave_settings(concurrency=8))
    assert (result.removed, result.held, result.failed) == (10, 2, 0)
    return w


def by_row(report: LiveReport) -> dict[int, ObjectResult]:
    return {r.row: r for r in report.results}


def problems(result: ObjectResult) -> str:
    return " | ".join(f"{f.check} {f.uri}: {f.detail}" for f in result.problems)


def only_problem(result: ObjectResult) -> Finding:
    assert not result.ok
    [bad] = result.problems
    return bad


def pristine_ok(report: LiveReport) -> None:
    rows = by_row(report)
    bad = [problems(rows[r]) for r in PRISTINE if not rows[r].ok]
    assert not bad, bad


# ---- the wave holds up; copies planted back do not -------------------------------------------------------

def test_finished_wave_holds_up(wave: Wave, stores: Stores) -> None:
    report = wave.check(stores, download=True, sample=len(PRISTINE) + 7)
    assert report.rows == tuple(range(1, 13)) and report.summary()["sampled"] == 12
    pristine_ok(report)
    rows = by_row(report)
    checks = {f.check for f in rows[2].findings}
    assert {"destination", "download", "destination-current", "source", "replica"} <= checks
    assert [f.check for f in rows[1].findings].count("download") == 2  # both versions read back
    assert any(f.check == "held" and "remain" in f.detail for f in rows[4].findings)
    json.dumps(report.as_dict())


def test_planted_version_is_named(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    planted = s3_client(sandbox).put_object(Bucket=wave.src, Key="u/f", Body=b"back again")["VersionId"]
    report = wave.check(stores)
    assert not report.ok
    bad = only_problem(by_row(report)[6])
    assert (bad.check, bad.uri) == ("source", f"s3://{wave.src}/u/f") and f"version {planted}" in bad.detail
    pristine_ok(report)


def test_planted_upload_is_named(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    upload = s3_client(sandbox).create_multipart_upload(Bucket=wave.src, Key="u/g")["UploadId"]
    bad = only_problem(by_row(wave.check(stores))[7])
    assert bad.check == "source" and f"incomplete upload {upload}" in bad.detail


def test_replica_copy_planted_back_is_named(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    gcs_client(sandbox).bucket(wave.gbak).blob("u/h").upload_from_string(b"restored from tape")
    bad = only_problem(by_row(wave.check(stores))[8])
    assert bad.check == "replica" and bad.uri == f"gs://{wave.gbak}/u/h" and "version" in bad.detail


def test_soft_deleted_copy_is_named(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    bucket = gcs_client(sandbox).get_bucket(wave.gsoft)
    bucket.soft_delete_policy.retention_duration_seconds = 7 * 24 * 3600
    bucket.patch()
    blob = bucket.blob("u/i")
    blob.upload_from_string(b"a copy someone made")
    blob.reload()
    generation = blob.generation
    bucket.delete_blob("u/i", generation=generation)  # soft-deleted: restorable for 7 days
    assert not list(bucket.list_blobs(prefix="u/i", versions=True))
    bad = only_problem(by_row(wave.check(stores))[9])
    assert bad.check == "source" and f"soft-deleted generation {generation}" in bad.detail


# ---- the destination --------------------------------------------------------------------------------------

def test_replaced_destination_fails(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    client, _ = oci_client(sandbox)
    client.put_object(wave.ns, wave.dst, "u/j", os.urandom(SIZE))  # same size, new bytes, a new version
    for download in (False, True):
        bad = only_problem(by_row(wave.check(stores, download=download))[10])
        assert bad.check == "destination-current" and bad.uri == f"oci://{wave.ns}/{wave.dst}/u/j"
        assert "replaced after the wave" in bad.detail


def test_destination_version_deleted_fails(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    records = [json.loads(line) for line in wave.records.splitlines()]
    first = records[10]["versions"][0]["destination_version"]
    client, _ = oci_client(sandbox)
    client.delete_object(wave.ns, wave.dst, "u/k", version_id=first)
    bad = only_problem(by_row(wave.check(stores))[11])
    assert f"version {first}" in bad.uri and "not found" in bad.detail


# ---- read only, and what only --download sees ------------------------------------------------------------

class ReadOnlyProxy:
    """Forwards GET and HEAD to one sandbox endpoint; answers 403 to every other method and records it.

    ``substitute`` makes GET bodies of matching paths come back with one byte changed (same length, same
    headers): a store that serves other bytes than its metadata describes.
    """

    def __init__(self, target: str, ca_file: str | None = None) -> None:
        parts = urlsplit(target if "://" in target else "http://" + target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        # The proxy itself speaks plain HTTP; it reaches an HTTPS sandbox endpoint over TLS.
        self.tls = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        assert self.host in ("127.0.0.1", "localhost")
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.substitute: Callable[[str], bool] = lambda path: False
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def _refuse(self) -> None:
                with proxy._lock:
                    proxy.writes.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b'{"code": "NotAuthorized", "message": "read-only proxy"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_PUT = do_POST = do_DELETE = do_PATCH = _refuse

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.reads.append(f"{self.command} {self.path}")
                conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=30) if proxy.tls is None else \
                    http.client.HTTPSConnection(proxy.host, proxy.port, timeout=30, context=proxy.tls)
                try:
                    conn.request(self.command, self.path, headers=dict(self.headers.items()))
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                if self.command == "GET" and resp.status == 200 and body and proxy.substitute(self.path):
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "keep-alive", "content-length"):
                        self.send_header(name, value)
                length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(body))
                if length is not None:
                    self.send_header("Content-Length", length)
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxies(sandbox: SandboxState) -> Iterator[dict[str, ReadOnlyProxy]]:
    ps = {"s3": ReadOnlyProxy(sandbox.s3.url, sandbox.ca_file), "gs": ReadOnlyProxy(sandbox.gcs.url, sandbox.ca_file),
          "oci": ReadOnlyProxy(sandbox.oci.url, sandbox.ca_file)}
    try:
        yield ps
    finally:
        for p in ps.values():
            p.close()


def proxied_stores(sandbox: SandboxState, ps: dict[str, ReadOnlyProxy]) -> Stores:
    base = load_wave(None, {}, sandbox.env())
    return Stores(dataclasses.replace(base.stores, endpoints=EndpointSettings(
        s3_endpoint=ps["s3"].url, gcs_endpoint=ps["gs"].url, oci_endpoint=ps["oci"].url,
        oci_config=base.endpoints.oci_config, oci_profile=base.endpoints.oci_profile,
        aws_region=base.endpoints.aws_region, sandbox=True)))


def test_check_makes_no_write(wave: Wave, sandbox: SandboxState, proxies: dict[str, ReadOnlyProxy]) -> None:
    stores = proxied_stores(sandbox, proxies)
    report = wave.check(stores, download=True)
    pristine_ok(report)  # rows other tests change may fail, for their own reasons
    for name, p in proxies.items():
        assert p.reads, f"no request reached {name} through the proxy"
        assert p.writes == [], f"{name} saw writes: {p.writes}"
    assert any("softDeleted=true" in r for r in proxies["gs"].reads)
    assert any("uploads" in r for r in proxies["s3"].reads)
    # The proxy does refuse writes: a put through the same stores fails and is recorded.
    dest = parse_uri(f"oci://{wave.ns}/{wave.dst}/u/new")
    with pytest.raises(MigratorError):
        stores.for_uri(dest).put(dest, io.BytesIO(b"x"), PutRequest(size=1))
    assert proxies["oci"].writes


def test_substituted_bytes_only_download_sees(wave: Wave, sandbox: SandboxState,
                                              proxies: dict[str, ReadOnlyProxy]) -> None:
    proxies["oci"].substitute = lambda path: f"/b/{wave.dst}/o/" in path and path.split("?")[0].endswith("e")
    stores = proxied_stores(sandbox, proxies)
    assert by_row(wave.check(stores))[5].ok  # metadata alone cannot tell
    bad = only_problem(by_row(wave.check(stores, download=True))[5])
    assert bad.check == "download" and "different bytes" in bad.detail and "/u/e version " in bad.uri
    assert all(p.writes == [] for p in proxies.values())


# ---- HELD records, sampling, refusal ---------------------------------------------------------------------

def test_held_record_whose_source_vanished_fails(wave: Wave, stores: Stores, sandbox: SandboxState) -> None:
    s3 = s3_client(sandbox)
    [version] = s3.list_object_versions(Bucket=wave.locked, Prefix="u/l")["Versions"]
    s3.put_object_legal_hold(Bucket=wave.locked, Key="u/l", VersionId=version["VersionId"],
                             LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=wave.locked, Key="u/l", VersionId=version["VersionId"])
    row = by_row(wave.check(stores))[12]
    assert row.state == "HELD"
    bad = only_problem(row)
    assert bad.check == "held" and "no copy remains" in bad.detail


def test_pending_soft_delete_holds_until_restored(sandbox: SandboxState, stores: Stores, tmp_path: Path) -> None:
    """attest-pending: the GCS source is deleted but restorable; the record is HELD and says so. The live
    check accepts the soft-deleted copy, and names it once someone restores it."""
    gcs = gcs_client(sandbox)
    src, dst = unique("lsoft"), unique("lsdst")
    create_bucket(sandbox, "gs", src, soft_delete_seconds=7 * 24 * 3600)
    create_bucket(sandbox, "oci", dst, versioned=True)
    gcs.bucket(src).blob("u/s").upload_from_string(os.urandom(SIZE))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"source": f"gs://{src}/u/s",
                                    "destination": f"oci://{sandbox.oci_namespace}/{dst}/u/s"}) + "\n")
    _, pub = generate_keypair(tmp_path / "keys")
    state = tmp_path / "state"
    result = run_wave(manifest, state, load_signer(tmp_path / "keys" / "signing.key"),
                      wave_settings(soft_delete="attest-pending"))
    assert result.held == 1 and "soft-deleted, pending hard deletion" in result.exceptions
    att, records = (state / "attestation.json").read_bytes(), (state / "records.jsonl").read_bytes()
    report = check_live(att, records, Threshold([load_public_key(pub)]), stores.for_uri, sample=1, seed=0,
                        download=True)
    assert report.ok, problems(report.results[0])
    details = " | ".join(f.detail for f in report.results[0].findings)
    assert "soft-deleted generation(s) remain" in details and "restorable" in details
    [deleted] = json.loads(records)["deletions"]
    restored = gcs.bucket(src).restore_blob("u/s", generation=int(deleted["version"]))
    row = check_live(att, records, Threshold([load_public_key(pub)]), stores.for_uri, sample=1, seed=0,
                     download=False).results[0]
    assert not row.ok
    [bad] = row.problems
    assert bad.check == "source" and bad.uri == f"gs://{src}/u/s"
    assert f"still holds version {restored.generation}" in bad.detail


def test_sample_is_reproducible_and_documented(wave: Wave, stores: Stores) -> None:
    report = wave.check(stores, sample=2, seed=42)
    assert len(report.rows) == 2 and report.seed == 42
    assert report.rows == wave.check(stores, sample=2, seed=42).rows
    # The documented algorithm, re-implemented: the `sample` smallest SHA-256 keys, in row order.
    keys = sorted((hashlib.sha256(f"migrator-live-sample/v1\n42\n{report.merkle_root}\n{r}".encode()).hexdigest(), r)
                  for r in range(1, 13))
    assert report.rows == tuple(sorted(r for _, r in keys[:2]))
    seen = {tuple(sample_rows(12, report.merkle_root, s, 2)) for s in range(20)}
    assert len(seen) > 1  # other seeds draw other samples


def test_attestation_must_verify_first(wave: Wave, stores: Stores) -> None:
    records = wave.records.replace(b'"REMOVED"', b'"HELD"', 1)
    with pytest.raises(VerificationError, match="subject records"):
        check_live(wave.attestation, records, Threshold([wave.pub]), stores.for_uri, sample=5, seed=1, download=False)


def test_every_cloud_of_the_scope_is_reached_before_sampling(wave: Wave) -> None:
    class Recording:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def get(self, scheme: str, at: str = "") -> None:
            self.asked.append(scheme)

        def for_uri(self, uri: ObjectURI) -> ObjectStore:
            raise AssertionError("nothing is read before the check")

    stores = Recording()
    store_for = reach_scope(wave.attestation, stores)  # type: ignore[arg-type]
    scope = json.loads(base64.b64decode(json.loads(wave.attestation)["payload"]))["predicate"]["scope"]
    assert {u.partition("://")[0] for u in scope} == {"s3", "gs"}
    assert stores.asked == ["gs", "oci", "s3"] and store_for == stores.for_uri


# ---- the attestation log in an OCI bucket --------------------------------------------------------------

def test_log_in_an_oci_bucket(wave: Wave, stores: Stores, sandbox: SandboxState, tmp_path: Path) -> None:
    bucket = unique("llog")
    create_bucket(sandbox, "oci", bucket)
    loc = f"oci://{wave.ns}/{bucket}/audit/log"
    log = logstore.open_log(loc, stores.get("oci"))
    signer = load_signer(wave.keys / "signing.key")
    origin = "migrator.example/oci-log"
    first = tlog.append(log, wave.attestation, signer, origin)
    saved = tlog.checkpoint(log)
    vkey = notes.vkey(origin, signer.public_key)
    wave_id = tlog.verify_log(log, vkey).entries[0].wave_id
    assert first.seq == 0 and first.wave_id == wave_id
    # The wave re-attested (a new statement of the same wave), then verified since the saved checkpoint.
    statement = json.loads(base64.b64decode(json.loads(wave.attestation)["payload"]))
    statement["predicate"]["reattested"] = True
    again = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer])
    second = tlog.append(log, again, signer, origin)
    assert second.seq == 1 and second.supersedes == first.payload_sha256
    state = tlog.verify_log(log, vkey, saved)
    assert (state.since_size, state.size) == (1, 2)
    proof = tlog.prove_wave(log, wave_id)
    assert tlog.verify_wave_proof(proof, vkey, again).seq == 1
    with pytest.raises(MigratorError, match="never replaced"):
        log.create(tlog.entry_name(0), b"{}")
