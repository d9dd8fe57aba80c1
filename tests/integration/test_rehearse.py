"""`migrator rehearse`: the real manifest and wave file played on a sandbox of their own, no real cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.errors import InputError
from migrator.rehearsal import RehearsalOptions, rehearse

# A production wave file: endpoints, credential files and owners that exist nowhere here. A rehearsal
# that opened one of these files, or sent a request to one of these hosts, would fail.
WAVE = """
[locations.dc]
kind = "s3"
endpoint = "https://s3.va1.dc.example.internal"
region = "us-east-1"
owner = "000000000042"
addressing_style = "path"
profile = "dc-prod"
ca_bundle = "/nonexistent/dc-ca.pem"
buckets = ["users", "media"]
requests_per_second = 40

[locations.aws-sg]
kind = "s3"
region = "ap-southeast-1"
owner = "999999999999"
profile = "aws-prod"
buckets = ["sg-backups"]

[locations.gcp]
kind = "gs"
region = "us-east1"
owner = "111111111111"
credentials_file = "/nonexistent/gcp.json"
buckets = ["gcp-copies"]

[locations.oci-us]
kind = "oci"
region = "us-phoenix-1"
owner = "acmeprod"
config_file = "/nonexistent/oci/config"
profile = "PROD"
buckets = ["us-users"]
bytes_per_second = 1048576

[locations.oci-eu]
kind = "oci"
region = "eu-frankfurt-1"
owner = "acmeprod"
config_file = "/nonexistent/oci/config"
buckets = ["eu-users"]

[policy]
residency = "US"
allowed_regions = ["us-phoenix-1"]
other_residency = "{other}"

[transfer]
requests_per_second = 20
"""


def _manifest(path: Path, us: int = 10, eu: int = 2) -> Path:
    lines = []
    for i in range(us):
        source = f"s3://dc@users/u{i:03d}/photo.jpg" if i % 3 else f"gs://gcp@gcp-copies/u{i:03d}/post.json"
        row = {"source": source, "destination": f"oci://oci-us@acmeprod/us-users/u{i:03d}/obj",
               "size": 1000 + 37 * i, "sha256": "0" * 64, "residency": "US"}
        if i % 3 == 1:
            row["replicas"] = [f"s3://aws-sg@sg-backups/u{i:03d}/photo.jpg"]
        lines.append(json.dumps(row))
    for i in range(eu):
        lines.append(json.dumps({"source": f"s3://dc@media/eu{i:03d}/clip.mp4",
                                 "destination": f"oci://oci-eu@acmeprod/eu-users/eu{i:03d}/clip.mp4",
                                 "size": 5000, "residency": "EU"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _wave(path: Path, other: str = "out-of-scope") -> Path:
    path.write_text(WAVE.replace("{other}", other))
    return path


def test_a_rehearsal_moves_every_row_verifies_and_projects_at_the_caps(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "wave.jsonl")
    r = rehearse(manifest, _wave(tmp_path / "wave.toml"), tmp_path / "r", RehearsalOptions())
    assert r.ok and r.verified
    assert (r.wave.rows, r.wave.removed, r.wave.out_of_scope) == (12, 10, 2)
    assert r.seeded.rows == 12
    # The declared digests (all zeros) could not be seeded: the rehearsed manifest carries the real ones.
    rows = [json.loads(line) for line in r.rehearsed_manifest.read_text().splitlines()]
    assert all(row.get("sha256") != "0" * 64 for row in rows)
    assert any("digests replaced" in note for note in r.notes)
    p = r.projection
    assert (p.rows, p.in_scope_rows, p.rehearsed_rows) == (12, 10, 10)
    assert p.requests > 0 and p.requests_per_object == round(p.requests / 10, 2)
    assert p.projected_requests == p.requests
    # Every cap gives a bound; the longest is the projection.
    assert {c.split(":")[0] for c in p.caps} == {"wave", "dc", "oci-us"}
    assert p.seconds == max(s for _, s in p.bounds)
    wave_bound = next(s for c, s in p.bounds if c.startswith("wave requests"))
    assert wave_bound == pytest.approx(p.projected_requests / 20)
    oci_bytes = next(s for c, s in p.bounds if c.startswith("oci-us bytes"))
    assert oci_bytes == pytest.approx(sum(1000 + 37 * i for i in range(10)) / 1048576)
    # Each location was played by a sandbox endpoint; the OCI ones in the declared regions.
    assert any(line.startswith("dc (s3, region us-east-1) -> sandbox s3dc https://127.0.0.1:") for line in r.placement)
    assert any(line.startswith("oci-us (oci, region us-phoenix-1) -> sandbox oci ") for line in r.placement)
    assert any("permissions" in item for item in r.cannot_predict)
    assert sum(r.requests_by_endpoint.values()) == p.requests


def test_a_sample_rehearses_some_rows_and_projects_the_rest(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "wave.jsonl", us=20, eu=0)
    r = rehearse(manifest, _wave(tmp_path / "wave.toml"), tmp_path / "r", RehearsalOptions(sample=5, seed=7))
    assert r.ok and r.seeded.rows == 5 and r.wave.rows == 5
    p = r.projection
    assert (p.rows, p.in_scope_rows, p.rehearsed_rows) == (20, 20, 5)
    assert p.projected_requests == round(p.requests * 4)
    assert any("a sample of 5 of 20 rows" in note for note in r.notes)
    again = rehearse(manifest, _wave(tmp_path / "wave.toml"), tmp_path / "r2", RehearsalOptions(sample=5, seed=7))
    assert again.seeded.source_rows == r.seeded.source_rows


def test_a_refused_wave_names_the_real_file_and_line_and_starts_nothing(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "wave.jsonl")
    with pytest.raises(InputError) as info:
        rehearse(manifest, _wave(tmp_path / "wave.toml", other="refuse"), tmp_path / "r", RehearsalOptions())
    text = str(info.value)
    assert f"{manifest}:11: residency" in text and f"{manifest}:12: residency" in text
    assert not (tmp_path / "r").exists()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MIGRATOR_", "STORAGE_EMULATOR"))}
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "MIGRATOR_NO_BACKOFF": "1"}, timeout=300)


def test_the_command_reports_and_exits_by_the_contract(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "wave.jsonl", us=4, eu=1)
    wave = _wave(tmp_path / "wave.toml")
    done = _cli("rehearse", str(manifest), "--wave", str(wave), "--scale", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ready: the wave would remove every in-scope row" in done.stdout
    assert "at the caps (wave: 20 requests/s; dc: 40 requests/s; oci-us: 1048576 bytes/s)" in done.stdout
    assert "not predicted by a rehearsal:" in done.stdout
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("migrator-rehearsal-*"))   # the temp folder went
    as_json = _cli("rehearse", str(manifest), "--wave", str(wave), "--json", "--dir", str(tmp_path / "kept"),
                   cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] and report["wave"]["removed"] == 4 and report["projection"]["seconds"] > 0
    assert (tmp_path / "kept" / "state" / "attestation.json").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(manifest.read_text() + '{"source": "s3://dc@users/x", "destination": 7}\n')
    refused = _cli("rehearse", str(bad), "--wave", str(wave), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"{bad}" in refused.stderr and "line 6" in refused.stderr and "Traceback" not in refused.stderr
    scale = _cli("rehearse", str(manifest), "--scale", "0", cwd=tmp_path)
    assert scale.returncode == 2 and "--scale" in scale.stderr


def test_more_than_one_oci_tenancy_cannot_be_rehearsed(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://src-bucket/k,oci://ns1/dst/k\ns3://src-bucket/k2,oci://ns2/dst/k2\n")
    with pytest.raises(InputError, match="one OCI tenancy"):
        rehearse(manifest, None, tmp_path / "r", RehearsalOptions())
