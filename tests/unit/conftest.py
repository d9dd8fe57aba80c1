"""Unit tests run without a network: while a test in tests/unit/ and its fixtures run, opening a socket fails.

``connect``, ``connect_ex``, ``bind`` and ``sendto`` refuse on every socket made in this process (and its
threads), whatever the family, so a unit test can reach neither the sandbox nor anything else. Processes a
test starts are outside the guard. A test that needs a server belongs in tests/integration/ or tests/sandbox/.
The guard is installed around each test's setup and call phases only, so that session fixtures another
directory's tests share (the sandbox) can still be torn down after a unit test that ran last.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Iterator
from contextlib import contextmanager

import pytest

GUARDED = ("connect", "connect_ex", "bind", "sendto")


class SocketBlocked(RuntimeError):
    """A unit test tried to use the network."""


def _refuse(name: str) -> object:
    def refuse(self: socket.socket, *args: object, **kwargs: object) -> None:
        raise SocketBlocked(f"unit tests cannot open sockets: socket.{name}{args!r} was called "
                            "(move the test to tests/integration/)")
    return refuse


@contextmanager
def no_sockets() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name in GUARDED:
            mp.setattr(socket.socket, name, _refuse(name))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with no_sockets():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with no_sockets():
        return (yield)
