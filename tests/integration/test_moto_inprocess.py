"""Waves under moto's in-process mock (``mock_aws``, no server), as users' own suites already mock S3.

``MIGRATOR_S3_INPROCESS_MOCK=moto`` replaces the loopback guard for S3: the mock must be active, the
endpoint AWS's own and the credentials moto's; GCS and OCI still need loopback endpoints (the sandbox's).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.config import load_wave
from migrator.errors import InputError, UnsafeEndpointError
from migrator.runner import run_wave
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from migrator.stores.registry import Stores
from migrator.testing.moto import fix_version_listing
from migrator.uri import Location
from tests.conftest import unique

MOCK = {"MIGRATOR_S3_INPROCESS_MOCK": "moto"}
# What a session's sandbox fixture (or a user's shell) may have set that would point boto3 elsewhere.
_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_CONFIG_FILE", "AWS_CA_BUNDLE", "AWS_SESSION_TOKEN")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """boto3 resolves AWS's own endpoint (moto answers it), with nothing of the sandbox's S3 left."""
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield


def _env(**extra: str) -> dict[str, str]:
    import os

    return {**{k: v for k, v in os.environ.items() if k not in _AWS_ENV}, **MOCK, **extra}


def _seed_s3(src: str, n: int, *, versions: int = 1) -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=src)
    s3.put_bucket_versioning(Bucket=src, VersioningConfiguration={"Status": "Enabled"})
    bodies = {}
    for i in range(n):
        for v in range(versions):
            body = f"row {i} version {v} ".encode() * (50 + i)
            s3.put_object(Bucket=src, Key=f"k/{i:03d}", Body=body)
            bodies[f"k/{i:03d}"] = body
    return bodies


def _run(manifest: Path, state: Path, env: dict[str, str], **flags: Any) -> tuple[Any, dict[str, Any]]:
    priv, pub = generate_keypair(state.parent / f"{state.name}-keys")
    result = run_wave(manifest, state, load_signer(priv), load_wave(None, flags, env))
    verified = verify_attestation((state / "attestation.json").read_bytes(),
                                  Inputs(records=(state / "records.jsonl").read_bytes(),
                                         manifest=manifest.read_bytes()),
                                  AllOf(Threshold([load_public_key(pub)]), RequireRecords(), RequireManifest()))
    return result, verified.predicate


@mock_aws
def test_s3_to_s3_wave_completes_under_mock_aws(aws_env: None, tmp_path: Path) -> None:
    # batch_rows 3 over 10 rows: every batch after the first lists from a KeyMarker, which stock moto
    # answers without the batch's first key.
    bodies = _seed_s3("src", 10, versions=2)
    boto3.client("s3").create_bucket(Bucket="dst")
    boto3.client("s3").put_bucket_versioning(Bucket="dst", VersioningConfiguration={"Status": "Enabled"})
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\n" + "".join(f"s3://src/{k},s3://dst/{k}\n" for k in bodies))
    result, predicate = _run(manifest, tmp_path / "state", _env(), batch_rows=3, concurrency=4)
    assert (result.rows, result.removed, result.held, result.failed) == (10, 10, 0, 0)
    assert predicate["totals"]["removed"] == 10
    s3 = boto3.client("s3")
    assert "Versions" not in s3.list_object_versions(Bucket="src")
    for key, body in bodies.items():
        assert s3.get_object(Bucket="dst", Key=key)["Body"].read() == body
        assert len(s3.list_object_versions(Bucket="dst", Prefix=key)["Versions"]) == 2


def test_s3_to_oci_wave_completes_with_the_sandboxs_oci(sandbox: SandboxState, aws_env: None,
                                                        tmp_path: Path) -> None:
    dst = unique("inproc-oci")
    create_bucket(sandbox, "oci", dst, versioned=True)
    with mock_aws():
        bodies = _seed_s3("src", 7)
        manifest = tmp_path / "m.csv"
        manifest.write_text("source,destination\n" + "".join(
            f"s3://src/{k},oci://{sandbox.oci_namespace}/{dst}/{k}\n" for k in bodies))
        result, predicate = _run(manifest, tmp_path / "state", _env(), batch_rows=2)
        assert (result.rows, result.removed, result.failed) == (7, 7, 0)
        assert "Versions" not in boto3.client("s3").list_object_versions(Bucket="src")
    assert predicate["totals"]["removed"] == 7


def _stores(env: dict[str, str]) -> Stores:
    return Stores(load_wave(None, {}, env).stores)


def test_the_setting_refuses_without_an_active_mock(aws_env: None) -> None:
    with pytest.raises(UnsafeEndpointError, match="mock is not active"):
        _stores(_env())


def test_the_setting_refuses_an_s3_endpoint(aws_env: None) -> None:
    with mock_aws(), pytest.raises(UnsafeEndpointError, match="AWS_ENDPOINT_URL"):
        _stores(_env(AWS_ENDPOINT_URL="http://127.0.0.1:9"))


def test_the_setting_refuses_credentials_that_are_not_motos(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with mock_aws(config={"core": {"mock_credentials": False, "passthrough": {"urls": [], "services": []},
                                   "reset_boto3_session": True}}):
        stores = _stores(_env())
        with pytest.raises(UnsafeEndpointError, match="not moto's fakes"):
            stores.get("s3")


def test_a_store_that_outlives_the_mock_sends_nothing(aws_env: None) -> None:
    with mock_aws():
        store = _stores(_env()).get("s3")
        boto3.client("s3").create_bucket(Bucket="bkt")
        assert list(store.list_versions(Location("s3", "bkt"), "")) == []
    with pytest.raises(UnsafeEndpointError, match="mock is not active"):
        list(store.list_versions(Location("s3", "bkt"), ""))


def test_an_unknown_mock_is_bad_input() -> None:
    with pytest.raises(InputError) as info:
        load_wave(None, {}, {"MIGRATOR_S3_INPROCESS_MOCK": "localstack"})
    assert info.value.field == "MIGRATOR_S3_INPROCESS_MOCK"


def _listing_script(fixed: bool) -> str:
    return textwrap.dedent(f"""
        import boto3
        from moto import mock_aws
        from migrator.testing.moto import fix_version_listing
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="bkt")
            s3.put_bucket_versioning(Bucket="bkt", VersioningConfiguration={{"Status": "Enabled"}})
            for key in ("a", "a", "b", "c", "c"):
                s3.put_object(Bucket="bkt", Key=key, Body=key.encode())
            if {fixed}:
                fix_version_listing()
                fix_version_listing()   # idempotent
            for marker in ("a", "a0", "bz", "c", "0"):
                page = s3.list_object_versions(Bucket="bkt", KeyMarker=marker)
                print(marker, "".join(v["Key"] for v in page.get("Versions", [])))
        """)


@pytest.mark.parametrize("fixed, expected", [
    # Stock moto: the first version after the marker is dropped, the marker key's own are kept.
    (False, {"a": "abcc", "a0": "cc", "bz": "c", "c": "c", "0": "abcc"}),
    # As S3: every version of every key after the marker.
    (True, {"a": "bcc", "a0": "bcc", "bz": "cc", "c": "", "0": "aabcc"}),
])
def test_fix_version_listing_gives_s3s_key_marker(fixed: bool, expected: dict[str, str]) -> None:
    # A subprocess: the fix is process-wide, and stock behaviour is shown only where it was never applied.
    out = subprocess.run([sys.executable, "-c", _listing_script(fixed)], capture_output=True, text=True,
                         check=True, env=_env()).stdout
    assert dict(line.split(" ", 1) for line in out.splitlines()) == expected


def test_fix_version_listing_pages_as_s3_does(aws_env: None) -> None:
    fix_version_listing()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="pages")
        s3.put_bucket_versioning(Bucket="pages", VersioningConfiguration={"Status": "Enabled"})
        for i in range(7):
            for _ in range(3):
                s3.put_object(Bucket="pages", Key=f"k{i}", Body=b"x")
        seen: list[tuple[str, str]] = []
        kwargs: dict[str, Any] = {}
        while True:
            page = s3.list_object_versions(Bucket="pages", MaxKeys=4, **kwargs)
            seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            if not page["IsTruncated"]:
                break
            kwargs = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        assert len(seen) == len(set(seen)) == 21
