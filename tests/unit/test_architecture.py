"""The layers of docs/architecture.md, as rules on what each module may import. Read from the source (every
import statement, at any depth, so a lazy import inside a function counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "migrator"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every migrator module this file imports (``from migrator.x import y`` counts as migrator.x and, when y
    is a module, migrator.x.y)."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("migrator"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("migrator") \
                and node.level == 0:
            out.add(node.module)
            for a in node.names:
                candidate = f"{node.module}.{a.name}"
                if (ROOT.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                        (ROOT.parent / candidate.replace(".", "/") / "__init__.py").exists():
                    out.add(candidate)
    return out


GRAPH = {_module(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _broken(sources: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(f"{m} imports {dep}" for m, deps in GRAPH.items() if _under(m, *sources)
                  for dep in deps if dep != "migrator"   # the package itself holds only __version__
                  and _under(dep, *forbidden) and not _under(dep, *allowed))


BASE = ("migrator.errors", "migrator.uri", "migrator.checksum", "migrator.records", "migrator.crashpoints",
        "migrator.endpoints", "migrator.files", "migrator.estate", "migrator.limits")
INPUT = ("migrator.manifest", "migrator.manifest_rows")
OPERATIONS = ("migrator.pipeline", "migrator.removal", "migrator.transfer", "migrator.listing", "migrator.evidence",
              "migrator.bucket_checks", "migrator.plan", "migrator.outcome", "migrator.preflight",
              "migrator.progress", "migrator.events", "migrator.observe", "migrator.stopping")
APPLICATION = ("migrator.cli", "migrator.demo", "migrator.runner", "migrator.config", "migrator.journal",
               "migrator.logstore", "migrator.live_stores", "migrator.oci_config", "migrator.state_files",
               "migrator.status", "migrator.display", "migrator.oplog", "migrator.rehearsal", "migrator.__main__")

RULES = {
    "the base imports nothing above it": (BASE, ("migrator",), BASE),
    "stores/ import only the base and the retry policy": (
        ("migrator.stores",), ("migrator",), (*BASE, "migrator.stores", "migrator.retry")),
    "attest/ imports only the base, its own modules and the stores' protocol (the auditor's side)": (
        ("migrator.attest",), ("migrator",), (*BASE, *INPUT, "migrator.attest", "migrator.stores.base")),
    "the operations import no application module, no attestation and no sandbox": (
        OPERATIONS, (*APPLICATION, "migrator.attest", "migrator.sandbox"), ("migrator.config", "migrator.journal")),
    "nothing below the application imports the sandbox": (
        (*BASE, *INPUT, *OPERATIONS, "migrator.stores", "migrator.attest", "migrator.journal", "migrator.runner",
         "migrator.config", "migrator.retry"), ("migrator.sandbox",), ()),
    "the sandbox imports only the base, the input layer and its own modules": (
        ("migrator.sandbox",), ("migrator",), (*BASE, *INPUT, "migrator.sandbox")),
    "the sandbox is not built on migrator's own adapters": (
        ("migrator.sandbox",), (*OPERATIONS, "migrator.stores", "migrator.attest", "migrator.runner",
                                "migrator.journal", "migrator.cli"), ()),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_import_rule_holds(rule: str) -> None:
    sources, forbidden, allowed = RULES[rule]
    assert _broken(sources, forbidden, allowed) == []


# The sandbox modules that read manifests (the input layer): seeding the buckets a manifest names.
SANDBOX_MANIFEST_READERS = ("migrator.sandbox.manifest_seed",)


def test_only_the_manifest_seeder_of_the_sandbox_reads_manifests() -> None:
    assert sorted(m for m, deps in GRAPH.items() if _under(m, "migrator.sandbox")
                  and any(_under(d, *INPUT) for d in deps)) == list(SANDBOX_MANIFEST_READERS)


def test_nothing_imports_the_test_plugin() -> None:
    # migrator.testing is for other projects' tests (and ours): it may import every layer, none imports it.
    assert sorted(m for m, deps in GRAPH.items() if not _under(m, "migrator.testing")
                  and any(_under(d, "migrator.testing") for d in deps)) == []


def test_nothing_imports_the_command_line_but_main() -> None:
    assert sorted(m for m, deps in GRAPH.items() if "migrator.cli" in deps) == ["migrator.__main__"]


def test_no_module_imports_itself_in_a_cycle() -> None:
    seen: dict[str, int] = {}   # 1 = on the path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        seen[m] = 1
        for dep in sorted(d for d in GRAPH.get(m, ()) if d in GRAPH and d != m and not m.startswith(d + ".")):
            if seen.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(dep):], dep]))
            if dep not in seen:
                visit(dep, [*path, dep])
        seen[m] = 2

    for m in sorted(GRAPH):
        if m not in seen:
            visit(m, [m])


def test_the_rules_see_every_module() -> None:
    assert "migrator.pipeline" in GRAPH and "migrator.attest.verify" in GRAPH and "migrator.stores.s3" in GRAPH
    assert "migrator.records" in GRAPH["migrator.pipeline"]
