"""Fixtures of the independent-client checks (`make test-clients`): each client's installed venv, and payloads.

A client that is not installed fails its tests: this suite exists to run them. `make test-clients` installs
them first (`python3 tests/clients/install.py`); `make test` does not collect this folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients import install
from tests.clients.support import LARGE_SIZE, SMALL_SIZE, Payload, payload


def _installed(name: str) -> install.Client:
    client = install.CLIENTS[name]
    if not install.ready(client):
        pytest.fail(f"{client.key} is not installed in {install.venv_dir(client)}: run `make test-clients` "
                    f"or `python3 tests/clients/install.py {name}`", pytrace=False)
    return client


@pytest.fixture(scope="session")
def rclone() -> Path:
    return install.executable(_installed("rclone"))


@pytest.fixture(scope="session")
def aws() -> Path:
    return install.executable(_installed("awscli"))


@pytest.fixture(scope="session")
def oci_cli() -> Path:
    return install.executable(_installed("oci-cli"))


@pytest.fixture(scope="session")
def gcsfs_python() -> Path:
    return install.python(_installed("gcsfs"))


@pytest.fixture(scope="session")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Payload]:
    """``small`` (one request everywhere), ``large`` (three parts) and ``v2`` (another small body, for a
    second version)."""
    d = tmp_path_factory.mktemp("payloads")
    return {"small": payload(d, "small.bin", SMALL_SIZE, seed=1),
            "large": payload(d, "large.bin", LARGE_SIZE, seed=2),
            "v2": payload(d, "v2.bin", 2000, seed=3)}
