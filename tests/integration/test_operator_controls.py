"""What an operator drives while a wave runs, through the command line as they would: events and the
operational log arriving during a run slowed by the sandbox's latency, `status --json` from another
process meanwhile, a clean stop on SIGINT/SIGTERM (and at once on a second), and a finished wave shown again
rather than signed again. No time is asserted: latency only makes the run long enough to watch."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.keys import generate_keypair
from migrator.sandbox.buckets import create_bucket, s3_client
from migrator.sandbox.control import SandboxState
from migrator.sandbox.faults import FaultPlan, set_faults
from migrator.stores.registry import Stores
from migrator.uri import Location
from tests.conftest import unique
from tests.reliability.invariant import write_manifest

CLI = [sys.executable, "-m", "migrator"]
MiB = 1024 * 1024


class Wave:
    def __init__(self, sandbox: SandboxState, tmp: Path, count: int, size: int) -> None:
        self.sandbox, self.tmp = sandbox, tmp
        self.src, self.dst = unique("opsrc"), unique("opdst")
        create_bucket(sandbox, "s3", self.src, versioned=True)
        create_bucket(sandbox, "oci", self.dst, versioned=True)
        client = s3_client(sandbox)
        keys = [f"k/{i:03d}" for i in range(count)]
        for i, key in enumerate(keys):
            client.put_object(Bucket=self.src, Key=key, Body=bytes([i % 256]) * size)
        ns = sandbox.oci_namespace
        self.manifest = write_manifest(tmp / "m.jsonl", [
            {"source": f"s3://{self.src}/{k}", "destination": f"oci://{ns}/{self.dst}/{k}"} for k in keys])
        self.key, _ = generate_keypair(tmp / "keys")
        self.state = tmp / "state"
        self.env = {**os.environ, **sandbox.env(), "MIGRATOR_NO_BACKOFF": "1"}

    def args(self, *extra: str) -> list[str]:
        return [*CLI, "run", str(self.manifest), "--state", str(self.state), "--signing-key", str(self.key),
                "--concurrency", "2", *extra]

    def start(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.args(*extra), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.args(*extra), env=self.env, capture_output=True, text=True, timeout=600)

    def status(self) -> dict[str, Any]:
        proc = subprocess.run([*CLI, "status", "--state", str(self.state), "--json"], env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        data: dict[str, Any] = json.loads(proc.stdout)
        return data


@pytest.fixture
def slow(sandbox: SandboxState) -> Iterator[None]:
    """Every request to every sandbox endpoint takes 150 ms longer; off again afterwards."""
    urls = (sandbox.s3.url, sandbox.gcs.url, sandbox.oci.url)
    for url in urls:
        set_faults(url, FaultPlan(latency_ms=150), ca_file=sandbox.ca_file)
    try:
        yield
    finally:
        for url in urls:
            set_faults(url, None, ca_file=sandbox.ca_file)


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for(proc: subprocess.Popen[str], what: str, ready: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            out, errs = proc.communicate()
            pytest.fail(f"the run ended before {what}: {proc.returncode}\n{out}\n{errs}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"never saw {what}")


def test_events_log_and_status_arrive_during_a_slowed_run(sandbox: SandboxState, tmp_path: Path, slow: None) -> None:
    w = Wave(sandbox, tmp_path, count=12, size=64 * 1024)
    events, oplog = tmp_path / "events.jsonl", tmp_path / "ops.log"
    (tmp_path / "wave.toml").write_text("[policy]\nbatch_rows = 3\n")   # rows removed batch by batch
    proc = w.start("--wave", str(tmp_path / "wave.toml"), "--events", str(events), "--log-file", str(oplog),
                   "--json")
    _wait_for(proc, "a progress snapshot", lambda: (w.state / "progress.json").exists())
    during = w.status()
    _wait_for(proc, "a removed row's event", lambda: any(
        e["type"] == "row" and e["state"] == "REMOVED" for e in _events(events)))
    assert proc.poll() is None   # the event came during the run, not at its end
    out, errs = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + errs
    assert during["run"] in ("running", "stopping") and during["pid"], during
    assert during["rows"] == 12 and during["progress"]["rows"] == 12
    assert during["attestation"]["state"] == "none"

    evs = _events(events)
    assert {e["schema"] for e in evs} == {"migrator.events/1"}
    assert evs[0]["type"] == "wave.started" and evs[-1]["type"] == "wave.finished"
    assert any(e["type"] == "progress" for e in evs)
    removed = [e for e in evs if e["type"] == "row" and e["state"] == "REMOVED"]
    assert sorted(e["row"] for e in removed) == list(range(1, 13))
    summary = json.loads(out)   # --json alone: stdout is the result and nothing else
    assert summary["schema"] == "migrator.summary/1" and summary["status"] == "complete"
    assert summary["removed"] == 12 and summary["exit_code"] == 0

    lines = [json.loads(line) for line in oplog.read_text().splitlines()]
    steps = [x for x in lines if x.get("row") == 1]
    assert [x["step"] for x in steps][-1] == "REMOVED" and steps[-1]["uri"] == f"s3://{w.src}/k/000"
    assert all({"time", "level", "wave_id", "step"} <= set(x) for x in lines)
    text = oplog.read_text() + events.read_text()
    for secret in (w.env.get("AWS_SECRET_ACCESS_KEY"), w.env.get("AWS_SESSION_TOKEN")):
        if secret:
            assert secret not in text
    for path in (events, oplog, w.state / "progress.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    after = w.status()
    assert after["run"] == "finished" and after["attestation"]["state"] == "current"
    assert after["by_state"] == {"REMOVED": 12}


def _open_uploads(w: Wave) -> list[Any]:
    uploads = Stores(_settings(w).stores).get("oci").features.uploads
    assert uploads is not None
    return list(uploads.list(Location("oci", w.dst, w.sandbox.oci_namespace), ""))


def _settings(w: Wave) -> Any:
    from migrator.config import load_wave

    return load_wave(None, {}, w.sandbox.env())


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_cleanly_aborts_uploads_and_the_same_command_resumes(
        sandbox: SandboxState, tmp_path: Path, slow: None, sig: signal.Signals, code: int) -> None:
    w = Wave(sandbox, tmp_path, count=4, size=11 * MiB)
    (tmp_path / "wave.toml").write_text(f"[transfer]\npart_size = {5 * MiB}\nmultipart_threshold = {5 * MiB}\n")
    events = tmp_path / "events.jsonl"
    extra = ("--wave", str(tmp_path / "wave.toml"), "--events", str(events))
    proc = w.start(*extra)
    _wait_for(proc, "a copy under way", lambda: any(
        e["type"] == "row" and e["state"] == "COPYING" for e in _events(events)))
    time.sleep(0.5)   # a part or two in flight
    proc.send_signal(sig)
    out, errs = proc.communicate(timeout=300)
    assert proc.returncode == code, out + errs
    assert "run the same command again to resume" in errs and "Traceback" not in errs
    evs = _events(events)
    assert evs[-1]["type"] == "wave.stopped" and evs[-1]["exit_code"] == code
    assert _open_uploads(w) == []   # the copies in flight aborted their multipart uploads
    st = w.status()
    assert st["run"] == "stopped" and st["rows"] == 4
    again = w.run(*extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert w.status()["by_state"] == {"REMOVED": 4}
    assert _open_uploads(w) == []


def test_a_second_ctrl_c_stops_at_once_and_the_journal_resumes(sandbox: SandboxState, tmp_path: Path,
                                                               slow: None) -> None:
    w = Wave(sandbox, tmp_path, count=6, size=256 * 1024)
    events = tmp_path / "events.jsonl"
    proc = w.start("--events", str(events))
    _wait_for(proc, "a row under way", lambda: any(e["type"] == "row" for e in _events(events)))
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, errs = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + errs
    assert "stopped at once" in errs or "run the same command again" in errs
    again = w.run()
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_finished_wave_is_shown_again_not_signed_again(sandbox: SandboxState, tmp_path: Path) -> None:
    w = Wave(sandbox, tmp_path, count=3, size=1024)
    log = tmp_path / "log"
    extra = ("--attestation-log", str(log), "--attestation-log-origin", "ops.example/waves")
    first = w.run(*extra)
    assert first.returncode == 0, first.stdout + first.stderr
    attestation = (w.state / "attestation.json").read_bytes()
    logged = sorted((p.name, p.read_bytes()) for p in log.rglob("*") if p.is_file())
    second = w.run("--log", str(log), "--log-origin", "ops.example/waves", "--events", "-", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert (w.state / "attestation.json").read_bytes() == attestation
    assert sorted((p.name, p.read_bytes()) for p in log.rglob("*") if p.is_file()) == logged
    lines = [json.loads(x) for x in second.stdout.splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["reused"] is True and lines[-1]["status"] == "complete"
    assert all(x["schema"] == "migrator.events/1" for x in lines)
    assert second.stderr == ""   # --json: the result is the summary event; no human summary besides
    plain = w.run("--events", "-")
    assert plain.returncode == 0 and "finished earlier" in plain.stderr   # stdout has the events
    assert all(json.loads(x)["type"] != "summary" for x in plain.stdout.splitlines())
    third = w.run("--reattest", "--quiet")
    assert third.returncode == 0 and third.stdout == ""
    assert (w.state / "attestation.json").read_bytes() != attestation
