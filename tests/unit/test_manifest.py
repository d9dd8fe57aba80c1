"""Manifest reader and validator: formats, every error naming file/line/field, fuzzing, edge keys, scale."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator import manifest
from migrator.checksum import Algorithm, Provenance
from migrator.errors import InputError
from migrator.manifest import ManifestRow, ManifestSummary, iter_rows, manifest_sha256, validate
from migrator.uri import ObjectURI

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"
SRC = "s3://demo-photos-us/a.png"
DST = "oci://migrator/us-users/a.png"
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"
HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(*rows: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def csv_text(header: list[str], *rows: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# --- good manifests -----------------------------------------------------------------------------------

def test_examples_validate_and_agree() -> None:
    by_format = {}
    for name in ("example.csv", "example.jsonl"):
        path = EXAMPLES / name
        summary = validate(path)
        assert summary.rows == 4
        assert summary.declared_bytes == 10
        assert summary.subjects == 2
        assert summary.sha256 == manifest_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
        assert summary.sources_by_location == {"s3://demo-photos-us": 2, "gs://demo-records-us": 2}
        by_format[summary.format] = [(r.row, r.source, r.destination, r.replicas, r.size, r.declared,
                                      r.subject, r.residency) for r in iter_rows(path)]
    assert by_format["csv"] == by_format["jsonl"]
    first = next(iter_rows(EXAMPLES / "example.jsonl"))
    assert [c.algorithm for c in first.declared] == [Algorithm.MD5, Algorithm.SHA256, Algorithm.CRC32C]
    assert all(c.provenance is Provenance.MANIFEST for c in first.declared)
    assert first.declared[0].hex == HELLO_MD5
    assert first.declared[2].b64 == "mnG7TA=="


def test_examples_match_schema() -> None:
    import jsonschema  # a dev dependency: the schema ships (manifests/schema.json), so its test must run
    schema = json.loads((EXAMPLES / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for line in (EXAMPLES / "example.jsonl").read_text().splitlines():
        assert list(validator.iter_errors(json.loads(line))) == []
    assert list(validator.iter_errors({"source": SRC, "destination": DST, "sha-256": HELLO_SHA256}))
    assert list(validator.iter_errors({"source": SRC, "destination": "gs://demo-x/a"}))


def test_csv_rows_lines_replica_columns_and_empty_cells(tmp_path: Path) -> None:
    text = ("\ufeffsource,replica_1,destination,replica_2,size,crc32c,subject\n"
            f"{SRC},gs://demo-backup/a.png,{DST},,5,9a71bb4c,u1\n"
            "\n"
            '"s3://demo-photos-us/b?",,"oci://migrator/us-users/b",s3://demo-dr/b,,mnG7TA==,"two\nlines"\n'
            "s3://demo-photos-us/c,,oci://migrator/us-users/c,,,,\n")
    rows = list(iter_rows(write(tmp_path, "m.csv", text)))
    assert [(r.line, r.row) for r in rows] == [(2, 1), (4, 2), (6, 3)]
    assert rows[0].replicas == (ObjectURI("gs", "demo-backup", "a.png"),)
    assert rows[0].size == 5 and rows[0].subject == "u1"
    assert rows[1].source.key == "b?" and rows[1].replicas[0].bucket == "demo-dr"
    assert rows[1].subject == "two\nlines"
    assert rows[0].declared[0].value == rows[1].declared[0].value   # hex and base64 CRC32C agree
    assert rows[2].replicas == () and rows[2].size is None and rows[2].declared == () and rows[2].subject is None


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = f'source,destination,subject\r\n{SRC},{DST},"two\r\nlines"\r\n'
    (row,) = iter_rows(write(tmp_path, "m.csv", text))
    assert (row.line, row.subject) == (2, "two\r\nlines")
    (row,) = iter_rows(write(tmp_path, "m.jsonl", GOOD_JSON + "\r\n"))
    assert row.destination.key == "a.png"


def test_repeated_replica_columns(tmp_path: Path) -> None:
    text = csv_text(["source", "replica", "destination", "replica"],
                    [SRC, "s3://demo-b/a", DST, "gs://demo-c/a"])
    (row,) = iter_rows(write(tmp_path, "m.csv", text))
    assert [str(r) for r in row.replicas] == ["s3://demo-b/a", "gs://demo-c/a"]


def test_jsonl_bom_blank_lines_nulls_and_no_final_newline(tmp_path: Path) -> None:
    text = ("\ufeff" + json.dumps({"source": SRC, "destination": DST, "replicas": None, "size": 0,
                                   "md5": HELLO_MD5.upper(), "subject": "", "residency": "US"})
            + "\n\n   \n" + json.dumps({"source": "oci://other-ns/b/k", "destination": "s3://demo-dst/k"}))
    path = write(tmp_path, "m.ndjson", text)
    rows = list(iter_rows(path))
    assert [(r.line, r.row) for r in rows] == [(1, 1), (4, 2)]
    assert rows[0].size == 0 and rows[0].subject is None and rows[0].residency == "US"
    assert rows[0].declared[0].hex == HELLO_MD5
    summary = validate(path)
    assert summary.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert summary.subjects == 0 and summary.format == "jsonl"


@pytest.mark.parametrize(("content", "fmt"), [
    (jsonl({"source": SRC, "destination": DST}), "jsonl"),
    (csv_text(["source", "destination"], [SRC, DST]), "csv"),
])
def test_format_sniffed_without_extension(tmp_path: Path, content: str, fmt: str) -> None:
    assert validate(write(tmp_path, "manifest.txt", content)).format == fmt


def test_rows_are_streamed(tmp_path: Path) -> None:
    # The first row comes out before the broken third line is read.
    path = write(tmp_path, "m.jsonl", jsonl({"source": SRC, "destination": DST}) + "{}\n" + "x" * 100)
    rows = iter_rows(path)
    assert next(rows).line == 1
    with pytest.raises(InputError) as err:
        next(rows)
    assert err.value.line == 2


# --- errors name the file, the line and the field ----------------------------------------------------

GOOD_JSON = json.dumps({"source": SRC, "destination": DST})


def j(**fields: object) -> str:
    row: dict[str, object] = {"source": SRC, "destination": DST}
    row.update(fields)
    return json.dumps({k: v for k, v in row.items() if v is not _DROP})


_DROP = object()

JSONL_ERRORS = [
    # (content, line, field, message fragment)
    (GOOD_JSON + "\n" + '{"source": ', 2, None, "not valid JSON"),
    (GOOD_JSON + "\n" + '{"source": "s3://demo-x/k", "destination": "oci://n/b/k"', 2, None, "not valid JSON"),
    ("[1, 2]\n", 1, None, "JSON object"),
    (GOOD_JSON + "\n" + j(replica=["s3://demo-x/k"]) + "\n", 2, "replica", "unknown field"),
    (j(Source="x") + "\n", 1, "Source", "did you mean 'source'"),
    ('{"source": "s3://demo-a/k", "source": "s3://demo-b/k", "destination": "oci://n/b/k"}\n', 1, "source",
     "twice"),
    (j(source=_DROP) + "\n", 1, "source", "missing"),
    (j(destination="") + "\n", 1, "destination", "missing"),
    (j(source=42) + "\n", 1, "source", "must be a string"),
    (j(destination="http://example.com/k") + "\n", 1, "destination", "unknown scheme"),
    (j(destination="migrator/us-users/k") + "\n", 1, "destination", "not an object URI"),
    (j(destination="oci://migrator/us-users/") + "\n", 1, "destination", "no object key"),
    (j(source="s3://Bad_Bucket/k") + "\n", 1, "source", "bucket"),
    (j(destination="gs://demo-dst/k") + "\n", 1, "destination", "destination scheme"),
    (j(destination=SRC) + "\n", 1, "destination", "own source"),
    (j(replicas=[SRC]) + "\n", 1, "replicas", "own source"),
    (j(replicas=[DST]) + "\n", 1, "replicas", "own destination"),
    (j(replicas=["s3://demo-r/k", "s3://demo-r/k"]) + "\n", 1, "replicas", "twice"),
    (j(replicas="s3://demo-r/k") + "\n", 1, "replicas", "array"),
    (j(replicas=[7]) + "\n", 1, "replicas", "non-empty URI"),
    (j(replicas=["s3://demo-r/ctl\u0001"]) + "\n", 1, "replicas", "control"),
    (j(size="5") + "\n", 1, "size", "non-negative integer"),
    (j(size=True) + "\n", 1, "size", "non-negative integer"),
    (j(size=-1) + "\n", 1, "size", "non-negative integer"),
    (j(size=1.5) + "\n", 1, "size", "non-negative integer"),
    (j(size=2**63) + "\n", 1, "size", "non-negative integer"),
    ('{"source": "s3://demo-a/k", "destination": "oci://n/b/k", "size": NaN}\n', 1, None, "not valid JSON"),
    (j(md5=HELLO_MD5[:-1]) + "\n", 1, "md5", "32 hex"),
    (j(md5=5) + "\n", 1, "md5", "must be a string"),
    (j(sha256=HELLO_SHA256 + "0") + "\n", 1, "sha256", "64 hex"),
    (j(crc32c="mnG7TB==") + "\n", 1, "crc32c", "base64"),
    (j(crc32c="9a71bb4") + "\n", 1, "crc32c", "8 hex"),
    (j(subject=["u1"]) + "\n", 1, "subject", "must be a string"),
    ("\n\n", None, None, "no rows"),
]


@pytest.mark.parametrize(("content", "line", "field", "fragment"), JSONL_ERRORS)
def test_jsonl_errors(tmp_path: Path, content: str, line: int | None, field: str | None,
                      fragment: str) -> None:
    path = write(tmp_path, "m.jsonl", content)
    with pytest.raises(InputError) as err:
        validate(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)
    assert fragment in str(err.value)
    assert err.value.diagnostics().startswith(str(path))


HEADER = "source,destination,replica,size,md5,sha256,crc32c,subject,residency\n"
GOOD_CSV_ROW = f"{SRC},{DST},,,,,,,\n"

CSV_ERRORS = [
    (HEADER + GOOD_CSV_ROW + f"{SRC},{DST}\n", 3, None, "2 cells, the header has 9"),
    (HEADER + GOOD_CSV_ROW + "s3://demo-a/\udcff,x,,,,,,,\n", 3, None, "UTF-8"),
    ("source,destination,sha-256\n" + f"{SRC},{DST},\n", 1, "sha-256", "unknown column"),
    ("source,destination,replicas\n" + f"{SRC},{DST},\n", 1, "replicas", "'replica' columns"),
    ("source,destination,size,size\n", 1, "size", "twice"),
    ("source,destination,replica_1,replica_1\n", 1, "replica_1", "twice"),
    ("source,size\n" + f"{SRC},5\n", 1, "destination", "no 'destination' column"),
    (HEADER + f",{DST},,,,,,,\n", 2, "source", "missing"),
    (HEADER + GOOD_CSV_ROW.replace("s3://", "s4://"), 2, "source", "unknown scheme"),
    (HEADER + f"{SRC},{DST},,five,,,,,\n", 2, "size", "non-negative integer"),
    (HEADER + f"{SRC},{DST},,5 ,,,,,\n", 2, "size", "non-negative integer"),
    (HEADER + f"{SRC},{DST},,,{HELLO_SHA256},,,,\n", 2, "md5", "32 hex"),
    (HEADER + f"{SRC},{DST},,,,{HELLO_MD5},,,\n", 2, "sha256", "64 hex"),
    (HEADER + f"{SRC},{DST},,,,,mnG7TA=,,\n", 2, "crc32c", "base64"),
    (HEADER + f"{SRC},{DST},{DST},,,,,,\n", 2, "replicas", "own destination"),
    (HEADER + GOOD_CSV_ROW + '"s3://demo-a/k"x,y,,,,,,,\n', 3, None, "malformed CSV"),
    (HEADER + GOOD_CSV_ROW + '"s3://demo-a/\nunterminated,,,,,,,,\n', 3, None, "malformed CSV"),
    (HEADER, None, None, "no rows"),
    ("", None, None, "no rows"),
]


@pytest.mark.parametrize(("content", "line", "field", "fragment"), CSV_ERRORS)
def test_csv_errors(tmp_path: Path, content: str, line: int | None, field: str | None, fragment: str) -> None:
    data = content.encode("utf-8", "surrogateescape")   # lets a case carry a raw invalid byte
    path = write(tmp_path, "m.csv", data)
    with pytest.raises(InputError) as err:
        validate(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)
    assert fragment in str(err.value)


def test_error_line_is_where_a_multiline_row_starts(tmp_path: Path) -> None:
    text = HEADER + GOOD_CSV_ROW + f'"s3://demo-a/k",{DST.replace("a.png", "b")},,"12\n34",,,,,\n'
    with pytest.raises(InputError) as err:
        validate(write(tmp_path, "m.csv", text))
    assert (err.value.line, err.value.field) == (3, "size")


def test_line_too_long(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", GOOD_JSON + "\n" + " " * (manifest.MAX_LINE_BYTES + 5) + "\n")
    with pytest.raises(InputError) as err:
        validate(path)
    assert err.value.line == 2 and "longer than" in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        validate(tmp_path / "nope.csv")
    assert err.value.file == str(tmp_path / "nope.csv")


# --- cross-row rules ----------------------------------------------------------------------------------

def row(src: str, dst: str, *replicas: str) -> dict[str, object]:
    out: dict[str, object] = {"source": src, "destination": dst}
    if replicas:
        out["replicas"] = list(replicas)
    return out


A, B, C = "s3://demo-a/k1", "gs://demo-b/k2", "oci://migrator/us-users/k3"
D, E = "oci://migrator/us-users/d1", "oci://migrator/us-users/d2"

CROSS_ROW = [
    ([row(A, D), row(B, E), row(A, C)], 3, "source", "also the source at line 1"),
    ([row(A, D), row(B, D)], 2, "destination", "also the destination at line 1"),
    ([row(A, D), row(D, E)], 2, "source", "also the destination at line 1"),
    ([row(C, D), row(A, C)], 2, "destination", "also the source at line 1"),
    ([row(A, D, "s3://demo-r/k"), row(C, "s3://demo-r/k")], 2, "destination", "also a replica at line 1"),
    ([row(A, D, B), row(C, E, B)], 2, "replicas", "also a replica at line 1"),
    ([row(A, D), row(C, E, A)], 2, "replicas", "also the source at line 1"),
    ([row(A, D), row(C, E, D)], 2, "replicas", "also the destination at line 1"),
]


@pytest.mark.parametrize(("rows", "line", "field", "fragment"), CROSS_ROW)
def test_cross_row_rules(tmp_path: Path, rows: list[dict[str, object]], line: int, field: str,
                         fragment: str) -> None:
    path = write(tmp_path, "m.jsonl", jsonl(*rows))
    assert len(list(iter_rows(path))) == len(rows)   # each row is fine on its own
    with pytest.raises(InputError) as err:
        validate(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), line, field)
    assert fragment in str(err.value)


def test_digest_collisions_are_confirmed_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every URI gets the same digest: distinct URIs must still pass, a real repeat must still fail.
    monkeypatch.setattr(manifest, "_digest", lambda text: 7)
    good = write(tmp_path, "good.jsonl", jsonl(row(A, D), row(B, E, C)))
    assert validate(good).rows == 2
    bad = write(tmp_path, "bad.jsonl", jsonl(row(A, D), row(B, E), row(C, D)))
    with pytest.raises(InputError) as err:
        validate(bad)
    assert (err.value.line, err.value.field) == (3, "destination")


def test_digest_set_grows_and_remembers() -> None:
    seen = manifest._DigestSet()
    values = [hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in range(5000)]
    digests = [int.from_bytes(v, "big") or 1 for v in values]
    assert all(seen.add(d) for d in digests)
    assert not any(seen.add(d) for d in digests)
    assert len(seen) == 5000


# --- edge keys round-trip -----------------------------------------------------------------------------

EDGE_KEYS = ["ünïcödé/файл 😀.txt", "with space/and  two", "100%25 done%", "a+b=c", "what?x=1&y=2", "frag#ment",
             "../../etc/passwd", "a/./b/../c", "/leading/slash", "//double", "trailing/", "comma,quote\"",
             " spaced ", "k" * 1024, "é" * 512]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_edge_keys_round_trip(tmp_path: Path, fmt: str) -> None:
    pairs = [(f"s3://demo-src/{k}", f"oci://migrator/us-users/{k}") for k in EDGE_KEYS]
    if fmt == "csv":
        text = csv_text(["source", "destination"], *[[s, d] for s, d in pairs])
    else:
        text = jsonl(*[row(s, d) for s, d in pairs])
    path = write(tmp_path, f"m.{fmt}", text)
    rows = list(iter_rows(path))
    assert [r.source.key for r in rows] == EDGE_KEYS
    assert [(str(r.source), str(r.destination)) for r in rows] == pairs
    assert validate(path).rows == len(EDGE_KEYS)


def test_key_over_1024_bytes_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "m.jsonl", jsonl(row("s3://demo-src/" + "é" * 513, DST)))
    with pytest.raises(InputError) as err:
        validate(path)
    assert (err.value.line, err.value.field) == (1, "source")


# --- fuzzing: InputError or a summary, never anything else (500 byte strings + 500 row sets) ----------

@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def outcome(path: Path) -> ManifestSummary | InputError:
    try:
        return validate(path)
    except InputError as exc:
        assert exc.file == str(path)
        return exc


FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [b"source,destination\n", b'{"source": "s3://demo-a/k", "destination": "oci://n/b/k"}\n',
         b"\xef\xbb\xbf", b"\n", b",", b'"', b"{", b"}", b"\xff", b"s3://demo-a/k"]


@FUZZ
@given(chunks=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SEEDS)), max_size=12),
       suffix=st.sampled_from([".csv", ".jsonl", ".txt"]))
def test_random_bytes(fuzz_dir: Path, chunks: list[bytes], suffix: str) -> None:
    path = fuzz_dir / f"bytes{suffix}"
    path.write_bytes(b"".join(chunks))
    result = outcome(path)
    if isinstance(result, ManifestSummary):
        assert result.rows >= 1 and result.sha256 == manifest_sha256(path)


# Small alphabets so that rows often collide (cross-row rules) and often pass.
valid_uri = st.builds(lambda prefix, key: prefix + key,
                      st.sampled_from(["s3://demo-a/", "gs://demo-b/", "oci://migrator/us-users/"]),
                      st.text(alphabet="ab/ .%+?#é", min_size=1, max_size=3))
uri_text = st.one_of(valid_uri, st.builds(lambda scheme, key: f"{scheme}{key}",
                                          st.sampled_from(["s3://x/", "http://h/", "gs://demo-b/", ""]),
                                          st.text(max_size=8)))
field_value = st.one_of(uri_text, st.text(max_size=10), st.integers(-2, 2**64), st.none(), st.booleans(),
                        st.lists(uri_text, max_size=3), st.sampled_from([HELLO_MD5, HELLO_SHA256, "mnG7TA==",
                                                                         "9a71bb4c", "5", ""]))
good_value = {"replicas": st.lists(valid_uri, max_size=2), "size": st.integers(0, 10**12),
              "md5": st.just(HELLO_MD5), "sha256": st.just(HELLO_SHA256),
              "crc32c": st.sampled_from(["mnG7TA==", "9a71bb4c"]), "subject": st.sampled_from(["u1", "u2"]),
              "residency": st.just("US")}
field_name = st.one_of(st.sampled_from(manifest.FIELDS), st.sampled_from(["replica", "replica_1", "Source"]),
                       st.text(max_size=6))
plausible_row = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries({"source": valid_uri, "destination": valid_uri.map(lambda u: "oci://n/b/" + u[-3:])},
                          optional={k: v | field_value for k, v in good_value.items()}),
    st.dictionaries(field_name, field_value, max_size=1))
random_row = st.one_of(plausible_row, st.dictionaries(field_name, field_value, max_size=6))


@FUZZ
@given(rows=st.lists(random_row, min_size=0, max_size=5), as_csv=st.booleans())
def test_random_rows(fuzz_dir: Path, rows: list[dict[str, object]], as_csv: bool) -> None:
    if as_csv:
        header = sorted({k for r in rows for k in r})
        body = [["" if r.get(k) is None else str(r.get(k)) for k in header] for r in rows]
        text = csv_text(header, *body)
        path = fuzz_dir / "rows.csv"
    else:
        text = jsonl(*rows)
        path = fuzz_dir / "rows.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    outcome(path)


valid_key = st.text(st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="\x7f"),
                    min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(valid_key, min_size=1, max_size=5, unique=True), as_csv=st.booleans())
def test_random_valid_keys_round_trip(fuzz_dir: Path, keys: list[str], as_csv: bool) -> None:
    pairs = [(f"gs://demo-src/{k}", f"oci://migrator/us-users/{k}") for k in keys]
    if as_csv:
        path = fuzz_dir / "keys.csv"
        path.write_text(csv_text(["source", "destination"], *[[s, d] for s, d in pairs]), encoding="utf-8")
    else:
        path = fuzz_dir / "keys.jsonl"
        path.write_text(jsonl(*[row(s, d) for s, d in pairs]), encoding="utf-8")
    assert [r.source.key for r in iter_rows(path)] == keys
    assert validate(path).rows == len(keys)


# --- scale --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_twenty_thousand_rows(tmp_path: Path, fmt: str) -> None:
    n = 20_000
    path = tmp_path / f"big.{fmt}"
    with path.open("w", encoding="utf-8") as fh:
        if fmt == "csv":
            fh.write("source,destination,replica,size,subject\n")
        for i in range(n):
            src = f"{'s3://demo-photos-us' if i % 2 else 'gs://demo-records-us'}/users/{i:06d}/photo 1.jpg"
            dst = f"oci://migrator/us-users/users/{i:06d}/photo 1.jpg"
            rep = f"s3://demo-photos-backup/users/{i:06d}/photo 1.jpg"
            if fmt == "csv":
                fh.write(f"{src},{dst},{rep},{i},user-{i // 4}\n")
            else:
                fh.write(json.dumps({"source": src, "destination": dst, "replicas": [rep], "size": i,
                                     "subject": f"user-{i // 4}"}) + "\n")
    summary = validate(path)
    assert summary.rows == n
    assert summary.declared_bytes == n * (n - 1) // 2
    assert summary.subjects == n // 4
    assert summary.sources_by_location == {"s3://demo-photos-us": n // 2, "gs://demo-records-us": n // 2}
    rows: list[ManifestRow] = list(iter_rows(path))
    assert rows[-1].row == n and str(rows[-1].replicas[0].location) == "s3://demo-photos-backup"
