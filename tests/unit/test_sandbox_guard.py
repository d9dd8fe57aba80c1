"""Library calls with sandbox settings refuse a non-loopback endpoint before they write anything.

No endpoint here is reachable, and none is contacted: the refusal comes first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.attest.keys import generate_keypair, load_signer
from migrator.config import load_wave
from migrator.errors import UnsafeEndpointError
from migrator.plan import plan_wave
from migrator.runner import run_wave
from migrator.stores.registry import Stores

LOOPBACK = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "STORAGE_EMULATOR_HOST": "127.0.0.1:9",
            "MIGRATOR_OCI_ENDPOINT": "http://[::1]:9", "MIGRATOR_SANDBOX": "/box"}
WHICH = {"AWS_ENDPOINT_URL": "sandbox S3", "STORAGE_EMULATOR_HOST": "sandbox GCS",
         "MIGRATOR_OCI_ENDPOINT": "sandbox OCI"}


def _env(var: str, url: str | None) -> dict[str, str]:
    env = dict(LOOPBACK)
    if url is None:
        del env[var]
    else:
        env[var] = url
    return env


@pytest.mark.parametrize("var", sorted(WHICH))
@pytest.mark.parametrize("url", ["https://s3.amazonaws.com", "http://10.0.0.7:9000", "http://127.0.0.1.nip.io:80",
                                 None])
def test_the_store_registry_refuses_when_it_is_built(var: str, url: str | None) -> None:
    with pytest.raises(UnsafeEndpointError, match=WHICH[var]):
        Stores(load_wave(None, {}, _env(var, url)).stores)


def test_loopback_endpoints_pass_and_no_sandbox_means_no_guard() -> None:
    Stores(load_wave(None, {}, LOOPBACK).stores)
    Stores(load_wave(None, {}, {"AWS_ENDPOINT_URL": "https://s3.amazonaws.com"}).stores)


@pytest.mark.parametrize("var", sorted(WHICH))
def test_run_wave_refuses_before_the_state_folder_exists(tmp_path: Path, var: str) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://src/a,oci://ns/dst/a\n")
    signer = load_signer(generate_keypair(tmp_path / "keys")[0])
    state = tmp_path / "state"
    with pytest.raises(UnsafeEndpointError, match="refusing non-loopback endpoint"):
        run_wave(manifest, state, signer, load_wave(None, {}, _env(var, "http://192.0.2.1:80")))
    assert not state.exists()


def test_plan_refuses_too(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://src/a,oci://ns/dst/a\n")
    with pytest.raises(UnsafeEndpointError):
        plan_wave(manifest, load_wave(None, {}, _env("AWS_ENDPOINT_URL", "http://192.0.2.1:80")))
