"""Deterministic crash points: SIGKILL at a named point, check the invariant, resume with the same command.

``MIGRATOR_CRASH_AT=name:N`` (migrator/crashpoints.py) kills the CLI the Nth time it passes ``name``.
Every point is exercised for an S3 -> OCI and a GCS -> OCI wave. After the kill nothing may be lost and
the journal may claim nothing the clouds do not show; the resumed run must finish, remove every source
version, leave the destination with every version's bytes, and produce an attestation that verifies.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from migrator import crashpoints
from tests.reliability.conftest import SeededWave, make_objects, verify_state
from tests.reliability.invariant import Claim, Clouds, check, child_env, journal_claims, run_command

MULTIPART_SIZE = 16 * 1024 * 1024 + 4097  # just above the wave file's multipart threshold below

# (point, N): N chosen so that the kill lands after some progress and before the end.
POINTS = [("after-copy-before-commit", 3), ("between-version-deletes", 2), ("after-delete-before-commit", 3),
          ("during-attestation", 1)]
# Every point from S3 and from GCS; mid-multipart once (the part loop is the destination's, OCI, either way).
CASES = [pytest.param(scheme, point, n, id=f"{scheme}-{point}") for point, n in POINTS for scheme in ("s3", "gs")]
CASES.append(pytest.param("s3", "mid-multipart", 1, id="s3-mid-multipart"))


def test_every_issue_point_is_named() -> None:
    assert set(crashpoints.NAMES) >= {"after-copy-before-commit", "mid-multipart", "between-version-deletes",
                                      "after-delete-before-commit", "during-attestation"}


@pytest.mark.parametrize(("scheme", "point", "nth"), CASES)
def test_kill_at_point_then_resume(scheme: str, point: str, nth: int, clouds: Clouds,
                                   wave_factory: Callable[..., SeededWave], keys: tuple[Path, Path],
                                   rng: random.Random) -> None:
    if point == "mid-multipart":
        objects = {"big/video.bin": [rng.randbytes(MULTIPART_SIZE)]}
    else:
        # Four objects, two of them with two versions: every point is passed more than once.
        objects = make_objects(rng, 4, multi_version_every=2)
    wave = wave_factory(scheme, objects)
    assert wave.snap is not None
    # One pinned delete per request, so that "between" and "after" a delete are distinct instants.
    policy = wave.manifest.with_name("wave.toml")
    policy.write_text("[policy]\ndelete_batch = 1\n[transfer]\nmultipart_threshold = 16777216\n")
    cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "1", "--wave", str(policy))

    killed = subprocess.run(cmd, env=child_env(MIGRATOR_CRASH_AT=f"{point}:{nth}"), capture_output=True,
                            timeout=300)
    assert killed.returncode == -9, f"not killed at {point}:{nth}: {killed.returncode}\n{killed.stderr.decode()}"
    after_kill = check(wave.snap, clouds, wave.state)
    after_kill.assert_ok(f"after the kill at {point}:{nth}")
    assert not (wave.state / "attestation.json").exists()
    # The kill landed where the point's name says.
    claims = journal_claims(wave.state)
    deleted = sum(1 for c in claims for d in c.data.get("deletions", []) if d.get("result") == "deleted")
    if point == "after-copy-before-commit":
        assert after_kill.at_source == len(wave.snap.versions)          # nothing deleted yet
        assert any(c.state == "COPYING" for c in claims)                # the copy landed, its commit did not
    elif point == "between-version-deletes":
        assert after_kill.at_destination == nth == deleted              # the Nth pass is after the Nth delete
    elif point == "after-delete-before-commit":
        assert after_kill.at_destination == nth and deleted == nth - 1  # the last delete is not journaled
    elif point == "during-attestation":
        assert after_kill.at_source == 0 and (wave.state / "records.jsonl").exists()
    else:
        assert after_kill.at_source == len(wave.snap.versions)

    done = subprocess.run(cmd, env=child_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = check(wave.snap, clouds, wave.state)
    report.assert_ok("after the resume")
    assert report.at_source == 0 and report.at_destination == len(wave.snap.versions)
    predicate = verify_state(wave.state, wave.manifest, keys[1])
    assert predicate["complete"] is True and predicate["totals"]["removed"] == len(objects)
    # The destination holds every version's bytes once each, and no upload was left behind.
    for row in wave.snap.rows.values():
        at_dst = sorted(clouds.destination_digests(row.destination).values())
        want = sorted(v.sha256 for v in wave.snap.versions if v.row == row.row)
        assert at_dst == want, row.destination
        uploads = clouds.oci.list_multipart_uploads(row.destination.namespace, row.destination.bucket).data
        assert [u.object for u in uploads or [] if u.object == row.destination.key] == [], \
            f"incomplete upload left at {row.destination}"


def test_invariant_checker_catches_loss_unverified_deletes_and_false_claims(
        clouds: Clouds, wave_factory: Callable[..., SeededWave], rng: random.Random) -> None:
    wave = wave_factory("s3", {"a": [rng.randbytes(100), rng.randbytes(101)], "b": [rng.randbytes(50)]})
    snap = wave.snap
    assert snap is not None and len(snap.versions) == 3
    assert check(snap, clouds, wave.state).ok
    old = next(v for v in snap.versions if v.location.key == "a")
    clouds.s3.delete_object(Bucket=wave.source_bucket, Key="a", VersionId=old.version)
    report = check(snap, clouds, wave.state)
    assert len(report.lost) == 1 and len(report.unverified_deletes) == 1 and old.version in report.lost[0]
    # The bytes reach the destination by other means: not lost, but the delete was still never earned.
    dest = snap.rows[old.row].destination
    body = next(b for b in wave.bodies["a"] if hashlib.sha256(b).hexdigest() == old.sha256)
    clouds.oci.put_object(dest.namespace, dest.bucket, dest.key, body)
    report = check(snap, clouds, wave.state)
    assert report.lost == [] and len(report.unverified_deletes) == 1
    # Disposed by policy, as the journal says: fine.
    disposed = Claim("journal", old.row, "DELETING",
                     {"disposed": [{"uri": str(old.location), "version": old.version}]})
    assert check(snap, clouds, wave.state, claims=[disposed]).ok
    # Claims the clouds do not back.
    b = next(v for v in snap.versions if v.location.key == "b")
    claims = [
        Claim("journal", b.row, "REMOVED", {}),
        Claim("records", b.row, "HELD", {"versions": [{"version": b.version, "destination_version": "v-none",
                                                       "digests": [{"algorithm": "sha256", "hex": b.sha256,
                                                                    "provenance": "computed"}]}]}),
        Claim("journal", b.row, "DELETING", {"deletions": [{"uri": str(b.location), "version": b.version,
                                                            "result": "deleted"}]}),
    ]
    report = check(snap, clouds, wave.state, claims=claims)
    assert len(report.false_claims) == 3, report.problems()



def test_kill_while_disposing_noncurrent_versions_by_policy(clouds: Clouds, wave_factory: Callable[..., SeededWave],
                                                            keys: tuple[Path, Path], rng: random.Random) -> None:
    """``--versions current``: noncurrent versions are deleted unmigrated, each recorded as disposed by policy;
    the invariant accepts exactly those, across a kill between two deletes."""
    wave = wave_factory("s3", make_objects(rng, 3, multi_version_every=1, versions=3))
    assert wave.snap is not None
    policy = wave.manifest.with_name("wave.toml")
    policy.write_text("[policy]\ndelete_batch = 1\n[transfer]\nmultipart_threshold = 16777216\n")
    cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "1", "--wave", str(policy),
                      "--versions", "current")
    killed = subprocess.run(cmd, env=child_env(MIGRATOR_CRASH_AT="between-version-deletes:3"), capture_output=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()
    check(wave.snap, clouds, wave.state).assert_ok("after the kill")
    done = subprocess.run(cmd, env=child_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = check(wave.snap, clouds, wave.state)
    report.assert_ok("after the resume")
    assert (report.at_source, report.disposed, report.at_destination) == (0, 6, 3)
    assert verify_state(wave.state, wave.manifest, keys[1])["complete"] is True
