"""One pass over records.jsonl: SHA-256, the RFC 9162 root, and each line's form, row, state and reason.

A million records are ~1.4 GB. The file's SHA-256 runs in a thread (hashlib releases the GIL), and the
lines are checked in chunks: in this process for small files, in worker processes for large ones (the
regex and hashing of each line hold the GIL). Chunks come back in order; the first problem found, in
file order, is reported. Nothing here interprets a record beyond row, state, reason and subject. The file
is read by offset a chunk at a time, never mapped or held whole: memory stays at a few chunks.

Workers are plain ``python -m migrator.attest.scan`` processes that inherit the open file, read their
chunks of it and write each chunk's result to stdout (a JSON header, then the leaf hashes). multiprocessing's spawn
would re-run ``python -m migrator`` in every worker, and fork is unsafe when the caller has threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from migrator.attest.canonical import MISSING, CanonicalLines, NotCanonical
from migrator.attest.merkle import MerkleBuilder
from migrator.attest.statement import STATES
from migrator.errors import InputError, MigratorError, VerificationError
from migrator.records import REQUIRED, SCHEMA

CHUNK = 16 * 1024 * 1024
PARALLEL_MIN = 64 * 1024 * 1024   # below this, worker start-up costs more than it saves


@dataclass
class ChunkScan:
    """What one chunk of whole lines holds. Offsets count lines from the chunk's first line (0)."""

    lines: int = 0
    leaf_hashes: bytes = b""
    first_row: int | None = None
    row_break: tuple[int, int] | None = None        # (offset, row) of the first row out of sequence
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    by_reason: dict[str, int] = field(default_factory=dict)
    subjects: list[str | None] | None = None
    error: tuple[int, str] | None = None            # (offset, message) of the first bad line


def scan_lines(data: bytes, want_subjects: bool = False) -> ChunkScan:
    """Check whole lines (``data`` ends with a newline or is empty). Stops at the first bad line."""
    # The members every record must have (records.REQUIRED; unchanged since schema 1), then the subject.
    names = (*REQUIRED[SCHEMA], "subject") if want_subjects else REQUIRED[SCHEMA]
    reader = CanonicalLines(names)
    out = ChunkScan(subjects=[] if want_subjects else None)
    hashes = bytearray()
    counts, by_reason, subjects = out.counts, out.by_reason, out.subjects
    sha = hashlib.sha256
    lines = data.split(b"\n")
    lines.pop()                                       # the empty piece after the last newline
    expected = 0
    for n, line in enumerate(lines):
        try:
            values = reader.fields(line)
        except NotCanonical as exc:
            out.error = (n, f"not canonical JSON: {exc}")
            break
        if values is None:
            out.error = (n, "not a JSON object")
            break
        row, state, reason = values[0], values[1], values[2]
        if not isinstance(row, int) or isinstance(row, bool):
            out.error = (n, "has no integer row")
            break
        if state not in counts:
            out.error = (n, f"state is not one of {', '.join(STATES)}")
            break
        if reason is MISSING:
            reason = None
        elif reason is not None and not isinstance(reason, str):
            out.error = (n, "reason is neither a string nor null")
            break
        if state != "REMOVED":
            if not reason:
                out.error = (n, f"is {state} without a reason")
                break
            if state != "OUT_OF_SCOPE":   # by_reason counts the exceptions: HELD and FAILED
                by_reason[reason] = by_reason.get(reason, 0) + 1
        if subjects is not None:
            subject = values[3]
            if subject is MISSING or subject is None:
                subjects.append(None)
            elif isinstance(subject, str):
                subjects.append(subject)
            else:
                out.error = (n, "subject is neither a string nor null")
                break
        counts[state] += 1
        if n == 0:
            out.first_row = expected = row
        elif row != expected and out.row_break is None:
            out.row_break = (n, row)
        expected += 1
        hashes += sha(b"\x00" + line).digest()
        out.lines += 1
    out.leaf_hashes = bytes(hashes)
    return out


@dataclass
class RecordScan:
    """The whole file. ``error`` is the first bad line (1-based line number, message), if any."""

    sha256: str
    tree_size: int
    root: bytes
    rows_ok: bool
    row_break: tuple[int, int] | None                # (line, row) where rows stop being 1..N in order
    totals: dict[str, int]
    by_reason: dict[str, int]
    subjects: list[str | None] | None
    error: tuple[int, str] | None
    ends_with_newline: bool


def boundaries(read: Callable[[int, int], bytes], size: int) -> list[tuple[int, int]]:
    """Chunks of about CHUNK bytes that end just after a newline (the last one at the end).

    ``read(pos, n)`` returns up to n bytes from ``pos``.
    """
    out, start = [], 0
    while start < size:
        pos, cut = min(start + CHUNK, size) - 1, -1
        while (window := read(pos, 1 << 16)) and (cut := window.find(b"\n")) < 0:
            pos += len(window)
        end = pos + cut + 1 if window else size
        out.append((start, end))
        start = end
    return out


def _workers(size: int, workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    if size < PARALLEL_MIN:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def scan_records(source: bytes | Path, *, want_subjects: bool = False, workers: int | None = None) -> RecordScan:
    """Scan records given as bytes or as a file. ``workers`` > 1 uses that many processes (files only).

    A file is read in chunks by offset (never mapped or held whole), so memory stays at a few chunks
    whatever its size; the workers read the same open file, so a file swapped by name is not read.
    """
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        return _merge(hashlib.sha256(data).hexdigest(), data.endswith(b"\n") or not data,
                      (scan_lines(data[a:b], want_subjects)
                       for a, b in boundaries(lambda pos, n: data[pos:pos + n], len(data))))
    path = Path(source)
    try:
        with open(path, "rb") as fh:
            fd = fh.fileno()
            before = os.fstat(fd)
            size = before.st_size
            if size == 0:
                return _merge(hashlib.sha256(b"").hexdigest(), True, iter(()))
            result = _scan_file(fd, size, want_subjects, _workers(size, workers))
            after = os.stat(path)
    except OSError as exc:
        raise InputError(f"cannot read records: {exc.strerror}", file=str(path)) from None
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
        raise VerificationError(f"subject records: {path} changed while it was being verified")
    return result


def hash_fd(fd: int, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of an open file, read by offset into one reused buffer."""
    h, buf = hashlib.sha256(), bytearray(1 << 20)
    with memoryview(buf) as view:
        for off in range(0, size, len(buf)):
            h.update(view[:os.preadv(fd, [view[:min(len(buf), size - off)]], off)])
    return h.hexdigest()   # a file cut short hashes short; the caller's stat check then fails


def _scan_file(fd: int, size: int, want_subjects: bool, workers: int) -> RecordScan:
    digest: list[str | OSError] = []

    def hash_file() -> None:         # hashlib and preadv release the GIL: this runs beside the scan
        try:
            digest.append(hash_fd(fd, size))
        except OSError as exc:       # raised in the caller's thread
            digest.append(exc)

    chunks = boundaries(lambda pos, n: os.pread(fd, n, pos), size)
    ends = os.pread(fd, 1, size - 1) == b"\n"
    procs = _start_workers(fd, chunks, want_subjects, workers) if workers > 1 and len(chunks) > 1 else []
    hasher = threading.Thread(target=hash_file)
    hasher.start()
    try:
        result = _merge("", ends, _results(procs, len(chunks)) if procs else
                        (scan_lines(os.pread(fd, b - a, a), want_subjects) for a, b in chunks))
    finally:
        hasher.join()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()          # after the first bad line the rest is not needed
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    if isinstance(digest[0], OSError):
        raise digest[0]
    result.sha256 = digest[0]
    return result


def _merge(sha256: str, ends_with_newline: bool, parts: Iterator[ChunkScan]) -> RecordScan:
    builder = MerkleBuilder()
    totals = dict.fromkeys(STATES, 0)
    by_reason: dict[str, int] = {}
    subjects: list[str | None] | None = None
    error: tuple[int, str] | None = None
    row_break: tuple[int, int] | None = None
    line = 0                                          # lines before this chunk
    for part in parts:
        builder.add_leaf_hashes(part.leaf_hashes)
        if row_break is None and part.first_row is not None and part.first_row != line + 1:
            row_break = (line + 1, part.first_row)
        if row_break is None and part.row_break is not None:
            row_break = (line + part.row_break[0] + 1, part.row_break[1])
        for state, n in part.counts.items():
            totals[state] += n
        for reason, n in part.by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        if part.subjects is not None:
            if subjects is None:
                subjects = []
            subjects.extend(part.subjects)
        if part.error is not None:
            error = (line + part.error[0] + 1, part.error[1])
            break                                     # the first bad line stands; the rest is not read
        line += part.lines
    rows = sum(totals.values())
    return RecordScan(
        sha256=sha256, tree_size=builder.size, root=builder.root(), rows_ok=row_break is None,
        row_break=row_break, totals={"rows": rows, "removed": totals["REMOVED"], "held": totals["HELD"],
                                     "failed": totals["FAILED"], "out_of_scope": totals["OUT_OF_SCOPE"]},
        by_reason=by_reason, subjects=subjects, error=error, ends_with_newline=ends_with_newline)


# ---- worker processes ------------------------------------------------------------------------------------

def _start_workers(fd: int, chunks: list[tuple[int, int]], want_subjects: bool,
                   workers: int) -> list[subprocess.Popen[bytes]]:
    """Worker k scans chunks k, k + workers, ...; reading them round-robin keeps file order.

    Each worker inherits the open file (``fd``) and reads its chunks by offset.
    """
    root = str(Path(__file__).resolve().parents[2])          # so that the child imports this migrator
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    procs = []
    for k in range(workers):
        specs = [f"{a}:{b}" for a, b in chunks[k::workers]]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "migrator.attest.scan", str(fd), "1" if want_subjects else "0", *specs],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, pass_fds=(fd,)))
    return procs


def _write_part(out: IO[bytes], part: ChunkScan) -> None:
    head = json.dumps({"lines": part.lines, "first_row": part.first_row, "row_break": part.row_break,
                       "counts": part.counts, "by_reason": part.by_reason, "subjects": part.subjects,
                       "error": part.error}).encode("utf-8")
    out.write(struct.pack(">QQ", len(head), len(part.leaf_hashes)) + head + part.leaf_hashes)
    out.flush()


def _pair(v: Any) -> Any:
    return None if v is None else (int(v[0]), v[1])


def _read_part(inp: IO[bytes]) -> ChunkScan:
    sizes = inp.read(16)
    if len(sizes) != 16:
        raise MigratorError("a records scan worker stopped early (see its error output)")
    head_len, hashes_len = struct.unpack(">QQ", sizes)
    head, hashes = json.loads(inp.read(head_len)), inp.read(hashes_len)
    if len(hashes) != hashes_len:
        raise MigratorError("a records scan worker stopped early (see its error output)")
    return ChunkScan(lines=head["lines"], leaf_hashes=hashes, first_row=head["first_row"],
                     row_break=_pair(head["row_break"]), counts=head["counts"], by_reason=head["by_reason"],
                     subjects=head["subjects"], error=_pair(head["error"]))


def _results(procs: list[subprocess.Popen[bytes]], n: int) -> Iterator[ChunkScan]:
    for i in range(n):
        out = procs[i % len(procs)].stdout
        if out is None:
            raise MigratorError("a records scan worker has no output")
        yield _read_part(out)


def _worker(argv: list[str], out: IO[bytes]) -> int:
    fd, want_subjects = int(argv[0]), argv[1] == "1"
    for spec in argv[2:]:
        start, end = (int(x) for x in spec.split(":"))
        _write_part(out, scan_lines(os.pread(fd, end - start, start), want_subjects))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:], sys.stdout.buffer))
