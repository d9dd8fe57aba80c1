"""state_folder_warnings: what it says about a state folder more open than 0700 / 0600, and that it only says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from migrator.state_files import FILE_MODE, FOLDER_MODE, state_folder_warnings


def _private_folder(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=FOLDER_MODE)
    state.chmod(FOLDER_MODE)
    for name in ("journal.sqlite", "lock", "records.jsonl", "attestation.json"):
        (state / name).write_bytes(b"x")
        (state / name).chmod(FILE_MODE)
    return state


def test_a_private_folder_or_none_at_all_gives_no_warning(tmp_path: Path) -> None:
    assert state_folder_warnings(_private_folder(tmp_path)) == []
    assert state_folder_warnings(tmp_path / "not-yet") == []      # the run makes it 0700
    (tmp_path / "a-file").write_text("x")
    assert state_folder_warnings(tmp_path / "a-file") == []       # the run refuses it


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777, 0o710])
def test_a_folder_open_to_group_or_others_is_named_with_its_mode(tmp_path: Path, mode: int) -> None:
    state = _private_folder(tmp_path)
    state.chmod(mode)
    assert state_folder_warnings(state) == [
        f"state folder {state} is open to group or others (mode {mode:04o}); it names every object of the wave: "
        f"chmod 700 {state}"]


def test_each_file_more_open_than_0600_is_named_and_nothing_is_changed(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    state = _private_folder(tmp_path)
    (state / "records.jsonl").chmod(0o644)
    (state / "attestation.json").chmod(0o660)
    (state / "records.jsonl.1a2b3c4d.tmp").write_bytes(b"")
    (state / "records.jsonl.1a2b3c4d.tmp").chmod(0o666)
    (state / "lock").chmod(0o400)   # narrower than 0600: fine
    warnings = state_folder_warnings(state)
    assert warnings == [
        f"state file {state / 'attestation.json'} is open to group or others (mode 0660): "
        f"chmod 600 {state / 'attestation.json'}",
        f"state file {state / 'records.jsonl'} is open to group or others (mode 0644): "
        f"chmod 600 {state / 'records.jsonl'}",
        f"state file {state / 'records.jsonl.1a2b3c4d.tmp'} is open to group or others (mode 0666): "
        f"chmod 600 {state / 'records.jsonl.1a2b3c4d.tmp'}"]
    assert stat.S_IMODE((state / "records.jsonl").stat().st_mode) == 0o644   # only said, never changed
    assert capsys.readouterr() == ("", "")                                    # and never printed


def test_folders_inside_are_checked_and_symlinks_are_not_followed(tmp_path: Path) -> None:
    state = _private_folder(tmp_path)
    inner = state / "old"
    inner.mkdir()
    inner.chmod(0o755)
    (inner / "records.jsonl").write_bytes(b"x")
    (inner / "records.jsonl").chmod(0o644)
    outside = tmp_path / "public.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    os.symlink(outside, state / "link")
    assert state_folder_warnings(state) == [
        f"folder {inner} in the state folder is open to group or others (mode 0755): chmod 700 {inner}",
        f"state file {inner / 'records.jsonl'} is open to group or others (mode 0644): "
        f"chmod 600 {inner / 'records.jsonl'}"]
