"""Concurrency: sources that change under a wave, and runs that compete for one state folder.

* A source overwritten after its copy was verified and before its delete is HELD "changed at source" and
  never deleted: on an unversioned S3 bucket the delete is pinned by ETag (If-Match), on an unversioned GCS
  bucket by generation. (The versioned-bucket path is in tests/integration/test_wave.py.)
* A second ``migrator run`` on the same ``--state`` is refused (exit 2) while the first runs, and writes
  nothing; the first then completes.
* A run killed with SIGKILL leaves its lock file behind, and the next run is not refused: the lock is an
  flock, which dies with its process.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from migrator import runner
from migrator.attest.keys import load_signer
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from migrator.stores.base import DeleteResult, DeleteTarget, ObjectStore
from migrator.stores.registry import Stores
from migrator.stores.settings import StoreSettings
from migrator.uri import Location, ObjectURI
from tests.conftest import unique, wave_settings
from tests.reliability.conftest import SeededWave, make_objects, verify_state
from tests.reliability.invariant import Clouds, check, child_env, run_command, snapshot, write_manifest


class _OverwriteBeforeDelete:
    """Delegates to a real store; just before the first delete that names ``key``, someone else overwrites it."""

    def __init__(self, inner: ObjectStore, key: str, overwrite: Callable[[], None]) -> None:
        self._inner = inner
        self.scheme = inner.scheme
        self._key = key
        self._overwrite: Callable[[], None] | None = overwrite

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _maybe(self, keys: Sequence[str]) -> None:
        if self._overwrite is not None and self._key in keys:
            overwrite, self._overwrite = self._overwrite, None
            overwrite()

    def delete_versions(self, location: Location, targets: Sequence[DeleteTarget]) -> list[DeleteResult]:
        self._maybe([t.key for t in targets])
        return list(self._inner.delete_versions(location, targets))

    def delete_version(self, uri: ObjectURI, version: str | None, *, if_match: str | None = None) -> None:
        self._maybe([uri.key])
        self._inner.delete_version(uri, version, if_match=if_match)


def _wrapping_stores(scheme: str, key: str, overwrite: Callable[[], None]) -> Callable[..., Stores]:
    def make(settings: StoreSettings) -> Stores:
        stores = Stores(settings)
        wrapped: ObjectStore = _OverwriteBeforeDelete(stores.get(scheme), key, overwrite)  # by delegation
        stores.use(wrapped, scheme)
        return stores
    return make


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_unversioned_source_overwritten_before_its_delete_is_held_not_deleted(
        scheme: str, sandbox: SandboxState, clouds: Clouds, tmp_path: Path, keys: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    src, dst = unique("csrc"), unique("cdst")
    create_bucket(sandbox, scheme, src, versioned=False)
    create_bucket(sandbox, "oci", dst, versioned=True)
    bodies = {"changing": rng.randbytes(900), "steady": rng.randbytes(800)}
    newer = rng.randbytes(900)  # same size: only the pin can tell

    def put(key: str, body: bytes) -> None:
        if scheme == "s3":
            clouds.s3.put_object(Bucket=src, Key=key, Body=body)
        else:
            clouds.gcs.bucket(src).blob(key).upload_from_string(body)

    for k, b in bodies.items():
        put(k, b)
    ns = sandbox.oci_namespace
    manifest = write_manifest(tmp_path / "m.jsonl", (
        {"source": f"{scheme}://{src}/{k}", "destination": f"oci://{ns}/{dst}/{k}"} for k in bodies))
    snap = snapshot(clouds, manifest)
    monkeypatch.setattr(runner, "Stores", _wrapping_stores(scheme, "changing", lambda: put("changing", newer)))
    state = tmp_path / "state"
    result = runner.run_wave(manifest, state, load_signer(keys[0]), wave_settings(concurrency=2))

    assert (result.removed, result.held, result.failed) == (1, 1, 0), result.held_rows
    row, st, reason = result.held_rows[0]
    assert (row, st) == (1, "HELD") and reason.startswith("changed at source"), reason
    # The overwrite survives: the source still holds the newer bytes.
    left = clouds.versions(snap.rows[1].source)
    assert [clouds.read(snap.rows[1].source, e) for e in left] == [newer]
    # What the wave verified is at the destination; nothing the clouds do not show is claimed.
    check(snap, clouds, state).assert_ok()
    assert verify_state(state, manifest, keys[1])["complete"] is False


def _folder(state: Path) -> dict[str, str]:
    """Every file of the state folder and the SHA-256 of its bytes (the journal, its WAL, the lock)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(state.iterdir()) if p.is_file()}


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(6000):  # up to a minute, in 10 ms waits on the child
        if path.exists():
            return
        try:
            proc.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the run ended before {path.name} appeared (exit {proc.returncode})")
    raise AssertionError(f"{path} did not appear")


def test_second_run_on_the_same_state_is_refused_while_the_first_runs(
        clouds: Clouds, wave_factory: Callable[..., SeededWave], keys: tuple[Path, Path], rng: random.Random) -> None:
    wave = wave_factory("s3", make_objects(rng, 12))
    assert wave.snap is not None
    cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "1")
    first = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(wave.state / "journal.sqlite", first)  # opened under the lock
        first.send_signal(signal.SIGSTOP)                # it holds the lock, and stays put while we try
        try:
            before = _folder(wave.state)
            second = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120)
            assert second.returncode == 2, second.stdout + second.stderr
            assert "another migrator run holds" in second.stderr and "Traceback" not in second.stderr
            assert _folder(wave.state) == before, "the refused run wrote to the state folder"
            assert not (wave.state / "attestation.json").exists()
        finally:
            first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, out.decode() + err.decode()
    check(wave.snap, clouds, wave.state).assert_ok()
    assert verify_state(wave.state, wave.manifest, keys[1])["complete"] is True


def test_a_killed_runs_lock_does_not_stay_stuck(clouds: Clouds, wave_factory: Callable[..., SeededWave],
                                                keys: tuple[Path, Path], rng: random.Random) -> None:
    wave = wave_factory("gs", make_objects(rng, 3))
    assert wave.snap is not None
    cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "1")
    killed = subprocess.run(cmd, env=child_env(MIGRATOR_CRASH_AT="after-copy-before-commit:2"),
                            capture_output=True, timeout=120)
    assert killed.returncode == -9
    lock = wave.state / "lock"
    assert lock.exists() and lock.read_text().strip().isdigit()  # the dead run's pid is still written there
    pid = int(lock.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    done = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    check(wave.snap, clouds, wave.state).assert_ok()
    assert verify_state(wave.state, wave.manifest, keys[1])["complete"] is True
