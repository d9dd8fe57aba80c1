"""A new repository with only a manifest, a wave file and docs/testing.md's example test passes, with migrator
installed from a locally built wheel (``pip install --no-index`` from a wheelhouse): as a user's CI meets it.

The dependencies' wheels are cached outside the clone, keyed by migrator's version, the dependency lists
and the Python version (``$MIGRATOR_WHEELHOUSE_CACHE``, default ``~/.cache/migrator/wheelhouse``), so only a
cold cache downloads; migrator's own wheel is built afresh from this checkout every time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import migrator
from tests.integration.test_rehearse import _manifest, _wave
from tests.unit.test_testing_plugin import _example

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _key() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = repr((project["project"]["dependencies"], project["project"]["optional-dependencies"]["sandbox"],
                   project["build-system"]["requires"], sys.version_info[:2]))
    return f"{migrator.__version__}-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"


def _pip(*args: str, python: str = sys.executable) -> None:
    subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, timeout=1200,
                   env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")})


def _wheelhouse() -> Path:
    cache = Path(os.environ.get("MIGRATOR_WHEELHOUSE_CACHE") or Path.home() / ".cache" / "migrator" / "wheelhouse")
    house = cache / _key()
    if not (house / ".complete").exists():
        partial = cache / f"{_key()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        # Every dependency, the build backend and pytest (the one cold step that needs an index).
        _pip("wheel", "--wheel-dir", str(partial), "setuptools>=77", "pytest", f"{ROOT}[sandbox]")
        for own in partial.glob("provable_migrator-*.whl"):
            own.unlink()   # built afresh from the checkout below, never cached
        (partial / ".complete").touch()
        shutil.rmtree(house, ignore_errors=True)
        partial.rename(house)
    return house


def test_a_new_repository_passes_with_migrator_from_a_local_wheel(tmp_path: Path) -> None:
    house = _wheelhouse()
    own = tmp_path / "dist"
    _pip("wheel", "--no-deps", "--no-index", "--find-links", str(house), "--wheel-dir", str(own), str(ROOT))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    _pip("install", "--no-index", "--find-links", str(house), "--find-links", str(own),
         "provable-migrator[sandbox]", "pytest", python=python)

    repo = tmp_path / "team-waves"
    (repo / "tests").mkdir(parents=True)
    _manifest(repo / "wave.jsonl", us=3, eu=1)
    _wave(repo / "wave.toml")
    (repo / "tests" / "test_wave.py").write_text(_example(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MIGRATOR_", "STORAGE_EMULATOR", "PYTHON", "REQUESTS_CA", "SSL_CERT"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The installed package, not this checkout: run from the new repository, with nothing on PYTHONPATH.
    found = subprocess.run([python, "-c", "import migrator; print(migrator.__file__)"], cwd=repo, env=env,
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert str(venv) in found.stdout and str(ROOT) not in found.stdout
    tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    rehearsal = subprocess.run([str(venv / "bin" / "migrator"), "rehearse", "wave.jsonl", "--wave", "wave.toml"],
                               cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    assert "ready: the wave would remove every in-scope row" in rehearsal.stdout
