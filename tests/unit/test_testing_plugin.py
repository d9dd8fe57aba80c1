"""migrator's pytest plugin (migrator.testing.plugin): the example of docs/testing.md runs as written, the
plugin module imports nothing heavy (every pytest run in the environment loads it), and a missing sandbox
package fails a fixture with the install command. Each run is a fresh pytest process (pytester)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.sandbox.serve import SANDBOX_EXTRA
from migrator.testing import plugin

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "testing.md"
# Loaded by module name; "no:migrator" keeps the installed entry point (the same module) from loading twice.
PLUGIN_ARGS = ("-p", "no:migrator", "-p", "migrator.testing.plugin", "-p", "no:cacheprovider")
HEAVY = ("boto3", "botocore", "moto", "google", "oci", "migrator.sandbox", "migrator.runner", "migrator.stores",
         "migrator.config", "migrator.attest")


def _example() -> str:
    """The one python block under docs/testing.md's "A complete example"."""
    section = DOC.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "docs/testing.md has no python block under 'A complete example'"
    return found.group(1)


@pytest.fixture
def isolated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose processes import this checkout's migrator, with no sandbox of ours in the
    environment (the outer session's, if any, must not leak into the inner one)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    for name in [n for n in os.environ if n.startswith(("AWS_", "MIGRATOR_SANDBOX", "STORAGE_EMULATOR"))]:
        monkeypatch.delenv(name)
    return pytester


def test_the_documented_example_runs_as_written(isolated: pytest.Pytester) -> None:
    isolated.makepyfile(test_wave=_example())
    result = isolated.runpytest_subprocess(*PLUGIN_ARGS, timeout=300)
    result.assert_outcomes(passed=1)


def test_importing_the_plugin_loads_no_sdk_and_no_sandbox() -> None:
    code = "import json, sys; import migrator.testing.plugin; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                       env=env).stdout)
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert "migrator.testing.plugin" in loaded


def test_a_fixture_without_the_sandbox_packages_fails_naming_the_extra(isolated: pytest.Pytester) -> None:
    isolated.makeconftest('''
import sys

class _Missing:
    """As if boto3 were not installed."""
    def find_spec(self, name, path=None, target=None):
        if name == "boto3" or name.startswith("boto3."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

for loaded in [m for m in sys.modules if m == "boto3" or m.startswith("boto3.")]:
    del sys.modules[loaded]
sys.meta_path.insert(0, _Missing())
''')
    isolated.makepyfile(test_uses_it='''
def test_plain():
    pass

def test_sandbox(migrator_sandbox):
    pass
''')
    result = isolated.runpytest_subprocess(*PLUGIN_ARGS, timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    # Not fnmatch: "[sandbox]" would be a character class there.
    assert f"cannot be imported here: {SANDBOX_EXTRA}" in result.stdout.str()
    result.stdout.fnmatch_lines(["*migrator's sandbox fixtures need boto3*"])
    assert "Traceback" not in result.stdout.str()


def test_the_plugin_names_the_projects_extra() -> None:
    assert plugin.SANDBOX_EXTRA == SANDBOX_EXTRA
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points.pytest11]\nmigrator = "migrator.testing.plugin"' in text


def test_the_fixtures_report_held_rows_subjects_and_a_failed_verification(isolated: pytest.Pytester) -> None:
    isolated.makepyfile(test_more='''
import os

import pytest

from migrator.errors import VerificationError

def test_held_and_subjects(tmp_path, migrator_sandbox, migrator_seed, migrator_run_wave):
    assert os.environ["AWS_ENDPOINT_URL"] == migrator_sandbox.state.s3.url
    assert [loc.name for loc in migrator_sandbox.locations][:2] == ["dc", "aws-us"]
    ns = migrator_sandbox.namespace
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        f'{{"source": "s3://more-src/a", "destination": "oci://{ns}/more-dest/a", "subject": "u-1", "size": 9}}\\n'
        f'{{"source": "s3://more-locked/b", "destination": "oci://{ns}/more-dest/b", "subject": "u-2"}}\\n')
    seeded = migrator_seed(manifest, holds={2})
    outcome = migrator_run_wave(seeded.manifest)
    assert outcome.states == {1: "REMOVED", 2: "HELD"}
    assert [r["row"] for r in outcome.records] == [1, 2]
    assert outcome.predicate and outcome.attestation.is_file() and outcome.public_key.is_file()
    assert outcome.result.held_rows[0][:2] == (2, "HELD")


def test_a_tampered_wave_fails_verification(tmp_path, migrator_sandbox, migrator_seed, migrator_run_wave,
                                            monkeypatch):
    ns = migrator_sandbox.namespace
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"source": "s3://more-tamper/a", "destination": "oci://{ns}/more-dest2/a"}}\\n')
    seeded = migrator_seed(manifest)
    import migrator.attest.verify as verify

    def refuse(*args, **kwargs):
        raise VerificationError("tampered")

    monkeypatch.setattr(verify, "verify_attestation", refuse)
    with pytest.raises(VerificationError):
        migrator_run_wave(seeded.manifest)

''')
    # After the session (the sandbox stopped), the environment is what it was before it.
    isolated.makeconftest('''
import json
import os

def pytest_unconfigure(config):
    with open("env-after.json", "w") as fh:
        json.dump({k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MIGRATOR_", "STORAGE_"))}, fh)
''')
    before = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MIGRATOR_", "STORAGE_"))}
    result = isolated.runpytest_subprocess(*PLUGIN_ARGS, timeout=300)
    result.assert_outcomes(passed=2)
    assert json.loads((isolated.path / "env-after.json").read_text()) == before
