"""Where settings may come from: the store layer never imports the settings module, and below the entry
points nothing reads the environment (values are resolved once by config.load_wave and passed down)."""

from __future__ import annotations

import ast
from pathlib import Path

import migrator

ROOT = Path(migrator.__file__).parent

# Entry points, and the processes and hooks that are entry points of their own:
ENV_READERS = {
    "cli.py",            # resolves WaveSettings from os.environ; honours MIGRATOR_NO_BACKOFF
    "demo.py",           # points the SDKs at the sandbox it starts, as `eval "$(migrator sandbox env)"` would
    "crashpoints.py",    # the kill-test hook MIGRATOR_CRASH_AT, read by every process under test
    "attest/scan.py",    # hands its own environment (with PYTHONPATH) to the scan workers it starts
    "rehearsal.py",      # gives the SDKs the sandbox's environment alone while a rehearsal runs (HOME too)
    "testing/plugin.py", # pytest's entry point: sets the sandbox's environment for a session, as demo.py does
}


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "sandbox" not in p.relative_to(ROOT).parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _reads_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv", "environb") for a in node.names):
            return True
    return False


def test_nothing_in_stores_imports_the_settings_module() -> None:
    offenders = {p.name: sorted(n for n in _imports(p) if n == "migrator.config" or n.startswith("migrator.config."))
                 for p in _modules(ROOT / "stores")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_attestation_package_imports_no_settings_module() -> None:
    offenders = [p.name for p in _modules(ROOT / "attest") if any(
        n == "migrator.config" or n.startswith("migrator.config.") for n in _imports(p))]
    assert offenders == []


def test_below_the_entry_points_nothing_reads_the_environment() -> None:
    readers = {str(p.relative_to(ROOT)) for p in _modules(ROOT) if _reads_environment(p)}
    assert readers - ENV_READERS == set()
    assert "cli.py" in readers   # the check sees a reader when there is one
