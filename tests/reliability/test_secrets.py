"""Secrets: a whole wave with distinctive fake credentials and key material, then a search for them everywhere
migrator writes: stdout and stderr of every command, the journal (an SQL dump and the raw database and WAL
bytes), the records, the attestation (and its decoded payload), the report, the lock, and the metadata of the
objects written to the destination. None may appear, in any usual encoding. Key files are 0600, and a signing
key readable by group or others is refused before anything is written.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import json
import secrets
import sqlite3
import stat
import subprocess
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from migrator.attest.keys import generate_keypair
from migrator.cli import app
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from tests.conftest import unique
from tests.reliability.invariant import Clouds, check, child_env, cli, run_command, snapshot, write_manifest


def _encodings(secret: bytes) -> set[bytes]:
    """The secret as it might leak: raw, base64 (standard and URL-safe), hex, percent-encoded, JSON-escaped."""
    text = secret.decode("latin-1")
    return {secret, base64.b64encode(secret).rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"="),
            binascii.hexlify(secret), binascii.hexlify(secret).upper(), urllib.parse.quote(text).encode(),
            json.dumps(text)[1:-1].encode()}


def _pem_needles(pem: bytes) -> set[bytes]:
    """Every base64 line of a PEM body (each is 48 bytes of the key), and the marker line."""
    lines = [ln.strip() for ln in pem.splitlines() if ln.strip() and not ln.startswith(b"-----")]
    needles = {ln for ln in lines if len(ln) >= 40}
    needles.add(b"PRIVATE KEY-----")
    return needles


def _haystacks(state: Path, outputs: Iterable[str | bytes], extra_files: Iterable[Path]) -> dict[str, bytes]:
    out: dict[str, bytes] = {f"output {i}": o.encode() if isinstance(o, str) else o for i, o in enumerate(outputs)}
    for p in sorted(state.rglob("*")):
        if p.is_file():
            out[str(p)] = p.read_bytes()
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        out["journal dump"] = "\n".join(conn.iterdump()).encode()
    finally:
        conn.close()
    envelope = json.loads((state / "attestation.json").read_bytes())
    out["attestation payload"] = base64.b64decode(envelope["payload"])
    for p in extra_files:
        out[str(p)] = p.read_bytes()
    return out


def test_no_credential_or_key_material_is_written_anywhere(sandbox: SandboxState, clouds: Clouds,
                                                           tmp_path: Path) -> None:
    # Distinctive fake AWS credentials for the run (the sandbox accepts any), and the sandbox's OCI key.
    aws_secret = f"MigratorFakeSecret{secrets.token_hex(12)}"
    aws_token = f"MigratorFakeSessionToken{secrets.token_hex(16)}"
    oci_config = configparser.ConfigParser()
    oci_config.read(sandbox.oci_config)
    oci_key_file = Path(oci_config["DEFAULT"]["key_file"])
    oci_pem = oci_key_file.read_bytes()

    keydir = tmp_path / "keys"
    gen = subprocess.run(cli("keys", "generate", "--out", str(keydir)), env=child_env(), capture_output=True,
                         text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    signing_key, signing_pub = keydir / "signing.key", keydir / "signing.pub"
    signing_pem = signing_key.read_bytes()
    private = serialization.load_pem_private_key(signing_pem, password=None)
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())

    # The custodian's subject key (an HMAC key that hides subject ids in the subject index).
    subject_key = tmp_path / "custodian" / "subject.key"
    subject_key.parent.mkdir()
    made = subprocess.run(cli("subjects", "key", "--out", str(subject_key)), env=child_env(), capture_output=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr.decode()
    subject_hex = subject_key.read_bytes().strip()

    needles: dict[str, set[bytes]] = {
        "AWS secret access key": _encodings(aws_secret.encode()),
        "AWS session token": _encodings(aws_token.encode()),
        "OCI API private key": _pem_needles(oci_pem),
        "signing key PEM": _pem_needles(signing_pem),
        "signing key raw bytes": _encodings(raw) - {raw},  # raw 32 bytes: search their text forms
        "subject key": _encodings(subject_hex) | (_encodings(bytes.fromhex(subject_hex.decode())) - {
            bytes.fromhex(subject_hex.decode())}),
    }

    # The search would see them: each needle set matches its own source.
    assert any(n in oci_pem for n in needles["OCI API private key"])
    assert any(n in signing_pem for n in needles["signing key PEM"])
    assert any(f in json.dumps({"k": aws_secret}).encode() for f in needles["AWS secret access key"])

    # Key files are private.
    for path in (signing_key, oci_key_file, Path(sandbox.oci_config), subject_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # A wave with every outcome: removed (with a GCS replica), held by a legal hold, failed (no such source).
    src, locked, rep, dst = unique("ssrc"), unique("slock"), unique("srep"), unique("sdst")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "s3", locked, object_lock=True)
    create_bucket(sandbox, "gs", rep, versioned=True)
    create_bucket(sandbox, "oci", dst, versioned=True)
    ns = sandbox.oci_namespace
    rows: list[dict[str, object]] = []
    for i in range(4):
        body = secrets.token_bytes(500 + i)
        clouds.s3.put_object(Bucket=src, Key=f"user/{i}", Body=body)
        row: dict[str, object] = {"source": f"s3://{src}/user/{i}", "destination": f"oci://{ns}/{dst}/user/{i}",
                                  "subject": f"u{i}"}
        if i % 2:
            clouds.gcs.bucket(rep).blob(f"user/{i}").upload_from_string(body)
            row["replicas"] = [f"gs://{rep}/user/{i}"]
        rows.append(row)
    clouds.s3.put_object(Bucket=locked, Key="held", Body=b"legal", ObjectLockLegalHoldStatus="ON")
    rows.append({"source": f"s3://{locked}/held", "destination": f"oci://{ns}/{dst}/held"})
    rows.append({"source": f"s3://{src}/no-such-object", "destination": f"oci://{ns}/{dst}/missing"})
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    snap = snapshot(clouds, manifest)

    env = child_env(AWS_SECRET_ACCESS_KEY=aws_secret, AWS_SESSION_TOKEN=aws_token)
    hashes = tmp_path / "custodian" / "subject-hashes.jsonl"
    hashed = subprocess.run(cli("subjects", "hash", "--key", str(subject_key), "--manifest", str(manifest),
                                "-o", str(hashes)), env=env, capture_output=True, timeout=60)
    assert hashed.returncode == 0, hashed.stderr.decode()
    state = tmp_path / "state"
    runs = [subprocess.run(run_command(manifest, state, signing_key, "--subject-hashes", str(hashes)), env=env,
                           capture_output=True, timeout=300) for _ in range(2)]  # the second resumes held/failed
    for r in runs:
        assert r.returncode == 1, r.stdout.decode() + r.stderr.decode()   # held and failed rows: exit 1
    assert b"S3 Object Lock legal hold" in runs[0].stdout and b"source not found" in runs[0].stdout
    check(snap, clouds, state).assert_ok()
    # The state folder names users' objects: private to its owner, every file in it too.
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
    assert {"journal.sqlite", "records.jsonl", "attestation.json", "records.idx"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600), modes
    outputs: list[str | bytes] = [o for r in (made, hashed, *runs) for o in (r.stdout, r.stderr)]
    extra_files: list[Path] = [hashes]
    for args in (("status", "--state", str(state)), ("plan", str(manifest), "--json"), ("plan", str(manifest)),
                 ("audit", "verify", str(state / "attestation.json"), "--key", str(signing_pub),
                  "--records", str(state / "records.jsonl"), "--manifest", str(manifest))):
        r = subprocess.run(cli(*args), env=env, capture_output=True, timeout=120)
        assert r.returncode in ((0, 1) if args[0] == "plan" else (0,)), r.stdout.decode() + r.stderr.decode()
        outputs += [r.stdout, r.stderr]
    # The auditor's live spot check, with the same credentials (exit 3 would name a record that does not hold).
    live = subprocess.run(cli("audit", "check", str(state / "attestation.json"), "--key", str(signing_pub), "--live",
                              "--sample", "10", "--download", "--seed", "1"), env=env, capture_output=True, timeout=120)
    assert live.returncode in (0, 3) and b"Traceback" not in live.stderr, live.stderr.decode()
    outputs += [live.stdout, live.stderr]
    if "report" in {c.name for c in app.registered_commands}:
        report = tmp_path / "report.html"
        r = subprocess.run(cli("report", "--state", str(state), "-o", str(report)), env=env, capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        outputs += [r.stdout, r.stderr]
        extra_files.append(report)
    # What migrator wrote into the destination's object metadata.
    for planned in snap.rows.values():
        for entry in clouds.versions(planned.destination):
            head = clouds.oci.head_object(ns, dst, planned.destination.key, version_id=entry.version)
            outputs.append(json.dumps(dict(head.headers)))

    haystacks = _haystacks(state, outputs, extra_files)
    assert haystacks["journal dump"] and haystacks["attestation payload"]
    found = [f"{what} in {where}" for where, data in haystacks.items()
             for what, forms in needles.items() if any(form in data for form in forms)]
    assert found == []


def test_signing_key_readable_by_others_is_refused_before_any_write(sandbox: SandboxState, clouds: Clouds,
                                                                   tmp_path: Path) -> None:
    key, _ = generate_keypair(tmp_path / "keys")
    pem = key.read_bytes()
    src, dst = unique("ksrc"), unique("kdst")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "oci", dst, versioned=True)
    clouds.s3.put_object(Bucket=src, Key="k", Body=b"still here")
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"source": f"s3://{src}/k", "destination": f"oci://{sandbox.oci_namespace}/{dst}/k"}])
    snap = snapshot(clouds, manifest)
    for mode in (0o644, 0o640, 0o604, 0o620):
        key.chmod(mode)
        state = tmp_path / f"state-{mode:o}"
        out = subprocess.run(run_command(manifest, state, key), env=child_env(), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "chmod 600" in out.stderr and "Traceback" not in out.stderr
        assert not any(n.decode() in out.stdout + out.stderr for n in _pem_needles(pem))
        assert not state.exists()
        report = check(snap, clouds, None)
        assert report.ok and report.at_source == 1
        assert clouds.versions(snap.rows[1].destination) == []
