"""A clean stop, asked for from a signal handler and honoured by the wave's threads.

The handler only sets a flag (it runs between two bytecodes of the main thread, which may hold any lock).
The wave checks it before each batch, before each row it hands to a worker, between removal's steps, and at
every read of a copy (at most 1 MiB apart), where ``check`` raises ``WaveStopped``: the copy's multipart upload
is aborted by its store, and the row stays COPYING in the journal, which a resume cleans up and copies again.
"""

from __future__ import annotations

import signal
import threading

from migrator.errors import WaveStopped

__all__ = ["Stopper"]


class Stopper:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.exit_code = 130

    def request(self, signum: int) -> None:
        if not self._event.is_set():
            self.signal_name = signal.Signals(signum).name
            self.exit_code = 128 + signum
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def error(self) -> WaveStopped:
        return WaveStopped(self.signal_name or "signal", self.exit_code)

    def check(self) -> None:
        if self._event.is_set():
            raise self.error()
