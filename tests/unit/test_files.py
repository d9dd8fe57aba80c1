"""The one way to write files: atomic replace and exclusive create, each durable (file and folder fsynced)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from migrator import files
from migrator.errors import InputError


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What was fsynced: "file" or "folder", in order."""
    seen: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def test_replace_atomically_replaces_durably_and_leaves_no_temporary_file(tmp_path: Path, fsyncs: list[str]) -> None:
    target = tmp_path / "checkpoint"
    target.write_bytes(b"old")
    files.replace_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert fsyncs == ["file", "folder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_failed_replace_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "records.idx"
    target.write_bytes(b"old")

    def half(fh: BinaryIO) -> None:
        fh.write(b"half of it")
        raise RuntimeError("the writer broke")

    with pytest.raises(RuntimeError):
        files.replace_atomically(target, half)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.idx"]


def test_each_file_gets_its_callers_mode_from_the_start(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        files.replace_atomically(tmp_path / "index", lambda fh: fh.write(b"x"), mode=0o600)
        files.create_exclusive(tmp_path / "signing.key", b"secret", mode=0o600)
        files.create_exclusive(tmp_path / "signing.pub", b"public", mode=0o644)
        files.replace_atomically(tmp_path / "attestation.json", b"{}")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"index": 0o600, "signing.key": 0o600, "signing.pub": 0o644, "attestation.json": 0o644}


def test_create_exclusive_never_writes_over_a_file_or_through_a_symlink(tmp_path: Path, fsyncs: list[str]) -> None:
    files.create_exclusive(tmp_path / "entry", b"first")
    assert fsyncs == ["file", "folder"]
    with pytest.raises(FileExistsError):
        files.create_exclusive(tmp_path / "entry", b"second")
    assert (tmp_path / "entry").read_bytes() == b"first"
    (tmp_path / "elsewhere").write_bytes(b"kept")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        files.create_exclusive(tmp_path / "link", b"through the link")
    assert (tmp_path / "elsewhere").read_bytes() == b"kept"


def test_a_failed_create_leaves_nothing_behind(tmp_path: Path) -> None:
    def half(fh: BinaryIO) -> None:
        fh.write(b"half")
        raise RuntimeError("the writer broke")

    with pytest.raises(RuntimeError):
        files.create_exclusive(tmp_path / "subject.key", half, mode=0o600)
    assert list(tmp_path.iterdir()) == []
    files.create_exclusive(tmp_path / "subject.key", b"whole", mode=0o600)   # so a retry can succeed


def test_paths_that_cannot_be_written_or_read_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "file"
    for write in (files.replace_atomically, files.create_exclusive):
        with pytest.raises(InputError) as caught:
            write(missing, b"x")
        assert caught.value.file == str(missing)
    with pytest.raises(InputError, match="cannot read records") as unread:
        files.read_input(missing, "records")
    assert unread.value.file == str(missing)
    assert files.read_input(b"bytes as they are") == b"bytes as they are"
    (tmp_path / "f").write_bytes(b"on disk")
    assert files.read_input(tmp_path / "f") == b"on disk"
