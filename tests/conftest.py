"""Shared fixtures: one sandbox (S3, GCS, OCI over HTTP on 127.0.0.1) per test worker.

Retries never sleep in tests: back-off is off from import (for fixtures of any scope), and every test starts
with it off and leaves the switch as it found it, so no test module's setting reaches a later test.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import pytest

from migrator import retry
from migrator.checksum import Algorithm, Checksum, find
from migrator.config import TransferSettings, WaveSettings, load_wave
from migrator.sandbox import control
from migrator.sandbox.control import SandboxState
from migrator.stores.registry import Stores
from migrator.stores.settings import StoreTransfer

# Copies of ../shared/vectors, so the suite runs from any checkout.
VECTORS = Path(__file__).resolve().parent / "vectors"

# The tests are an entry point: retries do not sleep here, nor in the CLI processes the tests start
# (cli.main reads MIGRATOR_NO_BACKOFF; migrator.retry reads no environment).
retry.set_backoff(False)
os.environ["MIGRATOR_NO_BACKOFF"] = "1"
_names = itertools.count()


def wave_settings(**flags: Any) -> WaveSettings:
    """Settings as `migrator run` resolves them, with these flags (policy or transfer keys), no wave file,
    and this process's environment (the sandbox's endpoints once the ``sandbox`` fixture is up)."""
    return load_wave(None, flags, os.environ)


def store_transfer(**overrides: int) -> StoreTransfer:
    """The default transfer knobs for an adapter built directly, with overrides. Not checked here: the
    adapters check their own SDK's limits, and some tests want values the wave settings refuse."""
    return dataclasses.replace(TransferSettings().for_stores(), **overrides)


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    previous = retry.set_backoff(False)
    try:
        yield
    finally:
        retry.set_backoff(previous)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    d = tmp_path_factory.mktemp("sandbox")
    state = control.up(d)
    saved = dict(os.environ)
    # As a user would after `eval "$(migrator sandbox env)"`: the SDKs read credentials from the environment.
    os.environ.update(state.env())
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield state
    finally:
        os.environ.clear()
        os.environ.update(saved)
        control.down(d, missing_ok=True)


@pytest.fixture(scope="session")
def sandbox_env(sandbox: SandboxState) -> dict[str, str]:
    return sandbox.env()


@pytest.fixture(scope="session")
def stores(sandbox: SandboxState) -> Stores:
    # Small thresholds so that multipart paths run on modest objects.
    return Stores(load_wave(None, {"part_size": 8 * 1024 * 1024, "multipart_threshold": 16 * 1024 * 1024},
                            sandbox.env()).stores)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


class PutOptions(TypedDict, total=False):
    """The optional fields of ``stores.base.PutRequest``, for test helpers that fill in ``size`` themselves."""

    content_type: str | None
    content_encoding: str | None
    metadata: Mapping[str, str]
    if_none_match: bool
    if_match: str | None
    if_match_version: str | None
    body_digests: tuple[Checksum, ...]


def found(checksums: Sequence[Checksum], algorithm: Algorithm, *, parts: int | None = None) -> Checksum:
    """``checksum.find`` for a checksum the test requires: a missing one fails the test here, by name."""
    checksum = find(checksums, algorithm, parts=parts)
    assert checksum is not None, f"no {algorithm} checksum (parts={parts}) among {checksums!r}"
    return checksum


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS
