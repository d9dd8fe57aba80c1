"""The long version of the reliability suite (`make soak`): random kills, faults and manifest fuzzing.

    python -m benchmarks.soak [--kills 200] [--fuzz 10000] [--fault-rate 0.1] [--fault-waves 10]
                              [--objects 80] [--seed 20261123] [--out benchmarks/results/soak.json]

It starts its own sandbox (loopback only) in a temporary folder and runs, in order:

1. kills: waves of small objects (every eighth with three versions) from S3 and GCS into OCI, each run by
   ``migrator run`` in a subprocess that is SIGKILLed a random 0.05-1.5 s after it opens its journal, checked
   against the invariant (tests/reliability/invariant.py) and run again, until ``--kills`` kills are done
   and the last wave has completed; every wave's attestation is verified;
2. faults: ``--fault-waves`` waves covering every source-evidence tier, in this process, with every fault
   kind on every endpoint at ``--fault-rate``, then once more clean to complete; and one wave per corrupting
   kind applied to every request it can touch (nothing may be verified or deleted);
3. fuzz: ``--fuzz`` hypothesis cases of the manifest reader and validator.

The JSON summary holds kills, resumes, objects, lost, unverified deletes, false claims, faults injected by
kind, retries by code, fuzz cases and outcomes, and the wall time. Exit 0 when nothing was lost, no delete
was unverified, no claim was false, every wave completed and every fuzz case passed; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrator.sandbox.control import SandboxState
    from tests.reliability.invariant import Clouds

RESULTS = Path(__file__).resolve().parent / "results"


def _kills(clouds: Clouds, sandbox: SandboxState, work: Path, keys: tuple[Path, Path], args: argparse.Namespace,
           out: dict[str, Any]) -> None:
    from tests.reliability.conftest import make_objects, seed_wave, verify_state
    from tests.reliability.invariant import check, child_env, run_command, run_with_random_kills

    rng = random.Random(args.seed)
    totals: Counter[str] = Counter()
    while totals["kills"] < args.kills:
        n = totals["waves"]
        objects = make_objects(rng, args.objects, multi_version_every=8, versions=3, prefix=f"w{n}")
        wave = seed_wave(sandbox, clouds, work, ("s3", "gs"), objects, name=f"kills{n}")
        if wave.snap is None:
            raise RuntimeError(f"seed_wave took no snapshot of wave {n}")
        cmd = run_command(wave.manifest, wave.state, keys[0], "--concurrency", "4")
        run = run_with_random_kills(cmd, child_env(), wave.state, wave.snap, clouds, rng,
                                    max_kills=args.kills - totals["kills"])
        final = check(wave.snap, clouds, wave.state)
        totals.update(waves=1, kills=run.kills, resumes=run.resumes, checks=run.checks + 1,
                      objects=len(objects), versions=len(wave.snap.versions),
                      lost=run.lost + len(final.lost),
                      unverified_deletes=run.unverified_deletes + len(final.unverified_deletes),
                      false_claims=run.false_claims + len(final.false_claims))
        out["problems"].extend(run.problems[:20] + final.problems()[:20])
        complete = run.exit_code == 0 and final.at_source == 0
        if complete:
            complete = verify_state(wave.state, wave.manifest, keys[1])["complete"] is True
        if not complete:
            totals["incomplete_waves"] += 1
            out["problems"].append(f"kill wave {n} did not complete (exit {run.exit_code}): {run.output[-500:]}")
        print(f"kills: wave {n} done, {totals['kills']}/{args.kills} kills", file=sys.stderr)
    out["kills"] = dict(totals)


def _faults(clouds: Clouds, sandbox: SandboxState, work: Path, keys: tuple[Path, Path], args: argparse.Namespace,
            out: dict[str, Any]) -> None:
    from migrator import retry
    from migrator.attest.keys import load_signer
    from migrator.config import load_wave
    from migrator.runner import run_wave
    from tests.reliability.invariant import check
    from tests.reliability.test_faults import CORRUPTING, CORRUPTION_PLANS, RETRYABLE, Faults, seed_tiers

    faults = Faults(sandbox)
    settings = load_wave(None, {"concurrency": 4}, os.environ)   # the sandbox's, set by main
    signer = load_signer(keys[0])
    injected: Counter[str] = Counter()
    before = Counter(dict(retry.retry_counts))
    summary: Counter[str] = Counter()
    rng = random.Random(args.seed + 1)
    plans: list[tuple[str, dict[str, Any]]] = []
    for i in range(args.fault_waves):
        plan = {"rate": args.fault_rate, "kinds": [*RETRYABLE, *CORRUPTING], "seed": args.seed + i, "timeout_ms": 150}
        plans.append((f"all kinds at {args.fault_rate:.0%} #{i}", {"s3": plan, "gs": plan, "oci": plan}))
    plans += [(f"{kind} on every eligible request", plan) for kind, plan in CORRUPTION_PLANS.items()]
    for i, (name, plan) in enumerate(plans):
        wave = seed_tiers(sandbox, clouds, work, rng, copies=3)
        state = work / f"faults-{i}-state"
        faults.set(plan)
        try:
            faulted = run_wave(wave.manifest, state, signer, settings)
        finally:
            got = faults.injected()
            faults.clear()
        injected.update(got)
        during = check(wave.snap, clouds, state)
        clean = run_wave(wave.manifest, state, signer, settings)
        after = check(wave.snap, clouds, state)
        summary.update(waves=1, objects=len(wave.tiers), held_or_failed_under_faults=faulted.held + faulted.failed,
                       removed_under_faults=faulted.removed,
                       lost=len(during.lost) + len(after.lost),
                       unverified_deletes=len(during.unverified_deletes) + len(after.unverified_deletes),
                       false_claims=len(during.false_claims) + len(after.false_claims),
                       incomplete_after_clean_resume=0 if clean.complete else 1)
        out["problems"].extend(during.problems()[:20] + after.problems()[:20])
        print(f"faults: {name}: injected {dict(got)}; removed {faulted.removed}, held {faulted.held}, "
              f"failed {faulted.failed}; clean resume complete {clean.complete}", file=sys.stderr)
    retries = Counter(dict(retry.retry_counts)) - before
    out["faults"] = {"rate": args.fault_rate, "waves": dict(summary), "injected": dict(sorted(injected.items())),
                     "injected_total": sum(injected.values()), "retries": dict(sorted(retries.items())),
                     "retries_total": sum(retries.values())}


def _fuzz(work: Path, args: argparse.Namespace, out: dict[str, Any]) -> None:
    from hypothesis import given, settings

    from tests.reliability.test_hostile_input import FUZZ_SETTINGS, judge_case, manifest_files

    outcomes: Counter[str] = Counter()
    folder = work / "fuzz"
    folder.mkdir()

    @settings(FUZZ_SETTINGS, max_examples=args.fuzz)
    @given(case=manifest_files())
    def fuzz(case: tuple[str, bytes]) -> None:
        outcomes[judge_case(case, folder)] += 1

    failure = None
    try:
        fuzz()
    except Exception:  # noqa: BLE001 - a failing case is a result to report, with its traceback
        failure = traceback.format_exc()[-3000:]
    # Hypothesis replays a failing case while shrinking; count distinct generated cases as it reports them.
    out["fuzz"] = {"cases": sum(outcomes.values()), "valid": outcomes["valid"], "refused": outcomes["refused"],
                   "failures": 0 if failure is None else 1, "failure": failure}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="random kills across waves (default 200)")
    parser.add_argument("--fuzz", type=int, default=10_000, help="manifest fuzz cases (default 10000)")
    parser.add_argument("--fault-rate", type=float, default=0.10, help="fault rate per request (default 0.10)")
    parser.add_argument("--fault-waves", type=int, default=10, help="waves with every fault kind (default 10)")
    parser.add_argument("--objects", type=int, default=80, help="objects per kill wave (default 80)")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    if args.fault_rate < 0.05:
        parser.error("--fault-rate must be at least 0.05")

    from migrator import retry
    from migrator.attest.keys import generate_keypair
    from migrator.sandbox import control
    from tests.reliability.invariant import Clouds

    started = time.monotonic()
    effective = (f"--kills {args.kills} --fuzz {args.fuzz} --fault-rate {args.fault_rate} "
                 f"--fault-waves {args.fault_waves} --objects {args.objects} --seed {args.seed}")
    out: dict[str, Any] = {"command": f"python -m benchmarks.soak {effective}", "seed": args.seed, "problems": []}
    retry.set_backoff(False)  # retries of in-process fault waves do not sleep; children get MIGRATOR_NO_BACKOFF
    with tempfile.TemporaryDirectory(prefix="migrator-soak-") as tmp:
        work = Path(tmp)
        sandbox = control.up(work / "sandbox")
        saved = dict(os.environ)
        try:
            os.environ.update(sandbox.env())
            os.environ.pop("AWS_PROFILE", None)
            clouds = Clouds(sandbox)
            keys = generate_keypair(work / "keys")
            if args.kills > 0:
                _kills(clouds, sandbox, work, keys, args, out)
            _faults(clouds, sandbox, work, keys, args, out)
            if args.fuzz > 0:
                _fuzz(work, args, out)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            control.down(work / "sandbox", missing_ok=True)
    out["wall_time_s"] = round(time.monotonic() - started, 1)
    kills, faults, fuzz = out.get("kills", {}), out["faults"]["waves"], out.get("fuzz", {})
    out["totals"] = {
        "kills": kills.get("kills", 0), "resumes": kills.get("resumes", 0),
        "objects": kills.get("objects", 0) + faults.get("objects", 0),
        "lost": kills.get("lost", 0) + faults.get("lost", 0),
        "unverified_deletes": kills.get("unverified_deletes", 0) + faults.get("unverified_deletes", 0),
        "false_claims": kills.get("false_claims", 0) + faults.get("false_claims", 0),
        "faults_injected": out["faults"]["injected"], "retries": out["faults"]["retries_total"],
        "fuzz_cases": fuzz.get("cases", 0),
    }
    t = out["totals"]
    out["ok"] = (t["lost"] == 0 and t["unverified_deletes"] == 0 and t["false_claims"] == 0
                 and kills.get("incomplete_waves", 0) == 0 and faults.get("incomplete_after_clean_resume", 0) == 0
                 and fuzz.get("failures", 0) == 0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(json.dumps(out["totals"], sort_keys=True))
    print(f"{'ok' if out['ok'] else 'FAILED'}: {args.out} ({out['wall_time_s']} s)")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
