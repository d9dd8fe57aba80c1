"""Fixtures of the reliability suite: clouds to inspect, signing keys, and seeded waves into OCI."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.keys import generate_keypair, load_public_key
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from tests.conftest import unique
from tests.reliability.invariant import Clouds, Snapshot, snapshot, write_manifest


@dataclass
class SeededWave:
    manifest: Path
    state: Path
    source_bucket: str
    dest_bucket: str
    bodies: dict[str, list[bytes]] = field(default_factory=dict)   # key -> versions, oldest first
    snap: Snapshot | None = None


def seed_objects(sandbox: SandboxState, clouds: Clouds, scheme: str, bucket: str,
                 objects: dict[str, list[bytes]]) -> None:
    """Write every version of every object, oldest first, with the clouds' own SDKs."""
    for key, versions in objects.items():
        for body in versions:
            if scheme == "s3":
                clouds.s3.put_object(Bucket=bucket, Key=key, Body=body)
            elif scheme == "gs":
                clouds.gcs.bucket(bucket).blob(key).upload_from_string(body)
            else:
                raise ValueError(scheme)


def make_objects(rng: random.Random, n: int, *, multi_version_every: int = 0, versions: int = 2,
                 sizes: tuple[int, ...] = (0, 1, 700, 3000), prefix: str = "obj") -> dict[str, list[bytes]]:
    """``n`` objects with random bytes; every ``multi_version_every``-th one gets ``versions`` versions."""
    out = {}
    for i in range(n):
        count = versions if multi_version_every and i % multi_version_every == 0 else 1
        out[f"{prefix}/{i:04d}"] = [rng.randbytes(rng.choice(sizes) + v) for v in range(count)]
    return out


def seed_wave(sandbox: SandboxState, clouds: Clouds, tmp: Path, scheme: str | tuple[str, ...],
              objects: dict[str, list[bytes]], *, name: str = "wave") -> SeededWave:
    """Versioned source buckets (one per scheme; objects dealt round-robin among them), a versioned OCI
    destination, the manifest, and the snapshot taken before the wave."""
    schemes = (scheme,) if isinstance(scheme, str) else scheme
    buckets = {s: unique(f"rsrc-{s[:2]}") for s in schemes}
    dst = unique("rdst")
    for s, bucket in buckets.items():
        create_bucket(sandbox, s, bucket, versioned=True)
    create_bucket(sandbox, "oci", dst, versioned=True)
    placed: list[tuple[str, str]] = []
    for i, key in enumerate(objects):
        placed.append((schemes[i % len(schemes)], key))
    for s, bucket in buckets.items():
        seed_objects(sandbox, clouds, s, bucket, {k: objects[k] for sch, k in placed if sch == s})
    ns = sandbox.oci_namespace
    manifest = write_manifest(tmp / f"{name}.jsonl", (
        {"source": f"{s}://{buckets[s]}/{key}", "destination": f"oci://{ns}/{dst}/{key}"} for s, key in placed))
    wave = SeededWave(manifest, tmp / f"{name}-state", buckets[schemes[0]], dst, dict(objects))
    wave.snap = snapshot(clouds, manifest)
    return wave


def verify_state(state: Path, manifest: Path, pub: Path) -> dict[str, Any]:
    """Verify the attestation offline against its records and manifest; return the predicate."""
    verified = verify_attestation((state / "attestation.json").read_bytes(),
                                  Inputs(records=(state / "records.jsonl").read_bytes(),
                                         manifest=manifest.read_bytes()),
                                  AllOf(Threshold([load_public_key(pub)]), RequireRecords(), RequireManifest()))
    return dict(verified.predicate)


@pytest.fixture
def clouds(sandbox: SandboxState) -> Clouds:
    return Clouds(sandbox)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


@pytest.fixture
def wave_factory(sandbox: SandboxState, clouds: Clouds, tmp_path: Path) -> Callable[..., SeededWave]:
    def make(scheme: str | tuple[str, ...], objects: dict[str, list[bytes]], name: str = "wave") -> SeededWave:
        return seed_wave(sandbox, clouds, tmp_path, scheme, objects, name=name)
    return make


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    # Fixed per test: the same bytes and the same choices on every run.
    return random.Random(f"{request.node.nodeid}:{os.environ.get('MIGRATOR_RELIABILITY_SEED', '8')}")
