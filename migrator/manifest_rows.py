"""Counting a manifest's data rows as the verifier's coverage check does, without the manifest reader.

A data row is a CSV row after the header that is not blank (the csv module's rows, so quoted newlines stay
in one row; fields stripped as str.strip() does), or a non-blank JSONL line. The format follows the name
(.csv; .jsonl, .ndjson, .json), else a first non-blank byte of "{" means JSONL. A manifest that is not
UTF-8 or not readable CSV cannot be counted: VerificationError "coverage: ...". Files are read in pieces,
never held whole. Imports only errors and files, so the offline verifier may use it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import IO

from migrator.errors import VerificationError
from migrator.files import open_input


def _fail(msg: str) -> VerificationError:
    return VerificationError(f"coverage: {msg}")


# ASCII whitespace as str.strip() sees it (csv fields are stripped the same way).
_BLANK_CSV = re.compile(rb"(?m)^[ \t\x0b\x0c\x1c-\x1f,]*$")
_BLANK_JSONL = re.compile(rb"(?m)^[ \t\r\x0b\x0c\x1c-\x1f]*$")


def count_manifest_rows(manifest: bytes, name: str = "") -> int:
    """The data rows of a manifest held in memory (read as one piece); raises when it cannot be counted."""
    rows = manifest_facts(manifest, name, step=max(len(manifest), 1))[1]   # one piece: the whole
    if isinstance(rows, VerificationError):
        raise rows
    return rows


def _plain(data: bytes, jsonl: bool) -> bool:
    return data.isascii() and (jsonl or not any(c in data for c in (b'"', b"\r", b"\x00")))


def _csv_rows(text: Iterable[str]) -> int:
    try:
        rows = sum(1 for r in csv.reader(text, strict=True) if any(f.strip() for f in r))
    except csv.Error as exc:
        raise _fail(f"manifest CSV cannot be read: {exc}") from None
    return max(rows - 1, 0)  # the first non-blank row is the header


_PIECE = 8 << 20


def manifest_facts(source: bytes | Path, name: str, step: int = 0) -> tuple[str, int | VerificationError]:
    """(SHA-256 hex, data rows or the coverage error counting met) of a manifest, read in pieces of
    ``step`` bytes (default _PIECE) that end at newlines, never held whole. Plain pieces (ASCII; for CSV
    also no quotes, CRs or NULs, so rows are lines) are counted as lines; otherwise it is read again."""
    def opened() -> IO[bytes]:
        return io.BytesIO(source) if isinstance(source, bytes | bytearray) else open_input(Path(source), "manifest")

    lower, digest, rows, plain, rest = name.lower(), hashlib.sha256(), 0, True, b""
    if lower.endswith((".jsonl", ".ndjson", ".json", ".csv")):
        jsonl = not lower.endswith(".csv")
    else:
        with opened() as fh:
            blocks = iter(lambda: fh.read(1 << 16), b"")
            jsonl = next((b.lstrip() for b in blocks if b.lstrip()), b"").startswith(b"{")
    with opened() as fh:
        for block in chain(iter(lambda: fh.read(step or _PIECE), b""), [b""]):
            digest.update(block)
            piece = rest + block
            cut = piece.rfind(b"\n") + 1 if block else len(piece)
            piece, rest = piece[:cut], piece[cut:]
            plain = plain and _plain(piece, jsonl)
            if plain:
                rows += piece.count(b"\n") + 1 - len((_BLANK_JSONL if jsonl else _BLANK_CSV).findall(piece))
    if plain:
        return digest.hexdigest(), rows if jsonl else max(rows - 1, 0)
    try:
        with opened() as fh:
            lines = (raw.decode("utf-8-sig" if i == 0 else "utf-8") for i, raw in enumerate(fh))
            if jsonl:
                return digest.hexdigest(), sum(1 for line in lines if line.strip())
            for _ in lines:
                pass           # all of it is UTF-8 before any CSV error is reported
        with opened() as fh:
            return digest.hexdigest(), _csv_rows(io.TextIOWrapper(fh, encoding="utf-8-sig", newline=""))
    except UnicodeDecodeError:
        return digest.hexdigest(), _fail("manifest is not UTF-8")
    except VerificationError as exc:
        return digest.hexdigest(), exc
