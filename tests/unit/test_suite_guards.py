"""The suite's own guards: unit tests cannot open sockets, and every test starts with retry back-off off."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from migrator import retry

# tests/unit/conftest.py's SocketBlocked, matched by message: pytest imports that conftest under its own name.
BLOCKED = "unit tests cannot open sockets"


def test_a_unit_test_cannot_connect_or_bind_a_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(RuntimeError, match=BLOCKED):
            s.connect(("127.0.0.1", 9))
        with pytest.raises(RuntimeError, match=BLOCKED):
            s.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, pytest.raises(RuntimeError, match=BLOCKED):
        u.sendto(b"x", ("127.0.0.1", 9))
    with pytest.raises(RuntimeError, match=BLOCKED):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_a_process_the_unit_test_starts_is_outside_the_guard() -> None:
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert int(out.stdout) > 0


def test_every_test_starts_with_retry_back_off_off() -> None:
    # Switched on here, as test_s3_store's module teardown once did; tests/conftest.py restores it afterwards.
    assert retry.set_backoff(True) is False
