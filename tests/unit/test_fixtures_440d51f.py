"""Attestations written by main at 440d51f still verify, through the CLI an auditor runs (no sandbox needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "main-440d51f"
CLI = [sys.executable, "-m", "migrator"]


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "audit", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def subject_key(tmp_path: Path) -> Path:
    key = tmp_path / "subject.key"
    shutil.copy(FIXTURES / "subject.key", key)
    key.chmod(0o600)
    return key


def test_a_v2_attestation_with_its_subject_index_verifies(subject_key: Path) -> None:
    proc = _audit("verify", str(FIXTURES / "v2-attestation.json"), "--key", str(FIXTURES / "operator.pub"),
                  "--records", str(FIXTURES / "v2-records.jsonl"), "--manifest", str(FIXTURES / "demo.jsonl"),
                  "--subjects", str(FIXTURES / "v2-subjects.jsonl"), "--subject-key", str(subject_key))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "221 rows, removed 218, held 3, failed 0" in proc.stdout


def test_a_v1_attestation_verifies() -> None:
    proc = _audit("verify", str(FIXTURES / "v1-attestation.json"), "--key", str(FIXTURES / "operator.pub"),
                  "--records", str(FIXTURES / "v2-records.jsonl"), "--manifest", str(FIXTURES / "demo.jsonl"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "221 rows, removed 218, held 3, failed 0" in proc.stdout


def test_a_cosigned_attestation_verifies_with_both_keys() -> None:
    proc = _audit("verify", str(FIXTURES / "v2-cosigned-attestation.json"), "--key", str(FIXTURES / "operator.pub"),
                  "--key", str(FIXTURES / "custodian.pub"), "--threshold", "2",
                  "--records", str(FIXTURES / "v2-records.jsonl"), "--manifest", str(FIXTURES / "demo.jsonl"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_log_it_was_appended_to_verifies(tmp_path: Path) -> None:
    log = tmp_path / "log"
    shutil.copytree(FIXTURES / "log", log)
    proc = _audit("log", "verify", "--log", str(log), "--key", (FIXTURES / "log.vkey").read_text().strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_record_of_it_proves_and_the_proof_verifies(tmp_path: Path) -> None:
    first = (FIXTURES / "v2-records.jsonl").read_bytes().split(b"\n", 1)[0].decode()
    source = json.loads(first)["source"]
    att = tmp_path / "attestation.json"
    shutil.copy(FIXTURES / "v2-attestation.json", att)
    shutil.copy(FIXTURES / "v2-records.jsonl", tmp_path / "records.jsonl")
    proved = _audit("prove", str(att), source)
    assert proved.returncode == 0, proved.stdout + proved.stderr
    proof = tmp_path / "proof.json"
    proof.write_text(proved.stdout)
    checked = _audit("verify-proof", str(proof), "--attestation", str(att), "--key", str(FIXTURES / "operator.pub"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
