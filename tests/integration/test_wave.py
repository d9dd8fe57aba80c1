"""A whole wave against the sandbox: verified copy, pinned delete, journal, resume, attestation."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.config import TransferSettings, WavePolicy
from migrator.errors import StateError
from migrator.journal import Journal, RunLock
from migrator.runner import WaveResult, run_wave
from migrator.sandbox.buckets import create_bucket, s3_client
from migrator.sandbox.control import SandboxState
from migrator.stores.base import ObjectStore, PutRequest, PutResult, ReadStream
from migrator.stores.registry import Stores
from migrator.uri import ObjectURI
from tests.conftest import unique, wave_settings


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


def _seed(sandbox: SandboxState, n: int, *, versions: int = 1, size: int = 3000) -> tuple[str, str, dict[str, bytes]]:
    s3 = s3_client(sandbox)
    src, dst = unique("wsrc"), unique("wdst")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "s3", dst, versioned=True)
    bodies = {}
    for i in range(n):
        for v in range(versions):
            body = os.urandom(size + v)
            s3.put_object(Bucket=src, Key=f"k/{i}", Body=body)
            bodies[f"k/{i}"] = body
    return src, dst, bodies


def _manifest(path: Path, src: str, dst: str, n: int) -> Path:
    path.write_text("source,destination\n" + "".join(f"s3://{src}/k/{i},s3://{dst}/k/{i}\n" for i in range(n)))
    return path


def _versions(sandbox: SandboxState, bucket: str) -> list[dict[str, Any]]:
    r = s3_client(sandbox).list_object_versions(Bucket=bucket)
    return list(r.get("Versions", [])) + list(r.get("DeleteMarkers", []))


def _verify(state: Path, manifest: Path, pub: Path) -> dict[str, Any]:
    v = verify_attestation((state / "attestation.json").read_bytes(),
                           Inputs(records=(state / "records.jsonl").read_bytes(), manifest=manifest.read_bytes()),
                           AllOf(Threshold([load_public_key(pub)]), RequireRecords(), RequireManifest()))
    return v.predicate


def test_wave_copies_every_version_then_removes_and_attests(sandbox: SandboxState, tmp_path: Path,
                                                           keys: tuple[Path, Path]) -> None:
    src, dst, bodies = _seed(sandbox, 4, versions=2)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 4)
    result = run_wave(manifest, tmp_path / "state", load_signer(keys[0]), wave_settings(concurrency=4))
    assert (result.rows, result.removed, result.held, result.failed) == (4, 4, 0, 0)
    assert result.complete
    assert _versions(sandbox, src) == []
    s3 = s3_client(sandbox)
    for key, body in bodies.items():
        assert s3.get_object(Bucket=dst, Key=key)["Body"].read() == body
        assert len(s3.list_object_versions(Bucket=dst, Prefix=key)["Versions"]) == 2
    predicate = _verify(tmp_path / "state", manifest, keys[1])
    assert predicate["complete"] is True and predicate["totals"]["removed"] == 4
    records = [json.loads(line) for line in (tmp_path / "state" / "records.jsonl").read_text().splitlines()]
    assert [r["row"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert [d["kind"] for d in r["deletions"]] == ["version", "version"]
        assert r["proof"]["empty"] is True
        assert all(v["evidence"]["source_tier"] == "source-checksum" for v in r["versions"])


def test_batches_overlap_removal_with_the_next_copies(sandbox: SandboxState, tmp_path: Path,
                                                      keys: tuple[Path, Path]) -> None:
    # Batches of 2 rows: each batch's removal runs while the next batch copies, on the same pool.
    src, dst, bodies = _seed(sandbox, 9, versions=2)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 9)
    settings = wave_settings(concurrency=3, batch_rows=2, delete_batch=3)
    result = run_wave(manifest, tmp_path / "state", load_signer(keys[0]), settings)
    assert (result.rows, result.removed, result.held, result.failed) == (9, 9, 0, 0)
    assert _versions(sandbox, src) == []
    s3 = s3_client(sandbox)
    for key, body in bodies.items():
        assert s3.get_object(Bucket=dst, Key=key)["Body"].read() == body
    _verify(tmp_path / "state", manifest, keys[1])
    # Each row's own steps stay in order, whatever the interleaving between batches.
    journal = Journal(tmp_path / "state")
    try:
        with journal._lock:
            events = journal._conn.execute("SELECT row, state FROM events ORDER BY id").fetchall()
    finally:
        journal.close()
    for row in range(1, 10):
        states = [st for r, st in events if r == row]
        assert states[0] == "COPYING" and states[-1] == "REMOVED"
        assert states.index("VERIFIED") < states.index("DELETING")


def test_second_run_resumes_and_changes_nothing(sandbox: SandboxState, tmp_path: Path,
                                                keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 3)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 3)
    first = run_wave(manifest, tmp_path / "state", load_signer(keys[0]), wave_settings())
    again = run_wave(manifest, tmp_path / "state", load_signer(keys[0]), wave_settings())
    assert again.wave_id == first.wave_id and again.removed == 3
    _verify(tmp_path / "state", manifest, keys[1])


def test_other_manifest_on_same_state_is_refused(sandbox: SandboxState, tmp_path: Path,
                                                 keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 2)
    run_wave(_manifest(tmp_path / "a.csv", src, dst, 2), tmp_path / "state", load_signer(keys[0]), wave_settings())
    other = _manifest(tmp_path / "b.csv", src, dst, 1)
    with pytest.raises(StateError, match="another manifest"):
        run_wave(other, tmp_path / "state", load_signer(keys[0]), wave_settings())


def test_a_running_wave_locks_its_state(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(StateError, match="another migrator run"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire()  # released with the holder: never stuck


@pytest.mark.parametrize("point", ["after-copy-before-commit:2", "between-version-deletes:1",
                                   "after-delete-before-commit:2", "during-attestation:1"])
def test_kill_at_crash_point_then_resume_completes(sandbox: SandboxState, tmp_path: Path,
                                                   keys: tuple[Path, Path], point: str) -> None:
    src, dst, bodies = _seed(sandbox, 3, versions=2)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 3)
    state = tmp_path / "state"
    wave = tmp_path / "wave.toml"
    wave.write_text("[policy]\ndelete_batch = 1  # one pinned delete per request, so kills land between them\n")
    cmd = [sys.executable, "-m", "migrator", "run", str(manifest), "--state", str(state),
           "--signing-key", str(keys[0]), "--concurrency", "1", "--wave", str(wave)]
    env = dict(os.environ, MIGRATOR_CRASH_AT=point)
    killed = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr.decode()
    # Nothing lost at the instant of the kill: every version is at the source or at the destination.
    s3 = s3_client(sandbox)
    for key in bodies:
        at_src = [v for v in _versions(sandbox, src) if v["Key"] == key]
        at_dst = s3.list_object_versions(Bucket=dst, Prefix=key).get("Versions", [])
        assert len(at_src) + len(at_dst) >= 2, key
    done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert _versions(sandbox, src) == []
    for key, body in bodies.items():
        assert s3.get_object(Bucket=dst, Key=key)["Body"].read() == body
        # Every version exactly once: a resumed write over our own earlier version is conditional on it.
        assert len(s3.list_object_versions(Bucket=dst, Prefix=key).get("Versions", [])) == 2, key
    assert _verify(state, manifest, keys[1])["complete"] is True


# -- injected faults: a store wrapper that corrupts what passes through it -------------------------------

class _FlippingStream:
    def __init__(self, inner: ReadStream) -> None:
        self._inner = inner
        self.info = inner.info
        self._flipped = False

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data and not self._flipped:
            self._flipped = True
            data = bytes([data[0] ^ 0x01]) + data[1:]
        return data

    def close(self) -> None:
        self._inner.close()


class _FaultyStore:
    """Delegates to a real store; flips one bit in the first N reads, or in the bytes sent on put.

    ``keep_digests``: a flipped put still carries the digests of the bytes as read, as a damaged
    transfer would (the destination refuses it); otherwise it loses them, as a buggy adapter would
    (the destination stores the damaged bytes and reports their digests)."""

    def __init__(self, inner: ObjectStore, *, corrupt_reads: int = 0, corrupt_puts: int = 0,
                 keep_digests: bool = False) -> None:
        self._inner = inner
        self.scheme = inner.scheme
        self.corrupt_reads = corrupt_reads
        self.corrupt_puts = corrupt_puts
        self.keep_digests = keep_digests

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def open_read(self, uri: ObjectURI, version: str | None = None,
                  byte_range: tuple[int, int] | None = None) -> ReadStream:
        stream = self._inner.open_read(uri, version, byte_range)
        if self.corrupt_reads > 0:
            self.corrupt_reads -= 1
            return _FlippingStream(stream)
        return stream

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        if self.corrupt_puts > 0:
            self.corrupt_puts -= 1
            data = body.read(request.size)
            data = bytes([data[0] ^ 0x80]) + data[1:]
            if not self.keep_digests:
                request = dataclasses.replace(request, body_digests=())
            return self._inner.put(uri, io.BytesIO(data), request)
        return self._inner.put(uri, body, request)


class _Stores(Stores):
    def __init__(self, wrap: dict[str, _FaultyStore]) -> None:
        super().__init__(wave_settings().stores)
        for scheme, store in wrap.items():
            self.use(store, scheme)


def _run_with(stores: Stores, manifest: Path, state: Path, key: Path) -> WaveResult:
    from migrator.manifest import iter_rows, validate
    from migrator.pipeline import Wave
    from migrator.runner import attest_journal

    summary = validate(manifest)
    journal = Journal(state)
    journal.bind_manifest(summary.sha256, "wave-test", {})
    journal.ensure_rows(list(range(1, summary.rows + 1)))
    Wave(journal, stores, WavePolicy(second_read=False), TransferSettings()).run(iter_rows(manifest))
    return attest_journal(journal, state, manifest, summary.sha256, summary.rows, load_signer(key), {}, [])


class _JournalWatchingStore(_FaultyStore):
    """Before each write, notes how many versions of that row the journal already holds as verified."""

    def __init__(self, inner: ObjectStore, journal_path: Path) -> None:
        super().__init__(inner)
        self.journal_path = journal_path
        self.seen: list[tuple[str, int]] = []
        self.wrote = threading.Event()

    def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True)
        try:
            rows = [json.loads(d) for (d,) in conn.execute("SELECT data FROM objects")]
        finally:
            conn.close()
        verified = sum(len(r.get("versions", [])) for r in rows if r.get("destination") == str(uri))
        self.seen.append((uri.key, verified))
        self.wrote.set()
        return self._inner.put(uri, body, request)


def test_each_version_is_on_record_before_the_next_is_written(sandbox: SandboxState, tmp_path: Path,
                                                              keys: tuple[Path, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Versions of one key go to the same destination key: a resume after a kill must never find a newer
    # version there while the journal lacks the older one (it would hold the row as a different object).
    src, dst, _ = _seed(sandbox, 2, versions=3)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 2)
    real = Stores(wave_settings().stores).get("s3")
    watching = _JournalWatchingStore(real, tmp_path / "state" / "journal.sqlite")
    # The journal's writer holds each commit until the next write starts (or 0.3 s pass), so a wave that
    # wrote a version before its predecessor was on record would be caught every time, not by chance.
    write = Journal._write

    def held_write(self: Journal, batch: list[tuple[int, str, str, str | None, str, str]]) -> None:
        watching.wrote.wait(0.3)
        watching.wrote.clear()
        write(self, batch)

    monkeypatch.setattr(Journal, "_write", held_write)
    result = _run_with(_Stores({"s3": watching}), manifest, tmp_path / "state", keys[0])
    assert result.removed == 2
    for key in ("k/0", "k/1"):
        assert [n for k, n in watching.seen if k == key] == [0, 1, 2]


def test_corrupt_source_read_is_retried_never_verified(sandbox: SandboxState, tmp_path: Path,
                                                       keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 1)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 1)
    real = Stores(wave_settings().stores).get("s3")
    # Every read corrupt: the object must end HELD with its source intact and no copy left behind.
    always = _FaultyStore(real, corrupt_reads=10)
    result = _run_with(_Stores({"s3": always}), manifest, tmp_path / "state", keys[0])
    assert (result.removed, result.held) == (0, 1)
    assert "source evidence failed" in result.held_rows[0][2]
    assert len(_versions(sandbox, src)) == 1
    assert s3_client(sandbox).list_object_versions(Bucket=dst).get("Versions", []) == []
    # One corrupt read: retried, then verified on honest bytes.
    src2, dst2, bodies2 = _seed(sandbox, 1)
    manifest2 = _manifest(tmp_path / "m2.csv", src2, dst2, 1)
    once = _FaultyStore(real, corrupt_reads=1)
    result2 = _run_with(_Stores({"s3": once}), manifest2, tmp_path / "state2", keys[0])
    assert result2.removed == 1
    assert s3_client(sandbox).get_object(Bucket=dst2, Key="k/0")["Body"].read() == bodies2["k/0"]


def test_destination_mismatch_never_leads_to_delete(sandbox: SandboxState, tmp_path: Path,
                                                    keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 1)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 1)
    real = Stores(wave_settings().stores).get("s3")
    bad = _FaultyStore(real, corrupt_puts=10)
    result = _run_with(_Stores({"s3": bad}), manifest, tmp_path / "state", keys[0])
    assert (result.removed, result.held) == (0, 1)
    assert "destination evidence failed" in result.held_rows[0][2]
    assert len(_versions(sandbox, src)) == 1  # source untouched
    assert s3_client(sandbox).list_object_versions(Bucket=dst).get("Versions", []) == []


def test_bytes_damaged_on_the_way_are_refused_and_sent_again(sandbox: SandboxState, tmp_path: Path,
                                                             keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 1)
    real = Stores(wave_settings().stores).get("s3")
    # Damaged every time: the destination refuses each write (BadDigest); held, nothing stored or deleted.
    always = _FaultyStore(real, corrupt_puts=1000, keep_digests=True)
    result = _run_with(_Stores({"s3": always}), _manifest(tmp_path / "m.csv", src, dst, 1), tmp_path / "s", keys[0])
    assert (result.removed, result.held) == (0, 1)
    assert "destination refused the bytes" in result.held_rows[0][2] and "BadDigest" in result.held_rows[0][2]
    assert len(_versions(sandbox, src)) == 1
    assert s3_client(sandbox).list_object_versions(Bucket=dst).get("Versions", []) == []
    # Damaged once: the second write lands and verifies.
    src2, dst2, bodies2 = _seed(sandbox, 1)
    once = _FaultyStore(real, corrupt_puts=1, keep_digests=True)
    result2 = _run_with(_Stores({"s3": once}), _manifest(tmp_path / "m2.csv", src2, dst2, 1), tmp_path / "s2",
                        keys[0])
    assert result2.removed == 1
    assert s3_client(sandbox).get_object(Bucket=dst2, Key="k/0")["Body"].read() == bodies2["k/0"]


def test_source_changed_after_verify_is_held_not_deleted(sandbox: SandboxState, tmp_path: Path,
                                                         keys: tuple[Path, Path]) -> None:
    src, dst, _ = _seed(sandbox, 1)
    manifest = _manifest(tmp_path / "m.csv", src, dst, 1)
    real = Stores(wave_settings().stores).get("s3")

    class _Overwriting(_FaultyStore):
        def put(self, uri: ObjectURI, body: BinaryIO, request: PutRequest) -> PutResult:
            out = super().put(uri, body, request)
            s3_client(sandbox).put_object(Bucket=src, Key="k/0", Body=b"written by someone else")
            return out

    result = _run_with(_Stores({"s3": _Overwriting(real)}), manifest, tmp_path / "state", keys[0])
    assert result.held == 1 and "changed at source" in result.held_rows[0][2]
    assert len(_versions(sandbox, src)) == 2  # neither the verified nor the new version was deleted


def test_state_folder_is_private_whatever_the_umask(sandbox: SandboxState, tmp_path: Path) -> None:
    """Under umask 000 a whole wave (keys, subject hashes, run, resume, an in-place co-signature) leaves its
    state folder 0700 and every file in it 0600; state_folder_warnings finds nothing, and does find a file
    or a folder opened up afterwards."""
    import stat

    from migrator.state_files import state_folder_warnings

    src, dst, _ = _seed(sandbox, 3)
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination,subject\n"
                        + "".join(f"s3://{src}/k/{i},s3://{dst}/k/{i},user-{i % 2}\n" for i in range(3)))
    state = tmp_path / "state"

    def cli(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "migrator", *args], env=dict(os.environ), capture_output=True,
                              text=True, timeout=300, preexec_fn=lambda: os.umask(0))
        assert done.returncode == 0, (args, done.stdout, done.stderr)

    cli("keys", "generate", "--out", str(tmp_path / "keys"))
    cli("keys", "generate", "--out", str(tmp_path / "custodian"))
    cli("subjects", "key", "--out", str(tmp_path / "custodian" / "subject.key"))
    hashes = tmp_path / "hashes.jsonl"
    cli("subjects", "hash", "--key", str(tmp_path / "custodian" / "subject.key"), "--manifest", str(manifest),
        "-o", str(hashes))
    run = ("run", str(manifest), "--state", str(state), "--signing-key", str(tmp_path / "keys" / "signing.key"),
           "--subject-hashes", str(hashes))
    cli(*run)
    cli(*run)   # a resume rewrites the records, the index and the attestation
    cli("audit", "cosign", str(state / "attestation.json"), "--signing-key",
        str(tmp_path / "custodian" / "signing.key"), "--key", str(tmp_path / "keys" / "signing.pub"))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in state.iterdir()}
    assert {"journal.sqlite", "lock", "records.jsonl", "subjects.jsonl", "records.idx",
            "attestation.json"} <= set(modes), modes
    assert not [n for n in modes if n.endswith(".tmp")], modes   # no temporary file left behind
    assert modes == dict.fromkeys(modes, 0o600), modes
    for private in (tmp_path / "keys" / "signing.key", tmp_path / "custodian" / "subject.key", hashes):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert state_folder_warnings(state) == []
    (state / "records.jsonl").chmod(0o644)
    state.chmod(0o755)
    warnings = state_folder_warnings(state)
    assert len(warnings) == 2 and f"chmod 700 {state}" in warnings[0], warnings
    assert "records.jsonl" in warnings[1] and "(mode 0644)" in warnings[1], warnings
