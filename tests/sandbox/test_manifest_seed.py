"""Seeding the sandbox from a manifest (migrator.sandbox.manifest_seed): the buckets its rows name, objects
of the declared sizes, and a manifest of the seeded content's own digests that a wave then migrates."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.config import load_wave
from migrator.errors import InputError
from migrator.estate import Estate
from migrator.manifest import validate
from migrator.runner import WaveResult, run_wave
from migrator.sandbox.buckets import gcs_client, oci_client, s3_client
from migrator.sandbox.control import SandboxState
from migrator.sandbox.estate import estate_locations
from migrator.sandbox.manifest_seed import BucketPlace, SeededManifest, sandbox_placer, seed_manifest
from migrator.uri import parse_uri
from tests.conftest import unique


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _s3_body(state: SandboxState, server: str, uri: str) -> bytes:
    u = parse_uri(uri)
    return bytes(s3_client(state, server).get_object(Bucket=u.bucket, Key=u.key)["Body"].read())


def _crc32c_b64(data: bytes) -> str:
    return base64.b64encode(int(google_crc32c.value(data)).to_bytes(4, "big")).decode()


def _wave_file(tmp_path: Path, state: SandboxState, buckets: dict[str, list[str]]) -> Path:
    wave = tmp_path / "wave.toml"
    wave.write_text(estate_locations(state, buckets), encoding="utf-8")
    return wave


def _estate(wave: Path) -> Estate:
    return load_wave(wave, {}, os.environ).estate


def _run(tmp_path: Path, manifest: Path, wave: Path | None) -> tuple[WaveResult, dict[int, str]]:
    """A wave as demo.py runs one: settings as `migrator run` resolves them, a fresh key, the attestation
    verified against the records and the manifest."""
    keys = tmp_path / "keys"
    key, pub = generate_keypair(keys)
    result = run_wave(manifest, tmp_path / "state", load_signer(key), load_wave(wave, {}, os.environ))
    verify_attestation(result.attestation.read_bytes(), Inputs(records=result.records, manifest=manifest),
                       AllOf(Threshold([load_public_key(pub)]), RequireRecords(), RequireManifest()))
    states = {r["row"]: r["state"] for r in map(json.loads, result.records.read_text().splitlines())}
    return result, states


def test_a_csv_manifest_seeds_declared_sizes_scaled_with_its_digest_kinds(sandbox: SandboxState,
                                                                          tmp_path: Path) -> None:
    src, backup, dest = unique("seed-csv"), unique("seed-csv-bak"), unique("seed-csv-dest")
    ns = sandbox.oci_namespace
    manifest = tmp_path / "in.csv"
    manifest.write_text(
        "source,destination,replica,size,md5,crc32c,subject,residency\n"
        f"s3://{src}/a/1.bin,oci://{ns}/{dest}/a/1.bin,gs://{backup}/a/1.bin,20000,,9a71bb4c,u-1,US\n"
        f"s3://{src}/a/2.bin,oci://{ns}/{dest}/a/2.bin,,3000,{'0' * 32},,,\n"
        f"s3://{src}/a/3.bin,oci://{ns}/{dest}/a/3.bin,,,,,u-3,\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    seeded = seed_manifest(sandbox, manifest, out, scale=0.5, seed=7)

    assert seeded == SeededManifest(manifest=out, rows=3, objects=4, bytes=10000 * 2 + 1500 + 1024,
                                    declared_bytes=23000, buckets=(f"s3://{src}", f"oci://{ns}/{dest}",
                                                                   f"gs://{backup}"), capped=0,
                                    source_rows=(1, 2, 3))
    rows = _rows(out)
    assert [r["size"] for r in rows] == [10000, 1500, 1024]
    assert [sorted(set(r) & {"md5", "sha256", "crc32c"}) for r in rows] == [["crc32c"], ["md5"], ["sha256"]]
    assert rows[0]["replicas"] == [f"gs://{backup}/a/1.bin"]
    assert (rows[0]["subject"], rows[0]["residency"]) == ("u-1", "US")
    assert "subject" not in rows[1] and rows[2]["subject"] == "u-3"
    one = _s3_body(sandbox, "s3", rows[0]["source"])
    assert len(one) == 10000 and _crc32c_b64(one) == rows[0]["crc32c"]
    assert gcs_client(sandbox).bucket(backup).blob("a/1.bin").download_as_bytes() == one
    assert hashlib.md5(_s3_body(sandbox, "s3", rows[1]["source"])).hexdigest() == rows[1]["md5"]
    assert hashlib.sha256(_s3_body(sandbox, "s3", rows[2]["source"])).hexdigest() == rows[2]["sha256"]
    client, _ = oci_client(sandbox)
    assert client.get_bucket(ns, dest).data.versioning == "Enabled"   # destinations are versioned
    assert validate(out).rows == 3

    # The same seed writes the same bytes; the buckets are there already, and are left as they are.
    again = seed_manifest(sandbox, manifest, tmp_path / "again.jsonl", scale=0.5, seed=7)
    assert _rows(again.manifest) == rows
    other = seed_manifest(sandbox, manifest, tmp_path / "other.jsonl", scale=0.5, seed=8)
    assert _rows(other.manifest)[0]["crc32c"] != rows[0]["crc32c"]


def test_qualified_uris_are_placed_on_their_locations_servers_and_written_as_given(sandbox: SandboxState,
                                                                                  tmp_path: Path) -> None:
    users, sg, gcp, dest = unique("seed-dc"), unique("seed-sg"), unique("seed-gcp"), unique("seed-q-dest")
    ns = sandbox.oci_namespace
    wave = _wave_file(tmp_path, sandbox, {"dc": [users], "aws-sg": [sg], "gcp": [gcp], "oci-eu": [dest]})
    rows_in = [{"source": f"s3://dc@{users}/k/1", "destination": f"oci://{ns}/{dest}/k/1",
                "replicas": [f"s3://aws-sg@{sg}/k/1", f"gs://{gcp}/k/1"], "size": 100, "sha256": "0" * 64},
               {"source": f"s3://{users}/k/2", "destination": f"oci://oci-eu@{ns}/{dest}/k/2", "size": 7}]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows_in), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    seeded = seed_manifest(sandbox, manifest, out, estate=_estate(wave))

    written = _rows(out)
    assert [(r["source"], r["destination"], r.get("replicas")) for r in written] == \
        [(r["source"], r["destination"], r.get("replicas")) for r in rows_in]
    assert seeded.buckets == (f"s3://dc@{users}", f"oci://oci-eu@{ns}/{dest}", f"s3://aws-sg@{sg}",
                              f"gs://gcp@{gcp}")
    dc = s3_client(sandbox, "s3dc")
    assert dc.head_object(Bucket=users, Key="k/1")["ContentLength"] == 100
    assert users not in [b["Name"] for b in s3_client(sandbox, "s3").list_buckets()["Buckets"]]
    assert s3_client(sandbox, "s3").get_bucket_location(Bucket=sg)["LocationConstraint"] == "ap-southeast-1"
    assert gcs_client(sandbox).get_bucket(gcp).location.lower() == "us-east1"
    eu, _ = oci_client(sandbox, "oci_eu")
    assert eu.get_bucket(ns, dest).data.name == dest
    assert validate(out, estate=_estate(wave)).rows == 2

    place = sandbox_placer(sandbox)
    assert place(parse_uri(f"s3://aws-sg@{sg}/x")) == BucketPlace("s3", "ap-southeast-1")
    assert place(parse_uri(f"oci://{ns}/{dest}/x")) == BucketPlace("oci", None)
    assert place(parse_uri(f"gs://{gcp}/x")) == BucketPlace("gcs", None)


def test_a_qualified_uri_without_a_wave_file_is_refused_as_run_refuses_it(sandbox: SandboxState,
                                                                          tmp_path: Path) -> None:
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"source": "s3://dc@seed-nowave/k",
                                    "destination": f"oci://{sandbox.oci_namespace}/seed-nowave/k"}) + "\n")
    with pytest.raises(InputError, match="no locations are given"):
        seed_manifest(sandbox, manifest, tmp_path / "out.jsonl")


def test_a_sample_is_the_same_rows_for_the_same_seed(sandbox: SandboxState, tmp_path: Path) -> None:
    src, dest = unique("seed-sample"), unique("seed-sample-dest")
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"s3://{src}/k/{i:02d}", "size": 10,
                                            "destination": f"oci://{sandbox.oci_namespace}/{dest}/k/{i:02d}"})
                                + "\n" for i in range(1, 21)), encoding="utf-8")

    def sampled(n: int, seed: int) -> list[str]:
        out = tmp_path / f"s-{n}-{seed}.jsonl"
        assert seed_manifest(sandbox, manifest, out, sample=n, seed=seed).rows == min(n, 20)
        return [r["source"] for r in _rows(out)]

    first = sampled(5, 1)
    assert first == sampled(5, 1) and first != sampled(5, 2)
    assert first == sorted(first)   # in input order
    assert len(sampled(50, 1)) == 20


def test_versions_come_first_with_other_bytes_and_replicas_get_them_too(sandbox: SandboxState,
                                                                        tmp_path: Path) -> None:
    src, rep, dest = unique("seed-ver"), unique("seed-ver-rep"), unique("seed-ver-dest")
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"source": f"s3://{src}/v", "replicas": [f"gs://{rep}/v"], "size": 300,
                                    "destination": f"oci://{sandbox.oci_namespace}/{dest}/v"}) + "\n")
    seeded = seed_manifest(sandbox, manifest, tmp_path / "out.jsonl", versions=3)
    assert (seeded.objects, seeded.bytes) == (6, 1800)
    s3 = s3_client(sandbox)
    listed = s3.list_object_versions(Bucket=src, Prefix="v")["Versions"]
    bodies = {s3.get_object(Bucket=src, Key="v", VersionId=v["VersionId"])["Body"].read() for v in listed}
    assert len(listed) == 3 and len(bodies) == 3
    latest = _s3_body(sandbox, "s3", f"s3://{src}/v")
    assert hashlib.sha256(latest).hexdigest() == _rows(seeded.manifest)[0]["sha256"]
    generations = list(gcs_client(sandbox).list_blobs(rep, versions=True))
    assert len(generations) == 3


def test_sizes_over_the_cap_are_capped_and_counted(sandbox: SandboxState, tmp_path: Path) -> None:
    src, dest = unique("seed-cap"), unique("seed-cap-dest")
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"s3://{src}/{k}", "size": size,
                                            "destination": f"oci://{sandbox.oci_namespace}/{dest}/{k}"}) + "\n"
                                for k, size in (("big", 10**12), ("small", 10))), encoding="utf-8")
    seeded = seed_manifest(sandbox, manifest, tmp_path / "out.jsonl", max_object_bytes=3 * 2**20 + 5)
    assert seeded.capped == 1 and seeded.declared_bytes == 10**12 + 10
    assert [r["size"] for r in _rows(seeded.manifest)] == [3 * 2**20 + 5, 10]
    assert s3_client(sandbox).head_object(Bucket=src, Key="big")["ContentLength"] == 3 * 2**20 + 5


def test_holds_on_rows_outside_the_manifest_are_refused(sandbox: SandboxState, tmp_path: Path) -> None:
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"source": "s3://seed-holds-x/k",
                                    "destination": f"oci://{sandbox.oci_namespace}/seed-holds-x/k"}) + "\n")
    with pytest.raises(InputError, match="holds name rows the manifest does not have: 2"):
        seed_manifest(sandbox, manifest, tmp_path / "out.jsonl", holds={2})


def test_a_wave_over_the_seeded_manifest_removes_the_rows_and_leaves_the_held_one(sandbox: SandboxState,
                                                                                  tmp_path: Path) -> None:
    users, locked, gcp, dest = unique("seed-run"), unique("seed-run-lock"), unique("seed-run-gcp"), \
        unique("seed-run-dest")
    ns = sandbox.oci_namespace
    wave = _wave_file(tmp_path, sandbox, {"dc": [users, locked], "aws-sg": [users], "gcp": [gcp],
                                          "oci-us": [dest]})
    manifest = tmp_path / "in.csv"
    manifest.write_text(
        "source,destination,replica,size,md5\n"
        f"s3://dc@{users}/u/1,oci://{ns}/{dest}/u/1,s3://aws-sg@{users}/u/1,5000,\n"
        f"s3://dc@{locked}/u/2,oci://{ns}/{dest}/u/2,,700,\n"
        f"gs://{gcp}/u/3,oci://{ns}/{dest}/u/3,,2000000,{'a' * 32}\n"
        f"gs://{gcp}/u/4,oci://{ns}/{dest}/u/4,,10,\n", encoding="utf-8")
    seeded = seed_manifest(sandbox, manifest, tmp_path / "seeded.jsonl", estate=_estate(wave), versions=2,
                           holds={2, 4})
    assert seeded.rows == 4
    dc = s3_client(sandbox, "s3dc")
    assert dc.get_object_legal_hold(Bucket=locked, Key="u/2")["LegalHold"]["Status"] == "ON"
    assert gcs_client(sandbox).bucket(gcp).get_blob("u/4").temporary_hold is True

    result, states = _run(tmp_path, seeded.manifest, wave)
    assert states == {1: "REMOVED", 2: "HELD", 3: "REMOVED", 4: "HELD"}
    assert (result.removed, result.held, result.failed) == (2, 2, 0)
    assert dc.get_object_legal_hold(Bucket=locked, Key="u/2")["LegalHold"]["Status"] == "ON"
    assert "Versions" not in dc.list_object_versions(Bucket=users, Prefix="u/1")
    client, _ = oci_client(sandbox)
    assert client.head_object(ns, dest, "u/3").headers["content-length"] == "2000000"
