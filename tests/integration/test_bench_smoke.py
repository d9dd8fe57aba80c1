"""Keeps the benchmark harness working: `python -m benchmarks.run --quick --cases 5` on 1,000 rows.

No time is asserted; case 5 needs no rclone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "latest.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "MIGRATOR_", "STORAGE_"))}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", *args, "--out", str(out),
                           "--workdir", str(tmp_path / "work")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_manifest_case_runs_and_reports(tmp_path: Path) -> None:
    result = _bench(tmp_path, "--cases", "5", "--scale", "0.001")
    rows = result["rows"]
    assert isinstance(rows, list) and rows
    validate = next(r for r in rows if r["variant"] == "validate")
    assert validate["metrics"]["rows"] == 1000
    assert validate["metrics"]["peak_rss_mib"] > 0
    assert all(rep["ok"] for rep in validate["reps"])
    assert any(t["target"].startswith("case 5") for t in result["targets"])
    assert (tmp_path / "latest.md").read_text().startswith("Run ")
