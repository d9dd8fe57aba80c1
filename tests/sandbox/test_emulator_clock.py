"""The GCS and OCI emulators' clocks follow one rule: they never go back, and stay usable.

Tests move an emulator's clock forward (``POST /_emulator/clock?advance=SECONDS``, or ``advance_clock``) to
reach retention and expiry without sleeping. ``POST /_emulator/reset`` clears the state and keeps the clock,
on both; a negative, non-finite or absurd advance is refused and leaves the clock as it was. Only emulator
times are compared with each other here, never with the wall clock.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from migrator.sandbox.base import Emulator
from migrator.sandbox.gcs.server import GcsEmulator
from migrator.sandbox.oci.server import OciEmulator
from migrator.sandbox.oci_auth import write_sandbox_config


def make(kind: str, tmp: Path) -> Emulator:
    if kind == "gcs":
        return GcsEmulator()
    creds = write_sandbox_config(tmp, "clockns")
    return OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace="clockns")


@pytest.fixture(params=["gcs", "oci"])
def emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    with make(request.param, tmp_path) as em:
        yield em


def post(em: Emulator, target: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(em.host, em.port, timeout=10)
    try:
        conn.request("POST", target)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def clock(em: Emulator, seconds: str = "0") -> datetime:
    status, body = post(em, f"/_emulator/clock?advance={seconds}")
    assert status == 200, body
    return datetime.fromisoformat(json.loads(body)["now"].replace("Z", "+00:00"))


def test_reset_keeps_the_clock(emulator: Emulator) -> None:
    ahead = clock(emulator, str(30 * 86400))
    assert post(emulator, "/_emulator/reset")[0] == 204
    assert clock(emulator) >= ahead


@pytest.mark.parametrize("seconds", ["-60", "nan", "inf", "1e15", "8e13"])
def test_refused_advances_leave_the_clock_usable(emulator: Emulator, seconds: str) -> None:
    before = clock(emulator)
    status, body = post(emulator, f"/_emulator/clock?advance={seconds}")
    assert status == 400, body
    assert before <= clock(emulator) < before.replace(year=before.year + 1)
    assert post(emulator, "/_emulator/reset")[0] == 204   # the emulator still answers


def test_in_process_advance_refuses_to_go_back(emulator: Emulator) -> None:
    before = clock(emulator)
    with pytest.raises(ValueError, match="forward"):
        emulator.advance_clock(-3600)
    assert clock(emulator) >= before
