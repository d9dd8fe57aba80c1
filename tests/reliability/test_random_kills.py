"""Random kills: a wave in a subprocess is SIGKILLed at random instants and resumed until it completes.

A fixed seed picks the objects and the delays (0.05-1.5 s after the run opens its journal); where the kills
land still depends on the machine's speed, which is the point. After every kill the invariant is checked
against the clouds; at the end every source version is gone, every version is at the destination and the
attestation verifies. ``MIGRATOR_RELIABILITY_KILLS`` raises the count (CI: 30); ``make soak`` runs
``benchmarks/soak.py`` for hundreds.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from migrator.sandbox.control import SandboxState
from tests.reliability.conftest import make_objects, seed_wave, verify_state
from tests.reliability.invariant import Clouds, check, child_env, run_command, run_with_random_kills

SEED = 20261123
KILLS = int(os.environ.get("MIGRATOR_RELIABILITY_KILLS", "30"))


def test_random_kills_lose_nothing_and_resume_to_a_verified_attestation(
        sandbox: SandboxState, clouds: Clouds, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    rng = random.Random(SEED)
    kills = waves = 0
    while kills < KILLS:
        # Many small objects, every eighth with three versions, from S3 and GCS into OCI; a smaller wave
        # tops the count up when the first completes early.
        objects = make_objects(rng, 80 if waves == 0 else 24, multi_version_every=8, versions=3, prefix=f"w{waves}")
        wave = seed_wave(sandbox, clouds, tmp_path, ("s3", "gs"), objects, name=f"wave{waves}")
        assert wave.snap is not None
        cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "4")
        run = run_with_random_kills(cmd, child_env(), wave.state, wave.snap, clouds, rng, max_kills=KILLS - kills)
        assert run.problems == [], "\n".join(run.problems[:20])
        assert run.exit_code == 0, run.output
        report = check(wave.snap, clouds, wave.state)
        report.assert_ok(f"at the end of wave {waves}")
        assert report.at_source == 0 and report.at_destination == len(wave.snap.versions)
        predicate = verify_state(wave.state, wave.manifest, keys[1])
        assert predicate["complete"] is True and predicate["totals"]["removed"] == len(objects)
        kills += run.kills
        print(f"random kills: wave {waves} completed after {run.kills} kills ({kills} in all)")
        waves += 1
    assert kills >= KILLS
