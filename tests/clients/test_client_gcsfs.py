"""gcsfs (aiohttp, its own JSON API calls; fsspec paths) against the sandbox's GCS endpoint.

gcsfs runs in its own venv through gcsfs_driver.py, one operation per process; what it did is checked
again through google-cloud-storage, the SDK migrator uses.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.control import SandboxState
from migrator.stores.registry import Stores
from tests.clients.support import PART_SIZE, Payload, bare_env, ca_file, run_json, sha256_file
from tests.conftest import unique

DRIVER = Path(__file__).resolve().with_name("gcsfs_driver.py")


class Gcsfs:
    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.python, self.env = python, env

    def __call__(self, *args: str | Path, consistency: str = "crc32c") -> Any:
        return run_json([self.python, DRIVER, "--consistency", consistency, *args], self.env)


@pytest.fixture(scope="module")
def gcsfs(gcsfs_python: Path, sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Gcsfs:
    env = bare_env(tmp_path_factory.mktemp("gcsfs-home")) | {
        "STORAGE_EMULATOR_HOST": sandbox.env()["STORAGE_EMULATOR_HOST"],
        # Without this, gcsfs first asks the endpoint over gRPC whether the bucket is hierarchical and
        # waits 60 s for the answer that never comes, once per bucket, before falling back to JSON.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    ca = ca_file(sandbox)
    if ca is not None:
        env["SSL_CERT_FILE"] = ca   # aiohttp verifies with Python's default context, which reads it
    return Gcsfs(gcsfs_python, env)


@pytest.fixture(scope="module")
def gcs(stores: Stores) -> Any:
    """google-cloud-storage's view: the client of migrator's own GCS store."""
    return stores.get("gs").client  # type: ignore[attr-defined]


def emulator_requests(gcs: Any, sandbox: SandboxState) -> dict[str, int]:
    """Requests per operation the GCS endpoint has served (its control path, through the SDK's session)."""
    got = gcs._http.get(sandbox.env()["STORAGE_EMULATOR_HOST"].rstrip("/") + "/_emulator/stats")
    got.raise_for_status()
    return dict(got.json()["requests"])


@pytest.fixture
def bucket(gcsfs: Gcsfs) -> str:
    name = unique("gcsfs")
    gcsfs("mkdir", name, "--versioning")
    return name


def test_small_and_resumable_objects_round_trip_with_hashes(gcsfs: Gcsfs, gcs: Any, sandbox: SandboxState,
                                                            bucket: str, payloads: dict[str, Payload],
                                                            tmp_path: Path) -> None:
    small, large = payloads["small"], payloads["large"]
    gcsfs("pipe", small.path, f"{bucket}/small", consistency="md5")
    before = emulator_requests(gcs, sandbox).get("objects.insert.chunk", 0)
    gcsfs("put", large.path, f"{bucket}/large", "--block-size", str(PART_SIZE))
    chunks = emulator_requests(gcs, sandbox).get("objects.insert.chunk", 0) - before
    assert chunks == len(large.parts()), "gcsfs should have sent one resumable chunk per block"

    for key, p in (("small", small), ("large", large)):
        info = gcsfs("info", f"{bucket}/{key}")
        assert (int(info["size"]), info["md5Hash"], info["crc32c"]) == (p.size, p.md5_b64, p.crc32c_b64), key
        blob = gcs.bucket(bucket).get_blob(key)
        assert (blob.size, blob.md5_hash, blob.crc32c, str(blob.generation)) == (
            p.size, p.md5_b64, p.crc32c_b64, info["generation"]), key
        gcsfs("get", f"{bucket}/{key}", tmp_path / key)
        assert sha256_file(tmp_path / key) == p.sha256, key


def test_listings(gcsfs: Gcsfs, gcs: Any, bucket: str, payloads: dict[str, Payload]) -> None:
    small = payloads["small"]
    for key in ("a/1", "a/2", "b"):
        gcsfs("pipe", small.path, f"{bucket}/{key}")
    top = gcsfs("ls", bucket)
    assert sorted((e["name"], e["type"]) for e in top) == [(f"{bucket}/a", "directory"), (f"{bucket}/b", "file")]
    under = gcsfs("ls", f"{bucket}/a")
    assert sorted((e["name"], int(e["size"])) for e in under) == [(f"{bucket}/a/1", small.size),
                                                                   (f"{bucket}/a/2", small.size)]
    assert sorted(b.name for b in gcs.list_blobs(bucket)) == ["a/1", "a/2", "b"]


def test_versions_and_deletes(gcsfs: Gcsfs, gcs: Any, bucket: str, payloads: dict[str, Payload],
                              tmp_path: Path) -> None:
    v1, v2 = payloads["small"], payloads["v2"]
    gcsfs("pipe", v1.path, f"{bucket}/k")
    gcsfs("pipe", v2.path, f"{bucket}/k")
    versions = gcsfs("ls", bucket, "--versions")
    by_generation = {int(e["generation"]): e for e in versions}
    first, second = sorted(by_generation)
    assert [(int(by_generation[g]["size"]), by_generation[g]["md5Hash"]) for g in (first, second)] == [
        (v1.size, v1.md5_b64), (v2.size, v2.md5_b64)]
    assert by_generation[first]["name"] == f"{bucket}/k#{first}"
    gcsfs("get", f"{bucket}/k#{first}", tmp_path / "old")
    assert sha256_file(tmp_path / "old") == v1.sha256

    # A delete of the live object keeps both generations as noncurrent versions.
    gcsfs("rm", f"{bucket}/k")
    assert gcsfs("ls", bucket) == []
    assert gcs.bucket(bucket).get_blob("k") is None
    assert sorted(b.generation for b in gcs.list_blobs(bucket, versions=True)) == [first, second]
    # A generation delete removes that generation only.
    gcsfs("rm", f"{bucket}/k#{first}")
    assert [b.generation for b in gcs.list_blobs(bucket, versions=True)] == [second]
    assert base64.b64decode(gcs.bucket(bucket).get_blob("k", generation=second).md5_hash) == bytes.fromhex(v2.md5_hex)
