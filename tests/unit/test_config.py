"""The wave file: [policy] and [transfer] resolved once, bad values named by file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import TransferSettings, WavePolicy, load_transfer_settings, load_wave_file
from migrator.errors import InputError
from migrator.stores.base import DEFAULT_MULTIPART_THRESHOLD


def _wave(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wave.toml"
    path.write_text(text)
    return path


def test_both_tables_resolve(tmp_path: Path) -> None:
    path = _wave(tmp_path, "[policy]\nconcurrency = 4\n[transfer]\nmultipart_threshold = 16777216\n"
                           "part_size = 8388608\n")
    assert load_wave_file(path, {"versions": None}) == WavePolicy(concurrency=4)
    assert load_transfer_settings(path) == TransferSettings(multipart_threshold=16 * 2**20, part_size=8 * 2**20)


def test_no_file_or_no_table_gives_defaults(tmp_path: Path) -> None:
    assert load_transfer_settings(None) == TransferSettings()
    assert load_transfer_settings(_wave(tmp_path, "[policy]\n")).multipart_threshold == DEFAULT_MULTIPART_THRESHOLD


@pytest.mark.parametrize(("text", "field", "words"), [
    ("[transfer]\nchunk = 5\n", "chunk", "unknown transfer key"),
    ("[transfer]\nmultipart_threshold = '16MiB'\n", "multipart_threshold", "want an int"),
    ("[transfer]\nparts_in_flight = 0\n", "parts_in_flight", "at least 1"),
    ("[transfer]\npart_size = true\n", "part_size", "want an int"),
    ("[transfer]\npart_size = 1048576\n", "part_size", "between 5 MiB and 5 GiB"),
    ("[transfer]\npart_size = 6000000\n", "part_size", "multiple of 256 KiB"),
    ("transfer = 5\n", "transfer", "want a [transfer] table"),
])
def test_bad_transfer_values_name_file_and_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = _wave(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_transfer_settings(path)
    assert err.value.field == field and words in str(err.value)
    assert str(path) in str(err.value.file)


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\[policy\] or \[transfer\]"):
        load_wave_file(_wave(tmp_path, "[speed]\nfast = true\n"), {})


def test_policy_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_wave_file(_wave(tmp_path, "policy = 5\n"), {})
    assert err.value.field == "policy" and "table" in str(err.value)
