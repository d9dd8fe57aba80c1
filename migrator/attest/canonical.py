"""Canonical JSON (RFC 8785, JCS): the one byte form of every signed or hashed JSON document.

Records are one canonical JSON object per line; the DSSE envelope file is one canonical object
with no trailing newline. Checking "is canonical" means re-serializing and comparing bytes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from migrator.errors import InputError


class NotCanonical(ValueError):
    """The bytes are not the RFC 8785 serialization of the JSON value they hold."""


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj``. Raises InputError for values JCS cannot express (NaN, ints over 2**53)."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InputError(f"value cannot be written as canonical JSON: {exc}") from exc


def record_line(record: Any) -> bytes:
    """One records.jsonl line: canonical JSON plus the newline that ends every line."""
    return canonical_json(record) + b"\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise NotCanonical(f"duplicate member name {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise NotCanonical(f"{name} is not JSON")


_MAX_EXACT_INT = 2**53 - 1  # JCS numbers are IEEE doubles; larger integers are not canonical


class _Parse:
    """json.loads hooks that note whether the plain-json fast path is exact for this document."""

    def __init__(self) -> None:
        self.simple = True

    def int_(self, text: str) -> int:
        value = int(text)
        if abs(value) > _MAX_EXACT_INT:
            self.simple = False
        return value

    def float_(self, text: str) -> float:
        self.simple = False
        return float(text)


def loads_canonical(data: bytes) -> Any:
    """Parse ``data`` and return its value only if ``data`` is exactly its canonical form.

    Raises NotCanonical (a ValueError) naming the reason; never echoes the input.
    """
    hooks = _Parse()
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_no_constants, parse_int=hooks.int_, parse_float=hooks.float_)
    except NotCanonical:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise NotCanonical(f"not valid UTF-8 JSON ({type(exc).__name__})") from None
    if hooks.simple and data.isascii():
        # ASCII text, integers only: sorted keys by code point equal JCS's UTF-16 order and Python's
        # escapes equal ECMAScript's, so json.dumps gives the JCS bytes ~20x faster than rfc8785.
        try:
            again = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                               allow_nan=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise NotCanonical("holds a value RFC 8785 cannot express") from None
    else:
        try:
            again = rfc8785.dumps(value)
        except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError):
            raise NotCanonical("holds a value RFC 8785 cannot express") from None
    if again != data:
        raise NotCanonical("bytes differ from the RFC 8785 serialization")
    return value


# ---- a fast reader for many lines of the same shapes -------------------------------------------------
#
# Checking a line by parsing and re-serializing it costs ~30 us for a 1.5 KB record, which is most of
# the time of verifying a million records. Lines of one wave have a few shapes: the same members, array
# lengths and literals, with different strings and numbers. For a line that passed the full check, the
# reader compiles a *template*: a regex that is the line's bytes, except that every value string becomes
# a hole accepting exactly the canonical serializations of strings (RFC 8785 §3.2.2.2: raw UTF-8 but for
# '"', '\' and U+0000..U+001F, which are written as \" \\ \b \f \n \r \t or \u00xx in lowercase hex),
# and every integer of up to 15 digits becomes a hole accepting exactly the canonical integers of up to
# 15 digits (all below 2**53, where ECMAScript prints integers as plain decimals). A line matching the
# template, and valid UTF-8, has the representative's structure and member names byte for byte, so the
# same member order and no duplicates, and each hole holds a canonical scalar: JCS is compositional, so
# that line is canonical. A line that matches no template takes the full check. Hence the reader accepts
# exactly the lines ``loads_canonical`` accepts (tests/unit/test_proofs.py checks this on random input).

class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Returned by ``CanonicalLines.fields`` for a member the object does not have."""

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^{}\[\]:,"]+')
_SMALL_INT = re.compile(rb"0|-?[1-9][0-9]{0,14}")
_STR_PLAIN = rb'[ !#-\[\]-\xff]*+'     # bytes but " \ and 0x00..0x1f (a fast bitmap)
_STR_ESCAPES = rb'(?:\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))' + _STR_PLAIN + rb")*+"
_INT_HOLE = rb"(?:0|-?[1-9][0-9]{0,14}+)"


@functools.lru_cache(maxsize=4096)   # states, reasons and subjects repeat from line to line
def _string(content: bytes) -> str:
    if b"\\" in content:
        return str(json.loads(b'"' + content + b'"'))
    return content.decode("utf-8")


def _reader(kind: str, arg: Any) -> Callable[[tuple[bytes, ...]], Any]:
    if kind == "int":
        return lambda g: int(g[arg])
    if kind == "str":
        return lambda g: _string(g[arg])
    return lambda g: arg


@dataclass(frozen=True)
class _Template:
    regex: re.Pattern[bytes]
    readers: tuple[Callable[[tuple[bytes, ...]], Any], ...]

    def read(self, m: re.Match[bytes]) -> tuple[Any, ...]:
        g = m.groups()
        return tuple([r(g) for r in self.readers])


def _template(line: bytes, value: dict[str, Any], names: tuple[str, ...]) -> _Template | None:
    """The template of a canonical JSON object line, or None when a wanted member is not a scalar."""
    parts: list[bytes] = []
    stack: list[bool] = []           # True for an object, False for an array
    expect_key = False
    top_key: str | None = None       # the member whose value comes next, at depth 1
    groups: dict[str, tuple[str, Any]] = {}
    for m in _TOKEN.finditer(line):
        tok = m.group()
        head = tok[:1]
        if head in (b"{", b"["):
            stack.append(head == b"{")
            expect_key = head == b"{"
        elif head in (b"}", b"]"):
            stack.pop()
        elif head == b",":
            expect_key = stack[-1]
        elif head == b'"' and expect_key:
            expect_key = False
            top_key = json.loads(tok) if len(stack) == 1 else None
        elif head != b":":
            member, top_key = top_key, None
            wanted = member if member in names and len(stack) == 1 else None
            if head == b'"':
                hole = _STR_PLAIN + (_STR_ESCAPES if b"\\" in tok else b"")
                kind = "str"
            elif _SMALL_INT.fullmatch(tok):
                hole, kind = _INT_HOLE, "int"
            else:                     # true, false, null, large or fractional numbers stay literal
                parts.append(re.escape(tok))
                continue
            if wanted is not None:
                groups[wanted] = (kind, len(groups))
                hole = b"(" + hole + b")"
            parts.append(b'"' + hole + b'"' if kind == "str" else hole)
            continue
        parts.append(re.escape(tok))
    readers = []
    for name in names:
        if name in groups:
            readers.append(_reader(*groups[name]))
        else:
            v = value.get(name, MISSING)
            if isinstance(v, dict | list):
                return None
            readers.append(_reader("const", v))
    return _Template(re.compile(b"".join(parts)), tuple(readers))


class CanonicalLines:
    """Check lines of canonical JSON objects and read some of their top-level members, fast.

    ``fields(line)`` raises NotCanonical exactly when ``loads_canonical(line)`` does; it returns None for
    a canonical line that is not an object, else the values of ``names`` (MISSING when absent). The
    members read must be scalars for the fast path (containers are read by the full check).
    """

    def __init__(self, names: Sequence[str], *, max_templates: int = 512) -> None:
        self.names = tuple(names)
        self._by_shape: dict[int, list[_Template]] = {}
        self._last: _Template | None = None
        self._count = 0
        self._max = max_templates
        self.slow = 0     # lines that took the full check (for tests and benchmarks)

    def fields(self, line: bytes) -> tuple[Any, ...] | None:
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise NotCanonical("not valid UTF-8 JSON (UnicodeDecodeError)") from None
        last = self._last
        if last is not None:
            m = last.regex.fullmatch(line)
            if m is not None:
                return last.read(m)
        shape = line.count(b'":')     # a cheap hint: lines of one template have nearly the same count
        bucket = self._by_shape.get(shape, [])
        for i, t in enumerate(bucket[:8]):   # the most recently used few; beyond, the full check is cheaper
            if t is not last:
                m = t.regex.fullmatch(line)
                if m is not None:
                    bucket.insert(0, bucket.pop(i))
                    self._last = t
                    return t.read(m)
        self.slow += 1
        value = loads_canonical(line)
        if not isinstance(value, dict):
            return None
        if self._count < self._max:
            t2 = _template(line, value, self.names)
            if t2 is not None:
                self._by_shape.setdefault(shape, []).insert(0, t2)
                self._count += 1
                self._last = t2
        return tuple(value.get(name, MISSING) for name in self.names)
