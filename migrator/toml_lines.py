"""Where a dotted field of a TOML file (``locations.dc.kind``) is written: its line, for error messages.

tomllib keeps no positions, so the file is scanned the plain way: ``[table]`` headers, then ``key = ...``.
A field written otherwise (inline tables, dotted keys) keeps its error without a line.
"""

from __future__ import annotations

import re
from pathlib import Path

from migrator.errors import InputError

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def located(exc: InputError, path: Path) -> InputError:
    """``exc`` with the line of its dotted field (``locations.dc.kind``) in the TOML file ``path``, when it
    writes it the plain way (a ``[table]`` header, then ``key = ...``); otherwise as it is."""
    if exc.line is not None or not exc.field:
        return exc
    table, _, key = exc.field.rpartition(".")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return exc
    current, header_line = "", None   # the field's own [table], else its table's: where to add it
    for number, text in enumerate(lines, start=1):
        header = _HEADER.match(text)
        if header:
            current = ".".join(part.strip().strip('"') for part in header.group(1).split("."))
            if current == exc.field or (current == table and header_line is None):
                header_line = number
            continue
        if current == table and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", text):
            return InputError(str(exc.args[0]), file=exc.file, line=number, field=exc.field)
    return InputError(str(exc.args[0]), file=exc.file, line=header_line, field=exc.field)
