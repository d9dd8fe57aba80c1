"""migrator's pytest plugin: a local sandbox (S3, GCS, OCI on loopback) for a test session, a manifest seeder
over it, and a wave run exactly as ``migrator run`` runs one, its attestation verified. See docs/testing.md.

pytest loads this module in every run of the environment it is installed in (entry point ``pytest11``), so
importing it is cheap: it imports pytest and the standard library only. The sandbox, the SDKs and the
runner are imported when a fixture is first used; without the ``[sandbox]`` extra's packages, that fixture
fails naming the install command. Every fixture is named ``migrator_*``.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from migrator.estate import Estate
    from migrator.runner import WaveResult
    from migrator.sandbox.control import SandboxState
    from migrator.sandbox.estate import SandboxLocation
    from migrator.sandbox.manifest_seed import Placer, SeededManifest

SANDBOX_EXTRA = "pip install 'provable-migrator[sandbox]'"
# What the sandbox needs at run time: its clients' SDKs and moto (the S3 emulator's engine, the extra).
_SANDBOX_MODULES = ("boto3", "botocore", "google.cloud.storage", "oci", "moto")


def _require_sandbox_packages() -> None:
    """Fail the requesting test, naming the extra, when a package the sandbox needs cannot be imported."""
    missing = []
    for name in _SANDBOX_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.fail(f"migrator's sandbox fixtures need {', '.join(missing)}, which cannot be imported here: "
                    f"{SANDBOX_EXTRA}", pytrace=False)


@dataclass(frozen=True)
class MigratorSandbox:
    """A running sandbox: its state, ready clients (each trusting the sandbox's CA) and its estate."""

    state: SandboxState
    s3: Any                # boto3 S3 client, the AWS-like server (locations aws-us, aws-sg)
    s3dc: Any              # boto3 S3 client, the data centre's server (location dc), path-style
    gcs: Any               # google.cloud.storage.Client (location gcp)
    oci: Any               # oci ObjectStorageClient, us-ashburn-1 (location oci-us)
    oci_eu: Any            # oci ObjectStorageClient, eu-frankfurt-1 (location oci-eu)
    namespace: str         # the OCI namespace of both OCI servers
    locations: tuple[SandboxLocation, ...]   # migrator.sandbox.estate.LOCATIONS

    def locations_toml(self, buckets: Mapping[str, Sequence[str]]) -> str:
        """A wave file's ``[locations.NAME]`` tables for these locations (name -> bucket names or patterns)."""
        from migrator.sandbox.estate import estate_locations

        return estate_locations(self.state, buckets)

    def write_wave(self, path: Path, buckets: Mapping[str, Sequence[str]], extra: str = "") -> Path:
        """Write a wave file at ``path``: the ``[locations]`` tables for ``buckets``, then ``extra`` (more
        TOML, e.g. a ``[policy]`` table). Returns ``path``."""
        path.write_text(self.locations_toml(buckets) + ("\n" + extra if extra else ""), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def migrator_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratorSandbox]:
    """The sandbox for the session, on free loopback ports, with this process's environment set as
    ``eval "$(migrator sandbox env)"`` would (restored, and the sandbox stopped, at the end)."""
    _require_sandbox_packages()
    from migrator.sandbox import control
    from migrator.sandbox.buckets import gcs_client, oci_client, s3_client
    from migrator.sandbox.estate import LOCATIONS

    directory = tmp_path_factory.mktemp("migrator-sandbox")
    state = control.up(directory)
    saved = dict(os.environ)
    try:
        os.environ.update(state.env())
        os.environ.pop("AWS_PROFILE", None)   # the sandbox's keys, not a developer's profile
        yield MigratorSandbox(state=state, s3=s3_client(state, "s3"), s3dc=s3_client(state, "s3dc"),
                              gcs=gcs_client(state), oci=oci_client(state, "oci")[0],
                              oci_eu=oci_client(state, "oci_eu")[0], namespace=state.oci_namespace,
                              locations=LOCATIONS)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        control.down(directory, missing_ok=True)


class Seeder:
    """``migrator_seed``: :func:`migrator.sandbox.manifest_seed.seed_manifest` on the session's sandbox."""

    def __init__(self, sandbox: MigratorSandbox, directory: Path) -> None:
        self._sandbox = sandbox
        self._directory = directory
        self._count = itertools.count(1)

    def __call__(self, manifest: Path, out: Path | None = None, *, wave_file: Path | None = None,
                 estate: Estate | None = None, place: Placer | None = None, scale: float = 1.0,
                 sample: int | None = None, versions: int = 1, holds: Collection[int] = (), seed: int = 0,
                 max_object_bytes: int = 64 * 2**20) -> SeededManifest:
        """Seed ``manifest``'s rows; write the seeded manifest to ``out`` (default: a new file in the test's
        tmp_path). ``wave_file``: read its ``[locations]`` as ``migrator run`` would (instead of ``estate``)."""
        from migrator.config import load_wave
        from migrator.sandbox.manifest_seed import seed_manifest

        if wave_file is not None:
            if estate is not None:
                raise TypeError("give wave_file or estate, not both")
            estate = load_wave(wave_file, {}, os.environ).estate
        if out is None:
            out = self._directory / f"seeded-{next(self._count)}-{manifest.stem}.jsonl"
        return seed_manifest(self._sandbox.state, manifest, out, estate=estate, place=place, scale=scale,
                             sample=sample, versions=versions, holds=holds, seed=seed,
                             max_object_bytes=max_object_bytes)


@pytest.fixture
def migrator_seed(migrator_sandbox: MigratorSandbox, tmp_path: Path) -> Seeder:
    """A callable: seed a manifest into the sandbox and get the seeded manifest (``SeededManifest``)."""
    return Seeder(migrator_sandbox, tmp_path)


@dataclass(frozen=True)
class WaveOutcome:
    """A finished, verified wave."""

    result: WaveResult                  # what run_wave returned (the totals `migrator run --json` prints)
    states: dict[int, str]              # manifest row -> its final state (REMOVED, HELD, FAILED, OUT_OF_SCOPE)
    records: list[dict[str, Any]]       # records.jsonl, parsed, in file order
    predicate: dict[str, Any]           # the verified attestation's predicate
    state_dir: Path
    attestation: Path
    public_key: Path                    # the wave's verifying key (signing.pub)


class WaveRunner:
    """``migrator_run_wave``: one wave as ``migrator run`` runs it, then verified as ``audit verify`` would."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._count = itertools.count(1)

    def __call__(self, manifest: Path, wave_file: Path | None = None, *, flags: Mapping[str, Any] | None = None,
                 subjects: Path | None = None, state_dir: Path | None = None) -> WaveOutcome:
        """Settings from ``load_wave(wave_file, flags or {}, os.environ)`` (the same resolution and loopback
        guard as ``run``), a fresh key pair, ``run_wave``, then the attestation verified (its signature, the
        records, the manifest and, when rows name subjects, the subject index): VerificationError if not.
        ``subjects``: the custodian's subject key (``generate_subject_key``); None: a fresh one when the
        manifest names subjects. ``state_dir``: resume a wave (default: a new folder). Retries do not back
        off during the run."""
        from migrator import retry
        from migrator.attest.keys import generate_keypair, load_public_key, load_signer
        from migrator.attest.policy import (
            AllOf,
            Inputs,
            Policy,
            RequireManifest,
            RequireRecords,
            RequireSubjectIndex,
            Threshold,
        )
        from migrator.attest.subjects import (
            generate_subject_key,
            load_subject_hashes,
            load_subject_key,
            write_subject_hashes,
        )
        from migrator.attest.verify import verify_attestation
        from migrator.config import load_wave
        from migrator.manifest import iter_rows
        from migrator.runner import run_wave

        run = self._directory / f"migrator-wave-{next(self._count)}"
        state_dir = state_dir or run / "state"
        settings = load_wave(wave_file, dict(flags or {}), os.environ)
        key, public = generate_keypair(run / "keys")
        hasher = subject_key = None
        if subjects is not None or any(r.subject for r in iter_rows(manifest, estate=None)):
            subject_key = load_subject_key(subjects) if subjects else generate_subject_key(run / "subject.key")
            hashes = run / "subject-hashes.jsonl"
            write_subject_hashes(subject_key, (r.subject for r in iter_rows(manifest, estate=None) if r.subject),
                                 hashes)
            hasher = load_subject_hashes(hashes)
        previous = retry.set_backoff(False)
        try:
            result = run_wave(manifest, state_dir, load_signer(key), settings, subject_hasher=hasher)
        finally:
            retry.set_backoff(previous)
        demands: list[Policy] = [Threshold([load_public_key(public)]), RequireRecords(), RequireManifest()]
        inputs = Inputs(records=result.records, manifest=manifest)
        if subject_key is not None:
            demands.append(RequireSubjectIndex(subject_key))
            inputs = Inputs(records=result.records, manifest=manifest, subjects=state_dir / "subjects.jsonl")
        verified = verify_attestation(result.attestation.read_bytes(), inputs, AllOf(*demands))
        with open(result.records, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        return WaveOutcome(result=result, states={int(r["row"]): str(r["state"]) for r in records},
                           records=records, predicate=verified.predicate, state_dir=state_dir,
                           attestation=result.attestation, public_key=public)


@pytest.fixture
def migrator_run_wave(migrator_sandbox: MigratorSandbox, tmp_path: Path) -> WaveRunner:
    """A callable: run a wave over the sandbox and get its verified ``WaveOutcome``."""
    return WaveRunner(tmp_path)
