"""`migrator plan`: what a wave would find and hold, with nothing written, copied or deleted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from migrator.plan import plan_wave
from migrator.sandbox.buckets import create_bucket, gcs_client, s3_client
from migrator.sandbox.control import SandboxState
from tests.conftest import unique, wave_settings


def _setup(sandbox: SandboxState, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    src, soft, dst, open_dst = unique("psrc"), unique("psoft"), unique("pdst"), unique("popen")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "gs", soft, versioned=True, soft_delete_seconds=7 * 24 * 3600)
    create_bucket(sandbox, "oci", dst, versioned=True)
    create_bucket(sandbox, "oci", open_dst, versioned=False)
    s3 = s3_client(sandbox)
    s3.put_object(Bucket=src, Key="a", Body=b"one")
    s3.put_object(Bucket=src, Key="a", Body=b"two!")          # two versions
    s3.put_object(Bucket=src, Key="b", Body=b"three")
    s3.create_multipart_upload(Bucket=src, Key="b")           # a leftover upload
    s3.put_object(Bucket=src, Key="c", Body=b"held")
    gcs_client(sandbox).bucket(soft).blob("g").upload_from_string(b"gcs")
    ns = sandbox.oci_namespace
    rows = [
        {"source": f"s3://{src}/a", "destination": f"oci://{ns}/{dst}/a"},
        {"source": f"s3://{src}/b", "destination": f"oci://{ns}/{dst}/b"},
        {"source": f"s3://{src}/missing", "destination": f"oci://{ns}/{dst}/missing"},
        {"source": f"s3://{src}/c", "destination": f"oci://{ns}/{open_dst}/c"},
        {"source": f"gs://{soft}/g", "destination": f"oci://{ns}/{dst}/g"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, {"src": src, "soft": soft, "dst": dst, "open_dst": open_dst}


def _s3_state(sandbox: SandboxState, bucket: str) -> list[tuple[str, str]]:
    listing = s3_client(sandbox).list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in listing.get("Versions", []))


def test_plan_counts_what_is_there_and_what_would_be_held(sandbox: SandboxState, tmp_path: Path) -> None:
    manifest, names = _setup(sandbox, tmp_path)
    before = _s3_state(sandbox, names["src"])
    plan = plan_wave(manifest, wave_settings())
    assert not plan.ready
    assert plan.found["sources found"] == 4 and plan.found["sources missing"] == 1
    assert plan.found["source versions"] == 5 and plan.found["source bytes"] == 3 + 4 + 5 + 4 + 3
    assert plan.found["incomplete uploads"] == 1
    assert plan.rows_held == {"destination unprotected": 1, "GCS soft delete on": 1}
    assert "row 4 (line 4)" in plan.examples["destination unprotected"][0]
    assert plan.rows_failing == {"source not found": 1}   # row 3; rows 4 and 5 are held, counted once
    assert plan.examples["source not found"] == [f"row 3 (line 3): s3://{names['src']}/missing"]
    record = plan.as_record()
    assert record["locations"][f"s3://{names['src']}"]["roles"] == {"source": 4}
    assert record["locations"][f"gs://{names['soft']}"]["settings"]["soft_delete_seconds"] == 7 * 24 * 3600
    # Nothing was touched.
    assert _s3_state(sandbox, names["src"]) == before
    assert s3_client(sandbox).list_multipart_uploads(Bucket=names["src"]).get("Uploads")
    # Without listings only the buckets are checked; the policy's opt-outs are honoured.
    quick = plan_wave(manifest, wave_settings(require_destination_protection=False, soft_delete="attest-pending"),
                      list_objects=False)
    assert quick.ready and not quick.found


def test_plan_cli_json_exit_codes_and_bad_input(sandbox: SandboxState, tmp_path: Path) -> None:
    manifest, _ = _setup(sandbox, tmp_path)
    cmd = [sys.executable, "-m", "migrator", "plan", str(manifest), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ready"] is False and doc["manifest"]["rows"] == 5
    assert doc["rows_held_by_reason"]["GCS soft delete on"] == 1
    human = subprocess.run([sys.executable, "-m", "migrator", "plan", str(manifest)], capture_output=True,
                           text=True, timeout=120)
    assert human.returncode == 1 and "would hold 1 row(s): destination unprotected" in human.stdout
    assert "not ready" in human.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "s3://some-bucket/k", "destination": "oci://ns/dest"}\n')
    refused = subprocess.run([sys.executable, "-m", "migrator", "plan", str(bad)], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2
    assert "bad.jsonl, line 1, field 'destination'" in refused.stderr and "Traceback" not in refused.stderr


def test_a_row_is_counted_under_one_reason(sandbox: SandboxState, tmp_path: Path) -> None:
    # Its destination bucket is missing and so is its source: the missing destination refuses the wave and
    # names the row; the row is not also counted as held or failing.
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"source": f"s3://{unique('nosrc')}/a",
                                    "destination": f"oci://{sandbox.oci_namespace}/{unique('nodst')}/a"}) + "\n")
    plan = plan_wave(manifest, wave_settings())
    assert len(plan.refusals) == 2 and "destination bucket not found" in plan.refusals[0]
    assert plan.refusals[1].startswith(f"{manifest}:1: destination: row 1 ")
    assert not plan.rows_held and not plan.rows_failing and not plan.ready
