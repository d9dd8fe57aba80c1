"""Who may read a wave's state folder: its owner only.

The state folder (``run --state DIR``) holds the journal, the lock, records.jsonl, subjects.jsonl,
records.idx, attestation.json and, for a moment, the temporary files of ``files.replace_atomically``. They
name every user's objects, so the folder is made 0700 and every file in it is created 0600, whatever the
umask (``runner``, ``journal``, ``attest.produce``, ``attest.recindex``). attestation.json is meant for
auditors, but it is kept 0600 here like the rest: the operator publishes it by copying it out, and a folder
whose files all have one mode is one that an operator can check at a glance.

A folder made by an older migrator, by hand, or copied with other modes may be more open than that: the
kernel keeps the modes it finds, and ``mkdir(exist_ok=True)`` does not narrow them. ``state_folder_warnings``
says so, without changing anything and without printing (the CLI prints).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FILE_MODE", "FOLDER_MODE", "state_folder_warnings"]

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_OPEN_BITS = 0o077   # any permission for group or others


def state_folder_warnings(state_dir: Path) -> list[str]:
    """One warning for the folder when group or others have any permission on it (more open than 0700), and
    one for each file or folder inside it that they have any permission on (more open than 0600 / 0700).
    Empty when the folder does not exist yet (the run makes it 0700) or is not a folder (the run refuses
    it). Symlinks are not followed: their own modes mean nothing, and what they point to is not the
    folder's."""
    try:
        top = os.lstat(state_dir)
    except OSError:
        return []
    if not stat.S_ISDIR(top.st_mode):
        return []
    warnings: list[str] = []
    if stat.S_IMODE(top.st_mode) & _OPEN_BITS:
        warnings.append(f"state folder {state_dir} is open to group or others (mode "
                        f"{stat.S_IMODE(top.st_mode):04o}); it names every object of the wave: "
                        f"chmod {FOLDER_MODE:o} {state_dir}")
    for path in _walk(state_dir):
        try:
            st = os.lstat(path)
        except OSError:
            continue   # removed meanwhile (a temporary file)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode) and mode & _OPEN_BITS:
            warnings.append(f"folder {path} in the state folder is open to group or others (mode {mode:04o}): "
                            f"chmod {FOLDER_MODE:o} {path}")
        elif stat.S_ISREG(st.st_mode) and mode & _OPEN_BITS:
            warnings.append(f"state file {path} is open to group or others (mode {mode:04o}): "
                            f"chmod {FILE_MODE:o} {path}")
    return warnings


def _walk(folder: Path) -> list[Path]:
    """Everything under ``folder``, in name order, without following symlinks; an unreadable folder is
    skipped (its own mode has been reported)."""
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        path = Path(entry.path)
        found.append(path)
        if entry.is_dir(follow_symlinks=False):
            found += _walk(path)
    return found
