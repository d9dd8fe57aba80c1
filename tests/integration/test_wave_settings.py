"""A wave's settings and signer are resolved once: one policy per state folder, one signer per `run --log`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from migrator.attest import signers
from migrator.attest.keys import Signer, generate_keypair, load_signer
from migrator.attest.verify import parse_attestation
from migrator.cli import app
from migrator.errors import StateError
from migrator.journal import Journal
from migrator.runner import run_wave
from migrator.sandbox.buckets import create_bucket, s3_client
from migrator.sandbox.control import SandboxState
from tests.conftest import unique, wave_settings


def _wave(sandbox: SandboxState, tmp_path: Path, n: int) -> tuple[Path, str]:
    s3 = s3_client(sandbox)
    src, dst = unique("ssrc"), unique("sdst")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "s3", dst, versioned=True)
    for i in range(n):
        s3.put_object(Bucket=src, Key=f"k/{i}", Body=b"x" * (100 + i))
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\n" + "".join(f"s3://{src}/k/{i},s3://{dst}/k/{i}\n" for i in range(n)))
    return manifest, src


def _events(state: Path) -> list[Any]:
    journal = Journal(state)
    try:
        with journal._lock:
            return list(journal._conn.execute("SELECT * FROM events ORDER BY id").fetchall())
    finally:
        journal.close()


def test_a_resume_with_another_policy_is_refused_naming_the_keys(sandbox: SandboxState, tmp_path: Path) -> None:
    manifest, _ = _wave(sandbox, tmp_path, 2)
    signer = load_signer(generate_keypair(tmp_path / "keys")[0])
    state = tmp_path / "state"
    first = run_wave(manifest, state, signer, wave_settings(versions="current", bypass_governance=True))
    before = _events(state)
    with pytest.raises(StateError) as err:
        run_wave(manifest, state, signer, wave_settings(versions="all"))
    message = str(err.value)
    assert 'versions "current" (this run: "all")' in message
    assert "bypass_governance true (this run: false)" in message
    assert "second_read" not in message and "use a new --state folder" in message
    assert _events(state) == before   # refused before anything was journaled
    # The same policy resumes; transfer settings are not policy and may change between runs.
    again = run_wave(manifest, state, signer, wave_settings(versions="current", bypass_governance=True,
                                                             concurrency=1, batch_rows=1))
    assert again.wave_id == first.wave_id
    statement = parse_attestation(again.attestation.read_bytes())[1]
    assert statement["predicate"]["policy"]["versions"] == "current"


def test_status_shows_the_policy_the_wave_started_with(sandbox: SandboxState, tmp_path: Path) -> None:
    manifest, _ = _wave(sandbox, tmp_path, 1)
    state = tmp_path / "state"
    run_wave(manifest, state, load_signer(generate_keypair(tmp_path / "keys")[0]), wave_settings(second_read=False))
    out = CliRunner().invoke(app, ["status", "--state", str(state)])
    assert out.exit_code == 0, out.output
    assert "policy bypass_governance false, require_destination_protection true, second_read false, " \
           'soft_delete "require-off", versions "all"' in out.output


def test_run_with_log_resolves_the_signing_key_once(sandbox: SandboxState, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    manifest, _ = _wave(sandbox, tmp_path, 2)
    key, _ = generate_keypair(tmp_path / "keys")
    made: list[Signer] = []
    real = signers.load_signer_spec

    def counting(spec: str, settings: signers.SignerSettings | None = None) -> Signer:
        made.append(real(spec, settings))
        return made[-1]

    monkeypatch.setattr(signers, "load_signer_spec", counting)
    out = CliRunner().invoke(app, ["run", str(manifest), "--state", str(tmp_path / "state"), "--signing-key",
                                   str(key), "--log", str(tmp_path / "log"), "--log-origin", "test.invalid/log"])
    assert out.exit_code == 0, out.output + repr(out.exception)
    assert "log entry" in out.output
    assert len(made) == 1   # with a KMS key: one client and one public-key fetch, not two
