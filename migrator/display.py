"""What `run` shows on a terminal while a wave runs: bars for objects and bytes, the rate, the ETA, rows by
state and by location, and the last rows held or failed. An event sink that keeps the latest snapshot;
``render`` builds the picture, and the CLI's rich ``Live`` draws it (only cli.py writes to the terminal).
Every user-supplied string (keys, reasons) goes in as ``Text``, so ``[red]`` or ``:smile:`` stays literal.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = ["LiveView", "human_bytes", "human_duration"]

RECENT_EXCEPTIONS = 5


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s")


class LiveView:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: Mapping[str, Any] | None = None
        self._wave_id: str | None = None
        self._status = "starting"
        self._exceptions: deque[str] = deque(maxlen=RECENT_EXCEPTIONS)

    def emit(self, ev: Mapping[str, Any]) -> None:
        kind = ev.get("type")
        with self._lock:
            self._wave_id = ev.get("wave_id") or self._wave_id
            if kind == "progress":
                self._snap = ev
                self._status = "running" if self._status == "starting" else self._status
            elif kind == "wave.stopping":
                self._status = "stopping: finishing the steps in flight (Ctrl-C again stops at once)"
            elif kind == "row" and ev.get("state") in ("HELD", "FAILED"):
                self._exceptions.append(f"row {ev.get('row')} {ev.get('state')}: {ev.get('reason') or ''}"
                                        + (f" ({ev.get('detail')})" if ev.get("detail") else ""))

    @property
    def wave_id(self) -> str | None:
        return self._wave_id

    def render(self) -> RenderableType:
        with self._lock:
            snap, status, recent = self._snap, self._status, list(self._exceptions)
        title = Text(f"wave {self._wave_id or ''}  {status}")
        if snap is None:
            return title
        grid = Table.grid(padding=(0, 1))
        for _ in range(4):
            grid.add_column()
        rows, done = int(snap.get("rows") or 0), int(snap.get("done") or 0)
        grid.add_row("objects", ProgressBar(total=max(rows, 1), completed=done, width=30),
                     f"{done}/{rows}", f"{snap.get('objects_per_second', 0):.1f}/s")
        total = snap.get("bytes_total")
        bytes_done = int(snap.get("bytes_done") or 0)
        grid.add_row("bytes", ProgressBar(total=max(int(total or 0), bytes_done, 1), completed=bytes_done, width=30),
                     f"{human_bytes(bytes_done)}/{human_bytes(total) if total else '?'}",
                     f"{human_bytes(float(snap.get('bytes_per_second') or 0))}/s")
        by_state = snap.get("by_state") or {}
        states = Text("  ".join(f"{k.lower()} {v}" for k, v in by_state.items() if v))
        elapsed, eta_s = human_duration(snap.get("elapsed_seconds")), human_duration(snap.get("eta_seconds"))
        eta = Text(f"elapsed {elapsed}  ETA {eta_s}")
        parts: list[RenderableType] = [title, grid, states, eta]
        locations = snap.get("by_location") or {}
        if len(locations) > 1 or any(k for k in locations):
            table = Table("location", "rows", "reached", "bytes", "states", box=None, padding=(0, 1))
            for name, figures in locations.items():
                table.add_row(Text(name or "-"), str(figures.get("rows", 0)), str(figures.get("reached", 0)),
                              human_bytes(int(figures.get("bytes", 0))),
                              Text("  ".join(f"{k.lower()} {v}" for k, v in (figures.get("by_state") or {}).items())))
            parts.append(table)
        parts.extend(Text(line) for line in recent)
        return Group(*parts)
