"""docs/ci.md's workflow: its rehearsal step's script, as written there, run on a sample repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.test_rehearse import _manifest, _wave

DOC = Path(__file__).resolve().parents[2] / "docs" / "ci.md"


def _step_script(name: str) -> str:
    """The ``run: |`` block of the workflow step called ``name``."""
    workflow = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert workflow is not None
    lines = workflow.group(1).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {name}")
    at = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[at]) - len(lines[at].lstrip()) + 2
    body = []
    for line in lines[at + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line)
    return textwrap.dedent("\n".join(body)) + "\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}).stdout


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "team-waves"
    (repo / "waves").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "README.md").write_text("waves\n")
    _manifest(repo / "waves" / "untouched.jsonl", us=2, eu=0)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    return repo, _git(repo, "rev-parse", "HEAD").strip()


def _run_step(repo: Path, base: str) -> subprocess.CompletedProcess[str]:
    script = repo.parent / "step.sh"
    script.write_text(_step_script("Rehearse each changed manifest"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MIGRATOR_", "STORAGE_EMULATOR"))}
    env.update(BASE_SHA=base, SAMPLE="3", MIGRATOR_NO_BACKOFF="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run(["bash", str(script)], cwd=repo, capture_output=True, text=True, env=env, timeout=600)


def test_the_workflow_rehearses_each_changed_manifest_and_keeps_its_report(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    _manifest(repo / "waves" / "us-photos.jsonl", us=5, eu=1)
    _wave(repo / "waves" / "us-photos.toml")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a new wave")
    done = _run_step(repo, base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ready: the wave would remove every in-scope row" in done.stdout
    reports = sorted(p.name for p in (repo / "rehearsals").iterdir())
    assert reports == ["us-photos.json"]   # the untouched manifest is not rehearsed
    report = json.loads((repo / "rehearsals" / "us-photos.json").read_text())
    assert report["ok"] and report["seeded"]["rows"] == 3 and report["projection"]["rows"] == 6


def test_the_workflow_fails_on_a_refused_wave(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path)
    _manifest(repo / "waves" / "mixed.jsonl", us=2, eu=1)
    _wave(repo / "waves" / "mixed.toml", other="refuse")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a wave with an EU row")
    done = _run_step(repo, base)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "waves/mixed.jsonl:3: residency" in done.stderr
    assert "rehearsal of waves/mixed.jsonl: exit 2" in done.stdout
