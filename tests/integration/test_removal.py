"""Complete removal on S3, GCS and OCI sources: versions, markers, uploads, replicas, holds, soft delete."""

from __future__ import annotations

import io
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.keys import generate_keypair, load_signer
from migrator.runner import WaveResult, run_wave
from migrator.sandbox.buckets import create_bucket, gcs_client, oci_client, s3_client
from migrator.sandbox.control import SandboxState
from tests.conftest import unique, wave_settings


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return generate_keypair(tmp_path / "keys")[0]


@pytest.fixture
def dest(sandbox: SandboxState) -> str:
    name = unique("dest")
    create_bucket(sandbox, "oci", name, versioned=True)
    return name


def _oci(sandbox: SandboxState, bucket: str, key: str) -> str:
    return f"oci://{sandbox.oci_namespace}/{bucket}/{key}"


def _wave(tmp_path: Path, key: Path, rows: list[dict[str, Any]],
          **policy: Any) -> tuple[WaveResult, list[dict[str, Any]]]:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_wave(manifest, tmp_path / "state", load_signer(key), wave_settings(**policy))
    records = [json.loads(line) for line in (tmp_path / "state" / "records.jsonl").read_text().splitlines()]
    return result, records


def _s3_versions(sandbox: SandboxState, bucket: str, key: str) -> list[dict[str, Any]]:
    r = s3_client(sandbox).list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in r.get("Versions", []) + r.get("DeleteMarkers", []) if v["Key"] == key]


def _oci_versions(sandbox: SandboxState, bucket: str, key: str) -> list[Any]:
    client, _ = oci_client(sandbox)
    items = client.list_object_versions(sandbox.oci_namespace, bucket, prefix=key).data.items
    return [i for i in items if i.name == key and not i.is_delete_marker]


def test_every_version_and_a_top_delete_marker(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    s3, src = s3_client(sandbox), unique("vsrc")
    create_bucket(sandbox, "s3", src, versioned=True)
    for body in (b"one", b"two", b"three"):
        s3.put_object(Bucket=src, Key="doc", Body=body)
    s3.delete_object(Bucket=src, Key="doc")  # the latest is now a delete marker
    result, (rec,) = _wave(tmp_path, key, [{"source": f"s3://{src}/doc", "destination": _oci(sandbox, dest, "doc")}])
    assert result.removed == 1, rec
    assert _s3_versions(sandbox, src, "doc") == []
    assert [d["kind"] for d in rec["deletions"]].count("delete-marker") == 1
    assert [v["size"] for v in rec["versions"]] == [3, 3, 5]  # oldest first
    assert len(_oci_versions(sandbox, dest, "doc")) == 3  # the destination keeps them as versions


def test_versions_current_disposes_noncurrent_one_by_one(sandbox: SandboxState, tmp_path: Path, key: Path,
                                                         dest: str) -> None:
    s3, src = s3_client(sandbox), unique("csrc")
    create_bucket(sandbox, "s3", src, versioned=True)
    for body in (b"old-1", b"old-22", b"live"):
        s3.put_object(Bucket=src, Key="doc", Body=body)
    result, (rec,) = _wave(tmp_path, key, [{"source": f"s3://{src}/doc", "destination": _oci(sandbox, dest, "doc")}],
                           versions="current")
    assert result.removed == 1
    assert [v["size"] for v in rec["versions"]] == [4]
    assert sorted(d["size"] for d in rec["disposed"]) == [5, 6]
    assert all(d["version"] and d["digests"] for d in rec["disposed"])
    assert [d["kind"] for d in rec["deletions"]].count("noncurrent-disposed-by-policy") == 2
    assert len(_oci_versions(sandbox, dest, "doc")) == 1
    att = json.loads((tmp_path / "state" / "attestation.json").read_text())
    import base64

    predicate = json.loads(base64.b64decode(att["payload"]))["predicate"]
    assert predicate["policy"]["versions"] == "current"


def test_incomplete_uploads_are_aborted_and_recorded(sandbox: SandboxState, tmp_path: Path, key: Path,
                                                     dest: str) -> None:
    s3, src = s3_client(sandbox), unique("usrc")
    create_bucket(sandbox, "s3", src, versioned=True)
    s3.put_object(Bucket=src, Key="f", Body=b"data")
    upload = s3.create_multipart_upload(Bucket=src, Key="f")["UploadId"]
    s3.upload_part(Bucket=src, Key="f", UploadId=upload, PartNumber=1, Body=b"leftover bytes")
    result, (rec,) = _wave(tmp_path, key, [{"source": f"s3://{src}/f", "destination": _oci(sandbox, dest, "f")}])
    assert result.removed == 1
    assert [d["upload_id"] for d in rec["deletions"] if d["kind"] == "upload"] == [upload]
    assert s3.list_multipart_uploads(Bucket=src).get("Uploads", []) == []


def test_replicas_matched_absent_and_divergent(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    s3, src, backup = s3_client(sandbox), unique("rsrc"), unique("rbak")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "gs", backup, versioned=True)
    gcs = gcs_client(sandbox).bucket(backup)
    for name, body, replica in (("same", b"same bytes", b"same bytes"), ("gone", b"no replica", None),
                                ("diff", b"primary", b"primarY")):
        s3.put_object(Bucket=src, Key=name, Body=body)
        if replica is not None:
            gcs.blob(name).upload_from_file(io.BytesIO(replica), size=len(replica))
    rows = [{"source": f"s3://{src}/{n}", "destination": _oci(sandbox, dest, n), "replicas": [f"gs://{backup}/{n}"]}
            for n in ("same", "gone", "diff")]
    result, recs = _wave(tmp_path, key, rows)
    assert (result.removed, result.held) == (2, 1)
    same, gone, diff = recs
    assert same["replica_results"][0]["result"] == "matched"
    assert gone["replica_results"][0]["result"] == "absent"
    assert diff["state"] == "HELD" and diff["reason"] == "divergent replica"
    assert [b.name for b in gcs_client(sandbox).list_blobs(backup, versions=True)] == ["diff"]
    assert len(_s3_versions(sandbox, src, "diff")) == 1  # a held object keeps its source


def test_legal_hold_and_governance_hold_unless_bypass_is_opted_in(sandbox: SandboxState, tmp_path: Path,
                                                                  key: Path, dest: str) -> None:
    s3, src = s3_client(sandbox), unique("lsrc")
    create_bucket(sandbox, "s3", src, object_lock=True)
    s3.put_object(Bucket=src, Key="legal", Body=b"x", ObjectLockLegalHoldStatus="ON")
    s3.put_object(Bucket=src, Key="gov", Body=b"y", ObjectLockMode="GOVERNANCE",
                  ObjectLockRetainUntilDate="2099-01-01T00:00:00Z")
    rows = [{"source": f"s3://{src}/{n}", "destination": _oci(sandbox, dest, n)} for n in ("legal", "gov")]
    result, recs = _wave(tmp_path, key, rows)
    assert result.held == 2
    assert [r["reason"] for r in recs] == ["S3 Object Lock legal hold", "S3 Object Lock governance retention"]
    assert len(_s3_versions(sandbox, src, "gov")) == 1
    bypass = tmp_path / "bypass"
    bypass.mkdir()
    result, recs = _wave(bypass, key, rows, bypass_governance=True)
    assert [r["state"] for r in recs] == ["HELD", "REMOVED"]
    assert any(d.get("governance_bypassed") for d in recs[1]["deletions"])


def test_gcs_holds_and_soft_delete(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    gcs = gcs_client(sandbox)
    off, on = unique("gsoff"), unique("gson")
    create_bucket(sandbox, "gs", off, versioned=True)
    create_bucket(sandbox, "gs", on, versioned=True, soft_delete_seconds=7 * 24 * 3600)
    for bucket, name in ((off, "plain"), (off, "held"), (on, "soft")):
        gcs.bucket(bucket).blob(name).upload_from_file(io.BytesIO(b"bytes of " + name.encode()))
    held = gcs.bucket(off).blob("held")
    held.temporary_hold = True
    held.patch()
    rows = [{"source": f"gs://{b}/{n}", "destination": _oci(sandbox, dest, n)}
            for b, n in ((off, "plain"), (off, "held"), (on, "soft"))]
    result, recs = _wave(tmp_path, key, rows)
    assert [r["state"] for r in recs] == ["REMOVED", "HELD", "HELD"]
    assert recs[1]["reason"] == "GCS temporary hold"
    assert recs[2]["reason"] == "GCS soft delete on" and "clear-soft-delete" in recs[2]["detail"]
    # attest-pending: delete, record the pending hard deletion, confirm it on a later run.
    pending = tmp_path / "pending"
    pending.mkdir()
    result, (rec,) = _wave(pending, key, [rows[2]], soft_delete="attest-pending")
    assert rec["state"] == "HELD" and rec["reason"] == "soft-deleted, pending hard deletion"
    assert not result.complete
    req = urllib.request.Request(f"{sandbox.gcs.url}/_emulator/clock?advance={8 * 24 * 3600}", method="POST")
    urllib.request.urlopen(req, timeout=5).close()
    result, (rec,) = _wave(pending, key, [rows[2]], soft_delete="attest-pending")
    assert rec["state"] == "REMOVED" and result.complete
    assert rec["proof"]["soft_deleted"] == []


def test_unprotected_destination_is_held_unless_opted_out(sandbox: SandboxState, tmp_path: Path, key: Path) -> None:
    s3, src, plain = s3_client(sandbox), unique("psrc"), unique("plain")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "oci", plain, versioned=False)
    s3.put_object(Bucket=src, Key="k", Body=b"v")
    row = [{"source": f"s3://{src}/k", "destination": _oci(sandbox, plain, "k")}]
    _, (rec,) = _wave(tmp_path, key, row)
    assert rec["reason"] == "destination unprotected"
    assert len(_s3_versions(sandbox, src, "k")) == 1
    opted = tmp_path / "opted"
    opted.mkdir()
    _, (rec,) = _wave(opted, key, row, require_destination_protection=False)
    assert rec["state"] == "REMOVED"


def test_archived_source_is_held(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    s3, src = s3_client(sandbox), unique("asrc")
    create_bucket(sandbox, "s3", src, versioned=True)
    s3.put_object(Bucket=src, Key="cold", Body=b"frozen", StorageClass="DEEP_ARCHIVE")
    _, (rec,) = _wave(tmp_path, key, [{"source": f"s3://{src}/cold", "destination": _oci(sandbox, dest, "cold")}])
    assert rec["state"] == "HELD" and rec["reason"] == "archived"
    assert len(_s3_versions(sandbox, src, "cold")) == 1


def test_oci_source_versions_removed(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    import oci

    client, _ = oci_client(sandbox)
    src = unique("osrc")
    create_bucket(sandbox, "oci", src, versioned=True)
    for body in (b"first", b"second"):
        client.put_object(sandbox.oci_namespace, src, "o", io.BytesIO(body), content_length=len(body))
    row = {"source": _oci(sandbox, src, "o"), "destination": _oci(sandbox, dest, "o2")}
    result, (rec,) = _wave(tmp_path, key, [row])
    assert result.removed == 1, rec
    left = client.list_object_versions(sandbox.oci_namespace, src, prefix="o").data.items
    assert left == []
    assert isinstance(oci, object)


def test_unversioned_s3_source_is_pinned_by_etag(sandbox: SandboxState, tmp_path: Path, key: Path, dest: str) -> None:
    s3, src = s3_client(sandbox), unique("esrc")
    create_bucket(sandbox, "s3", src)
    s3.put_object(Bucket=src, Key="u", Body=os.urandom(100))
    result, (rec,) = _wave(tmp_path, key, [{"source": f"s3://{src}/u", "destination": _oci(sandbox, dest, "u")}])
    assert result.removed == 1
    assert rec["deletions"][0]["if_match"]
