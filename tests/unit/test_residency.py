"""Residency: the policy's rule, and the rows it refuses or leaves out of scope, by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import WavePolicy, load_wave
from migrator.errors import InputError
from migrator.manifest import iter_rows
from migrator.preflight import check_rows, residency_of

POLICY = '[policy]\nresidency = "US"\nallowed_regions = ["us-ashburn-1", "us-phoenix-1"]\n'


def _wave(tmp_path: Path, text: str) -> Path:
    wave = tmp_path / "wave.toml"
    wave.write_text(text)
    return wave


def _manifest(tmp_path: Path, *tags: str | None) -> Path:
    m = tmp_path / "m.csv"
    m.write_text("source,destination,residency\n" + "".join(
        f"s3://src/k{i},oci://ns/dst/k{i},{tag or ''}\n" for i, tag in enumerate(tags)))
    return m


def test_the_wave_file_names_the_residency_and_its_regions(tmp_path: Path) -> None:
    policy = load_wave(_wave(tmp_path, POLICY), {}, {}).policy
    assert (policy.residency, policy.allowed_regions) == ("US", ("us-ashburn-1", "us-phoenix-1"))
    record = policy.as_record()
    assert record["allowed_regions"] == ["us-ashburn-1", "us-phoenix-1"] and record["other_residency"] == "refuse"
    # A policy without residency records none of its members: older state folders resume unchanged.
    assert "residency" not in WavePolicy().as_record() and "allowed_regions" not in WavePolicy().as_record()


@pytest.mark.parametrize(("text", "field"), [
    ('[policy]\nresidency = "US"\n', "allowed_regions"),
    ('[policy]\nallowed_regions = ["us-ashburn-1"]\n', "residency"),
    (POLICY + 'other_residency = "ignore"\n', "other_residency"),
    ('[policy]\nresidency = "US"\nallowed_regions = "us-ashburn-1"\n', "allowed_regions"),
    ('[policy]\nresidency = 1\nallowed_regions = ["x"]\n', "residency"),
    ('[policy]\nresidency = " "\nallowed_regions = ["x"]\n', "residency"),
])
def test_bad_residency_policies_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    wave = _wave(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_wave(wave, {}, {})
    assert err.value.field == f"policy.{field}" and err.value.file == str(wave)
    # The line that says it, or the [policy] table's when the key is missing.
    said = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith(field + " =")]
    assert err.value.line == (said[0] if said else 1)


def test_every_offending_row_is_named_with_file_and_line(tmp_path: Path) -> None:
    settings = load_wave(_wave(tmp_path, POLICY), {}, {})
    m = _manifest(tmp_path, "US", "SG", None, "US", "EU")
    pre = check_rows(iter_rows(m), settings, str(m))
    assert pre.refused_rows == 3 and not pre.ok
    assert [r.split(": ")[0] for r in pre.refusals] == [f"{m}:3", f"{m}:4", f"{m}:6"]
    assert "residency 'SG'; the wave moves US rows only" in pre.refusals[0]
    assert "no residency tag" in pre.refusals[1]
    with pytest.raises(InputError, match="this run wrote and deleted nothing") as err:
        pre.raise_if_refused(str(m))
    assert all(r in str(err.value) for r in pre.refusals)
    # Only the rows the wave may move name buckets to check.
    assert {str(b) for b in pre.buckets} == {"s3://src", "oci://ns/dst"}
    assert pre.buckets[next(b for b in pre.buckets if b.scheme == "s3")].rows == 2


def test_out_of_scope_rows_are_counted_not_refused(tmp_path: Path) -> None:
    settings = load_wave(_wave(tmp_path, POLICY + 'other_residency = "out-of-scope"\nrequire_residency = false\n'),
                         {}, {})
    m = _manifest(tmp_path, "US", "SG", None)
    pre = check_rows(iter_rows(m), settings, str(m))
    assert pre.ok and pre.out_of_scope == 1
    rows = list(iter_rows(m))
    assert [residency_of(settings.policy, r) for r in rows] == [None, "out-of-scope", None]


def test_without_a_residency_rule_every_row_moves(tmp_path: Path) -> None:
    m = _manifest(tmp_path, "US", "SG", None)
    pre = check_rows(iter_rows(m), load_wave(None, {}, {}), str(m))
    assert pre.ok and pre.out_of_scope == 0
