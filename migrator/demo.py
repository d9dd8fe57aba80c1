"""The demo: sandbox, seeded users' data, a whole wave into OCI, and the attestation verified."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from migrator.attest import tlog
from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, RequireSubjectIndex, Threshold
from migrator.attest.subjects import generate_subject_key, load_subject_hashes, write_subject_hashes
from migrator.attest.verify import verify_attestation
from migrator.config import load_wave
from migrator.errors import VerificationError
from migrator.logstore import DirectoryLog
from migrator.manifest import iter_rows
from migrator.runner import RunControls, WaveResult, run_wave
from migrator.sandbox import control
from migrator.sandbox.buckets import s3_client
from migrator.sandbox.estate import location
from migrator.sandbox.seed import estate_wave, seed

DEMO_MANIFEST = Path("manifests/demo.jsonl")
LOG_ORIGIN = "demo.migrator.invalid/waves"


@dataclass(frozen=True)
class DemoResult:
    wave: WaveResult
    verified: bool
    mismatches: list[str]
    sandbox_dir: Path
    public_key: Path
    log_dir: Path


def run_demo(directory: Path, manifest: Path = DEMO_MANIFEST, *, keep: bool = False,
             controls: RunControls | None = None) -> DemoResult:
    """``controls``: the CLI's live display and stop flag, as for `run`."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_dir = directory / "sandbox"
    control.down(sandbox_dir, missing_ok=True)
    state = control.up(sandbox_dir)
    saved = dict(os.environ)
    os.environ.update(state.env())  # as `eval "$(migrator sandbox env)"` would
    try:
        seeded = seed(state, manifest)
        keys = directory / "keys"
        key_path, pub_path = keys / "signing.key", keys / "signing.pub"
        if not key_path.exists():
            generate_keypair(keys)
        state_dir = directory / "state"
        for leftover in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "records.jsonl",
                         "attestation.json", "progress.json"):
            (state_dir / leftover).unlink(missing_ok=True)
        # The demo plays the independent custodian too: it holds the subject key and hands the wave
        # only the keyed hashes of this manifest's subjects.
        custodian = directory / "custodian"
        shutil.rmtree(custodian, ignore_errors=True)
        custodian.mkdir()
        subject_key = generate_subject_key(custodian / "subject.key")
        hashes = custodian / "subject-hashes.jsonl"
        subjects = (r.subject for r in iter_rows(manifest, estate=None) if r.subject)
        write_subject_hashes(subject_key, subjects, hashes)
        (state_dir / "subjects.jsonl").unlink(missing_ok=True)
        # The estate's locations and the US residency policy, against the sandbox only.
        wave_file = directory / "wave.toml"   # the sandbox's ports and CA: this machine's, so not in manifests/
        wave_file.write_text(estate_wave(state), encoding="utf-8")
        settings = load_wave(wave_file, {}, state.env())
        signer = load_signer(key_path)
        wave = run_wave(manifest, state_dir, signer, settings, subject_hasher=load_subject_hashes(hashes),
                        controls=controls)
        log_dir = directory / "log"
        shutil.rmtree(log_dir, ignore_errors=True)
        tlog.append(DirectoryLog(log_dir), wave.attestation.read_bytes(), signer, LOG_ORIGIN)
        try:
            verify_attestation(wave.attestation.read_bytes(),
                               Inputs(records=wave.records, manifest=manifest, subjects=state_dir / "subjects.jsonl"),
                               AllOf(Threshold([load_public_key(pub_path)]), RequireRecords(), RequireManifest(),
                                     RequireSubjectIndex(subject_key)))
            verified = True
        except VerificationError:
            verified = False
        mismatches = []
        states = {row: (st, reason) for row, st, reason in wave.held_rows}
        if wave.out_of_scope != len([e for e in seeded.expected.values() if e[0] == "OUT_OF_SCOPE"]):
            mismatches.append(f"{wave.out_of_scope} rows out of scope, expected every EU row")
        for row, (want, why) in seeded.expected.items():
            got, reason = states.get(row, ("REMOVED", ""))
            if got != want or (why and why not in reason):
                mismatches.append(f"row {row}: expected {want} {why!r}, got {got} {reason!r}")
        s3 = s3_client(state, location("dc").server)   # the EU users' objects are in the data centre
        for uri in seeded.untouched:
            bucket, _, key = uri[len("s3://"):].partition("/")
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except Exception:  # noqa: BLE001 - any failure means the object is not there
                mismatches.append(f"EU object {uri} is gone; the wave moves US rows only")
        return DemoResult(wave=wave, verified=verified, mismatches=mismatches, sandbox_dir=sandbox_dir,
                          public_key=pub_path, log_dir=log_dir)
    finally:
        if not keep:
            control.down(sandbox_dir, missing_ok=True)
        os.environ.clear()
        os.environ.update(saved)
