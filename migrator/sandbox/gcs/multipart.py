"""A ``multipart/related`` upload body (RFC 2046 section 5.1, RFC 2387) split byte-exactly into its parts.

The JSON API's ``uploadType=multipart`` carries the object's metadata and then its bytes. Clients lay the
body out differently, and every layout below is valid MIME that GCS accepts:

- a part may have no header fields at all: it then starts with the blank line (Go's ``mime/multipart``
  with an empty content type, which is how rclone sends the media part);
- text before the first delimiter (the preamble) and after the closing one (the epilogue) is ignored;
- a delimiter line may end in spaces or tabs (transport padding);
- the boundary parameter may be quoted, and then may hold spaces, ``;`` and ``=``.

The line break after the first delimiter says how the body is framed: CRLF as RFC 2046 requires, or a bare
LF, which some hand-written clients send. Every delimiter is then that line break, ``--`` and the boundary,
and the line break before a delimiter belongs to the delimiter, not to the part: a part's content is
exactly the bytes between its header block and that line break. A body without a closing delimiter is
refused (it was cut short) rather than stored short.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

from migrator.sandbox.base import ApiError

_PADDING = b" \t"


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]   # lower-case names; folded lines unfolded
    content: bytes


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type, unquoted."""
    message = Message()
    message["content-type"] = content_type
    raw = message.get_param("boundary")
    boundary = collapse_rfc2231_value(raw) if raw is not None else ""
    if message.get_content_maintype() != "multipart" or not boundary:
        raise ApiError(400, "invalid", "A multipart upload needs a multipart Content-Type with a boundary.")
    return boundary


def split(body: bytes, content_type: str) -> list[Part]:
    """The parts of ``body``, in order."""
    dash = b"--" + boundary_of(content_type).encode("latin-1")
    pos = _delimiter_at_line_start(body, dash, 0)
    if pos is None:
        raise ApiError(400, "invalid", "The multipart body has no delimiter line for its boundary.")
    after = _end_of_delimiter_line(body, pos + len(dash))
    if after is None:
        raise ApiError(400, "invalid", "The multipart body closes before its first part.")
    eol = b"\r\n" if body[after - 2:after] == b"\r\n" else b"\n"
    parts: list[Part] = []
    start = after
    while True:
        found = _next_delimiter(body, eol + dash, start)
        if found is None:
            raise ApiError(400, "invalid", "The multipart body has no closing delimiter.")
        at, next_start = found
        parts.append(_part(body[start:at], eol))
        if next_start is None:
            return parts
        start = next_start


def _delimiter_at_line_start(body: bytes, dash: bytes, start: int) -> int | None:
    """Where the first delimiter line (``--boundary`` at the body's start or a line's) begins."""
    if body.startswith(dash, start) and _follows_delimiter(body, start + len(dash)):
        return start
    at = start
    while (at := body.find(b"\n" + dash, at)) >= 0:
        if _follows_delimiter(body, at + 1 + len(dash)):
            return at + 1
        at += 1
    return None


def _next_delimiter(body: bytes, delimiter: bytes, start: int) -> tuple[int, int | None] | None:
    """(index of the line break that starts the next delimiter, where the part after it starts, or None
    when it is the closing delimiter); None when no delimiter follows."""
    at = start
    while (at := body.find(delimiter, at)) >= 0:
        end = at + len(delimiter)
        if body.startswith(b"--", end):
            return at, None
        next_start = _end_of_delimiter_line(body, end)
        if next_start is not None:
            return at, next_start
        at += 1   # the boundary is only a prefix of something longer: not a delimiter
    return None


def _follows_delimiter(body: bytes, end: int) -> bool:
    """Whether what follows ``--boundary`` at ``end`` makes it a delimiter: ``--``, or padding and a line end."""
    if body.startswith(b"--", end):
        return True
    return _end_of_delimiter_line(body, end) is not None


def _end_of_delimiter_line(body: bytes, end: int) -> int | None:
    """Where the part after a delimiter starts: past the transport padding and the line break."""
    while end < len(body) and body[end] in _PADDING:
        end += 1
    if body.startswith(b"\r\n", end):
        return end + 2
    if body.startswith(b"\n", end):
        return end + 1
    return None


def _part(raw: bytes, eol: bytes) -> Part:
    if raw.startswith(eol):                 # no header fields: the blank line comes first
        return Part({}, raw[len(eol):])
    head, sep, content = raw.partition(eol + eol)
    if not sep:                             # headers only, no body (RFC 2046 allows it)
        head, content = raw, b""
    headers: dict[str, str] = {}
    last = ""
    for line in head.decode("latin-1").split(eol.decode("ascii")):
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if colon:
            last = name.strip().lower()
            headers[last] = value.strip()
    return Part(headers, content)
