"""Hostile and bad input: fuzzed manifests, awkward keys through a whole wave, manifests that must be refused.

* Fuzzing (hypothesis) of ``migrator.manifest.validate`` and ``iter_rows``: the result is a summary (and the
  rows agree with it) or an InputError naming the file, the line and, for a bad value, the field; never
  another exception, never a file written. CI runs ``MIGRATOR_FUZZ_EXAMPLES`` cases (default 300);
  ``benchmarks/soak.py --fuzz 10000`` runs the same strategy and judge.
* Keys with unicode (also beyond Latin-1), spaces, ``%``, ``+``, ``..``, leading slashes, 1,024-byte names and
  zero-byte objects go through a whole wave from S3 and from GCS into OCI and land under exactly the same names,
  each naming its source exactly in its metadata.
* Duplicate rows, two rows writing one destination, a destination equal to a source, unknown schemes and
  truncated files: ``migrator run`` exits 2, and writes nothing (no state folder, no object anywhere).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.errors import InputError
from migrator.manifest import FIELDS, iter_rows, validate
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from tests.conftest import unique
from tests.reliability.conftest import SeededWave, verify_state
from tests.reliability.invariant import Clouds, check, child_env, run_command, snapshot, write_manifest

FUZZ_EXAMPLES = int(os.environ.get("MIGRATOR_FUZZ_EXAMPLES", "300"))

# ------------------------------------------------------------------------------------------------ fuzzing

# Errors about the file's syntax carry a line but no field; every other error names its field.
_SYNTAX = ("not valid JSON", "a row must be a JSON object", "malformed CSV", "row has ", "not valid UTF-8",
           "line longer than", "manifest has no rows", "cannot read manifest", "the file ends inside")
_AWKWARD = ["", " ", "..", "/", "//", "%2F", "+", "\u00e9", "\u65e5\u672c", "\x00", "\x1f", "\n", "\r\n", '"', ",",
            "'", "\\", "{", "}", "[", "]", "\ufeff", "\U0001f600", "\udc80", "a" * 1030, "\u00e9" * 513]
_CHARS = st.sampled_from(list("ab/.%+ _-:") + _AWKWARD[5:24])
# Pools built once: drawing one element is far cheaper than composing many small draws per example.
_URIS = sorted({f"{scheme}{sep}{ns}{bucket}/{key}"
                for scheme, sep, ns in (("s3", "://", ""), ("gs", "://", ""), ("oci", "://", "ns/"),
                                        ("oci", "://", ""), ("oci", "://", "n s/"), ("ftp", "://", ""),
                                        ("S3", "://", ""), ("s3", ":/", ""), ("", "", ""), ("gs", "://", "/"))
                for bucket in ("bucket-a", "bucket-b", "b", "Bad_Bucket", "x" * 64, "")
                for key in ("k", "dir/k", "/lead", "a/../b", "sp ace", "p%20c", "p+s", "", "\u00e9", "x" * 1025,
                            "\u00e9" * 512, "\x00", "tab\t")})
_URI = st.one_of(st.sampled_from(_URIS), st.lists(_CHARS, max_size=12).map("".join))
_VALUE = st.one_of(st.sampled_from([None, True, False, 0, -1, 7, 2**63, 2**64, 1.5, float("nan"), "", "12", " 3",
                                    "0" * 32, "f" * 64, "AAAAAA==", "mnG7TB==", "00000000", "US", [], [1], [None],
                                    {"a": 1}, *_AWKWARD]),
                   _URI, st.lists(_URI, max_size=3))
_NAMES = st.sampled_from([*FIELDS, "Source", "replica", "extra", ""])


@st.composite
def _row(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        row["source"] = draw(_URI)
    if draw(st.integers(0, 9)):
        row["destination"] = draw(_URI)
    for name in draw(st.lists(_NAMES, max_size=3)):
        row[name] = draw(_VALUE)
    return row


_GOOD_SOURCES = [f"{p}{b}/{k}" for p, b in (("s3://", "bucket-a"), ("gs://", "bucket-g"), ("oci://ns/", "src"))
                 for k in ("k", "dir/k", "/lead", "a/../b", "sp ace", "p%20c", "p+s", "\u00e9/\u65e5", "x" * 1000)]
_GOOD_DESTS = [f"oci://ns/dst/{k}" for k in ("k", "dir/k", "/lead", "a/../b", "sp ace", "p+s", "\u00e9")] + \
              ["s3://bucket-d/k", "s3://bucket-d/other"]


@st.composite
def _good_row(draw: st.DrawFn) -> dict[str, Any]:
    """A row that is valid on its own (two of them may still collide across rows)."""
    row: dict[str, Any] = {"source": draw(st.sampled_from(_GOOD_SOURCES)) + str(draw(st.integers(0, 999))),
                           "destination": draw(st.sampled_from(_GOOD_DESTS)) + str(draw(st.integers(0, 999)))}
    extra = draw(st.integers(0, 31))
    if extra & 1:
        row["size"] = draw(st.sampled_from([0, 1, 4096, 2**63 - 1]))
    if extra & 2:
        row["sha256"] = draw(st.sampled_from(["0" * 64, "ab" * 32]))
    if extra & 4:
        row["crc32c"] = draw(st.sampled_from(["00000000", "AAAAAA=="]))
    if extra & 8:
        row["subject"] = draw(st.sampled_from(["u1", "\u00fcser", "a b"]))
    if extra & 16:
        row["replicas"] = [draw(st.sampled_from(["gs://bucket-r/k", "s3://bucket-r2/k", "oci://ns/rep/k"]))
                           + str(draw(st.integers(0, 999)))]
    return row


def _csv_spelling(row: dict[str, Any]) -> dict[str, Any]:
    """CSV spells one replica as a "replica" column; anything else stays as drawn (hostile)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "replicas" and isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
            out["replica"] = v[0]
        else:
            out[k] = v
    return out


def _render(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8", "surrogatepass")
    rows = [_csv_spelling(r) for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r)) or ["source", "destination"]

    def cell(v: object) -> str:
        text = "" if v is None else json.dumps(v) if isinstance(v, list) else str(v)
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text

    lines = [",".join(cell(n) for n in names)] + [",".join(cell(r.get(n)) for n in names) for r in rows]
    return ("\r\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


@st.composite
def manifest_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes): rendered rows (with duplicates), then perhaps truncated, spliced or replaced."""
    fmt = draw(st.sampled_from(["jsonl", "csv"]))
    row = st.one_of(_good_row(), _row()) if draw(st.booleans()) else _good_row()
    rows = draw(st.lists(row, min_size=0 if not draw(st.integers(0, 9)) else 1, max_size=6))
    if rows and not draw(st.integers(0, 3)):
        rows.append(dict(draw(st.sampled_from(rows))))   # a duplicate row
    data = _render(rows, fmt)
    mutation = draw(st.sampled_from(["none", "none", "none", "none", "truncate", "splice", "bytes"]))
    if mutation == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif mutation == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    elif mutation == "bytes":
        data = draw(st.binary(max_size=200))
    name = "m." + draw(st.sampled_from([fmt, fmt, "txt", "csv", "jsonl", "ndjson"]))
    return name, data


def judge(path: Path) -> str:
    """Validate and iterate ``path``; return "valid" or "refused", or fail the test."""
    before = sorted(os.listdir(path.parent))
    try:
        try:
            summary = validate(path)
        except InputError as exc:
            _check_error(exc, path)
            # The streaming reader refuses it too, or it broke only a cross-row rule.
            try:
                list(iter_rows(path))
            except InputError as exc2:
                _check_error(exc2, path)
            return "refused"
        rows = list(iter_rows(path))   # validate accepted it: the reader must agree row for row
        assert len(rows) == summary.rows and [r.row for r in rows] == list(range(1, summary.rows + 1))
        assert summary.rows > 0 and len(summary.sha256) == 64
        return "valid"
    finally:
        assert sorted(os.listdir(path.parent)) == before, "the manifest reader wrote a file"


def _check_error(exc: InputError, path: Path) -> None:
    message = str(exc.args[0])
    assert exc.file == str(path), exc.diagnostics()
    assert message and "Traceback" not in message
    if message.startswith(("manifest has no rows", "cannot read manifest")):
        return
    assert exc.line is not None and exc.line >= 1, exc.diagnostics()
    assert f"line {exc.line}" in exc.diagnostics()
    if not message.startswith(_SYNTAX):
        assert exc.field is not None, f"no field named: {exc.diagnostics()}"
        assert f"field {exc.field!r}" in exc.diagnostics()


def judge_case(case: tuple[str, bytes], workdir: Path) -> str:
    name, data = case
    folder = Path(tempfile.mkdtemp(dir=workdir))
    path = folder / name
    path.write_bytes(data)
    try:
        return judge(path)
    finally:
        path.unlink()
        folder.rmdir()


FUZZ_SETTINGS = settings(deadline=None, database=None, derandomize=False,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(FUZZ_SETTINGS, max_examples=FUZZ_EXAMPLES)
@given(case=manifest_files())
def test_fuzzed_manifests_are_refused_clearly_or_read_whole(fuzz_dir: Path, case: tuple[str, bytes]) -> None:
    judge_case(case, fuzz_dir)


def test_judge_sees_both_outcomes(tmp_path: Path) -> None:
    good = tmp_path / "g.jsonl"
    good.write_text('{"source": "s3://bucket-a/k", "destination": "oci://ns/b/k"}\n')
    assert judge(good) == "valid"
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"source": "s3://bucket-a/k", "destination": "gs://bucket-b/k"}\n')
    assert judge(bad) == "refused"


# ------------------------------------------------------------------------------------- awkward keys, a wave

EDGE_KEYS = [
    "unicode/\u00fcn\u00efc\u00f8d\u00e9.txt",
    "unicode/\u65e5\u672c\u8a9e/\u30c6\u30b9\u30c8-\U0001f600-\u20ac.txt",   # beyond Latin-1
    "with space/a b  c.txt",
    "percent/100%25 done %2F not a slash %.bin",
    "plus/a+b+c+.bin",
    "dots/../up/./here/..",
    "/leading/slash",
    "//double/leading",
    "question?and#hash&amp=1",
    "k/" + "x" * 1022,                     # 1,024 bytes
    "u/" + "\u00e9" * 511,                 # 1,024 bytes of two-byte characters
    "zero/empty-object",
]


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_awkward_keys_and_empty_objects_go_through_a_whole_wave(scheme: str, sandbox: SandboxState,
                                                                clouds: Clouds, tmp_path: Path,
                                                                keys: tuple[Path, Path]) -> None:
    assert all(len(k.encode()) <= 1024 for k in EDGE_KEYS) and sum(len(k.encode()) == 1024 for k in EDGE_KEYS) == 2
    rng = random.Random(7)
    src, dst = unique("hsrc"), unique("hdst")
    create_bucket(sandbox, scheme, src, versioned=True)
    create_bucket(sandbox, "oci", dst, versioned=True)
    bodies = {k: (b"" if k.startswith("zero/") or i % 3 == 0 else rng.randbytes(300 + i))
              for i, k in enumerate(EDGE_KEYS)}
    for k, body in bodies.items():
        if scheme == "s3":
            clouds.s3.put_object(Bucket=src, Key=k, Body=body)
        else:
            clouds.gcs.bucket(src).blob(k).upload_from_string(body)
    ns = sandbox.oci_namespace
    manifest = write_manifest(tmp_path / "edge.jsonl", (
        {"source": f"{scheme}://{src}/{k}", "destination": f"oci://{ns}/{dst}/{k}"} for k in bodies))
    snap = snapshot(clouds, manifest)
    assert len(snap.versions) == len(EDGE_KEYS)
    state = tmp_path / "state"
    done = subprocess.run(run_command(manifest, state, keys[0]), env=child_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    report = check(snap, clouds, state)
    report.assert_ok()
    assert report.at_source == 0
    for row in snap.rows.values():
        listed = clouds.versions(row.destination)
        assert len(listed) == 1, row.destination
        assert clouds.read(row.destination, listed[0]) == bodies[row.destination.key]
        # The copy names its source in metadata (headers are ASCII: percent-encoded), exactly.
        head = clouds.oci.head_object(ns, dst, row.destination.key, version_id=listed[0].version)
        assert urllib.parse.unquote(head.headers["opc-meta-migrator-source"]) == str(row.source)
    assert verify_state(state, manifest, keys[1])["complete"] is True


# ------------------------------------------------------------------------------ bad manifests write nothing


def _bad_manifests(src: str, dst: str, ns: str) -> dict[str, tuple[str, str, int | None, str | None]]:
    """name -> (file name, content, line the error must name, field it must name)."""
    s = [f"s3://{src}/k{i}" for i in range(3)]
    d = [f"oci://{ns}/{dst}/k{i}" for i in range(3)]
    csv_head = "source,destination\n"

    def jl(*rows: tuple[str, str]) -> str:
        return "".join(json.dumps({"source": a, "destination": b}) + "\n" for a, b in rows)

    good = jl((s[0], d[0]), (s[1], d[1]))
    return {
        "duplicate row": ("m.jsonl", jl((s[0], d[0]), (s[1], d[1]), (s[0], d[0])), 3, "source"),
        "two rows one destination": ("m.csv", csv_head + f"{s[0]},{d[0]}\n{s[1]},{d[0]}\n", 3, "destination"),
        "destination is another row's source": ("m.jsonl", jl((s[0], d[0]), (s[1], s[0])), 2, "destination"),
        "destination is its own source": ("m.jsonl", jl((s[0], d[0]), (s[1], s[1])), 2, "destination"),
        "unknown source scheme": ("m.csv", csv_head + f"{s[0]},{d[0]}\nftp://{src}/k1,{d[1]}\n", 3, "source"),
        "unknown destination scheme": ("m.jsonl", jl((s[0], d[0]), (s[1], f"azure://{dst}/k1")), 2, "destination"),
        "gs destination": ("m.jsonl", jl((s[0], d[0]), (s[1], f"gs://{dst}/k1")), 2, "destination"),
        "truncated jsonl": ("m.jsonl", good[:-25], 2, None),
        "truncated csv quote": ("m.csv", csv_head + f'{s[0]},{d[0]}\n"{s[1]},{d[1]}\n', 3, None),
        "truncated csv row": ("m.csv", csv_head + f"{s[0]},{d[0]}\n{s[1]}", 3, None),
        "empty file": ("m.csv", "", None, None),
        "header only": ("m.csv", csv_head, None, None),
    }


@pytest.fixture
def guarded(sandbox: SandboxState, clouds: Clouds, tmp_path: Path,
            wave_factory: Callable[..., SeededWave]) -> SeededWave:
    """Real objects at k0..k2 and an empty destination, so that any write would show."""
    rng = random.Random(3)
    return wave_factory("s3", {f"k{i}": [rng.randbytes(64)] for i in range(3)})


def test_bad_manifests_exit_2_and_write_nothing(sandbox: SandboxState, clouds: Clouds, tmp_path: Path,
                                                keys: tuple[Path, Path], guarded: SeededWave) -> None:
    cases = _bad_manifests(guarded.source_bucket, guarded.dest_bucket, sandbox.oci_namespace)
    procs: dict[str, tuple[Path, Path, subprocess.Popen[str]]] = {}
    for i, (case, (name, content, _, _)) in enumerate(cases.items()):
        manifest = tmp_path / f"bad{i}" / name
        manifest.parent.mkdir()
        manifest.write_text(content)
        state = tmp_path / f"bad{i}-state"
        # The runs are independent (and each must refuse at once): start them together.
        procs[case] = (manifest, state, subprocess.Popen(run_command(manifest, state, keys[0]), env=child_env(),
                                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    failures = []
    for case, (manifest, state, proc) in procs.items():
        _, _, line, field = cases[case]
        _, err = proc.communicate(timeout=120)
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}")
        if "Traceback" in err or str(manifest) not in err:
            problems.append("no clear message naming the file")
        if line is not None and f"line {line}" not in err:
            problems.append(f"line {line} not named")
        if field is not None and f"field {field!r}" not in err:
            problems.append(f"field {field!r} not named")
        if state.exists() and list(state.iterdir()):
            problems.append("the state folder was written")
        if sorted(p.name for p in manifest.parent.iterdir()) != [manifest.name]:
            problems.append("a file was written next to the manifest")
        if problems:
            failures.append(f"{case}: {', '.join(problems)}: {err.strip()[:300]}")
    assert failures == [], "\n".join(failures)
    # Nothing anywhere: every source version still there, the destination bucket empty (no upload either).
    assert guarded.snap is not None
    report = check(guarded.snap, clouds, None)
    assert report.ok and report.at_source == len(guarded.snap.versions)
    assert clouds.bucket(next(iter(guarded.snap.rows.values())).destination, prefix="") == {}
    assert not clouds.oci.list_multipart_uploads(sandbox.oci_namespace, guarded.dest_bucket).data


def test_csv_manifest_cut_inside_last_uri_is_refused(sandbox: SandboxState, tmp_path: Path,
                                                     guarded: SeededWave) -> None:
    ns = sandbox.oci_namespace
    csv = "source,destination\n" + "".join(f"s3://{guarded.source_bucket}/k{i},oci://{ns}/{guarded.dest_bucket}/"
                                           f"key-{i}\n" for i in range(2))
    # Cut in the middle of the last destination key: ".../key-1" becomes ".../ke", another object's name.
    manifest = tmp_path / "cut.csv"
    manifest.write_text(csv[:-4])
    with pytest.raises(InputError, match="ends inside") as refused:
        validate(manifest)
    assert refused.value.line == 3
