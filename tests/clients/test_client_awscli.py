"""The AWS CLI (1.x, its own vendored botocore, awscrt for CRC32C) against the sandbox's S3 endpoint.

What the CLI did is checked again through boto3, the SDK migrator uses, from the sandbox's environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.control import SandboxState
from migrator.stores.registry import Stores
from tests.clients.support import PART_SIZE, MiB, Payload, bare_env, ca_file, run, run_json, sha256_file
from tests.conftest import unique


class AwsCli:
    def __init__(self, exe: Path, env: dict[str, str]) -> None:
        self.exe, self.env = exe, env

    def __call__(self, *args: str | Path) -> Any:
        return run_json([self.exe, *args, "--output", "json"], self.env)

    def s3(self, *args: str | Path) -> str:
        return run([self.exe, "s3", *args], self.env).stdout


@pytest.fixture(scope="module")
def aws_cli(aws: Path, sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> AwsCli:
    home = tmp_path_factory.mktemp("aws-home")
    config = home / "config"
    # The CLI's sizes are binary (MB = MiB); its smallest part is S3's 5 MiB.
    config.write_text(f"[default]\nregion = us-east-1\ns3 =\n  multipart_threshold = {PART_SIZE // MiB}MB\n"
                      f"  multipart_chunksize = {PART_SIZE // MiB}MB\n")
    sb = sandbox.env()
    env = bare_env(home) | {
        "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_ENDPOINT_URL": sb["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": sb["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": sb["AWS_SECRET_ACCESS_KEY"], "AWS_DEFAULT_REGION": sb["AWS_DEFAULT_REGION"],
    }
    ca = ca_file(sandbox)
    if ca is not None:
        env["AWS_CA_BUNDLE"] = ca
    return AwsCli(aws, env)


@pytest.fixture(scope="module")
def s3(stores: Stores) -> Any:
    """boto3's view: the S3 client of migrator's own store, built from the sandbox's environment."""
    return stores.get("s3").client  # type: ignore[attr-defined]


@pytest.fixture
def bucket(aws_cli: AwsCli) -> Iterator[str]:
    name = unique("awscli")
    aws_cli("s3api", "create-bucket", "--bucket", name)
    aws_cli("s3api", "put-bucket-versioning", "--bucket", name, "--versioning-configuration", "Status=Enabled")
    yield name


def test_small_and_multipart_objects_round_trip_with_crc32c(aws_cli: AwsCli, s3: Any, bucket: str,
                                                            payloads: dict[str, Payload], tmp_path: Path) -> None:
    small, large = payloads["small"], payloads["large"]
    aws_cli.s3("cp", small.path, f"s3://{bucket}/small", "--checksum-algorithm", "CRC32C", "--only-show-errors")
    aws_cli.s3("cp", large.path, f"s3://{bucket}/large", "--checksum-algorithm", "CRC32C", "--only-show-errors")

    head = aws_cli("s3api", "head-object", "--bucket", bucket, "--key", "small", "--checksum-mode", "ENABLED")
    assert head["ContentLength"] == small.size
    assert head["ETag"] == f'"{small.md5_hex}"'
    assert head["ChecksumCRC32C"] == small.crc32c_b64

    etag, _ = large.multipart_md5()
    assert etag.endswith("-3"), "the payload is meant to take three parts"
    for op in ("head-object", "get-object"):
        extra = [tmp_path / "large.get"] if op == "get-object" else []
        got = aws_cli("s3api", op, "--bucket", bucket, "--key", "large", "--checksum-mode", "ENABLED", *extra)
        assert got["ContentLength"] == large.size
        assert got["ETag"] == f'"{etag}"', op
        # S3 reports a multipart object's checksum as the checksum of its parts' checksums, with "-N".
        assert got["ChecksumCRC32C"] == large.composite_crc32c(), op
        assert got["ChecksumType"] == "COMPOSITE", op
    assert sha256_file(tmp_path / "large.get") == large.sha256

    # boto3 sees the same object: same size, ETag and checksum.
    seen = s3.head_object(Bucket=bucket, Key="large", ChecksumMode="ENABLED")
    assert (seen["ContentLength"], seen["ETag"], seen["ChecksumCRC32C"]) == (
        large.size, f'"{etag}"', large.composite_crc32c())

    # The high-level download checks nothing the test does not check again: the bytes.
    aws_cli.s3("cp", f"s3://{bucket}/small", tmp_path / "small.get", "--only-show-errors")
    assert sha256_file(tmp_path / "small.get") == small.sha256


def test_listings(aws_cli: AwsCli, s3: Any, bucket: str, payloads: dict[str, Payload]) -> None:
    small = payloads["small"]
    for key in ("a/1", "a/2", "b"):
        aws_cli("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", small.path,
                "--checksum-algorithm", "CRC32C")
    listed = aws_cli("s3api", "list-objects-v2", "--bucket", bucket, "--delimiter", "/")
    assert [o["Key"] for o in listed["Contents"]] == ["b"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/"]
    # Paged one key at a time: the CLI follows the continuation tokens.
    paged = aws_cli("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "a/", "--page-size", "1")
    assert [(o["Key"], o["Size"], o["ETag"]) for o in paged["Contents"]] == [
        ("a/1", small.size, f'"{small.md5_hex}"'), ("a/2", small.size, f'"{small.md5_hex}"')]
    lines = aws_cli.s3("ls", f"s3://{bucket}/", "--recursive").splitlines()
    assert [line.split()[-1] for line in lines] == ["a/1", "a/2", "b"]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["a/1", "a/2", "b"]


def test_versions_and_deletes(aws_cli: AwsCli, s3: Any, bucket: str, payloads: dict[str, Payload],
                              tmp_path: Path) -> None:
    v1, v2 = payloads["small"], payloads["v2"]
    first = aws_cli("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", v1.path,
                    "--checksum-algorithm", "CRC32C")["VersionId"]
    second = aws_cli("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", v2.path,
                     "--checksum-algorithm", "CRC32C")["VersionId"]
    versions = aws_cli("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "k")
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in versions["Versions"]] == [
        (second, True, v2.size), (first, False, v1.size)]
    aws_cli("s3api", "get-object", "--bucket", bucket, "--key", "k", "--version-id", first, tmp_path / "old")
    assert sha256_file(tmp_path / "old") == v1.sha256

    # A delete without a version leaves a delete marker on top.
    aws_cli.s3("rm", f"s3://{bucket}/k", "--only-show-errors")
    versions = aws_cli("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "k")
    [marker] = versions["DeleteMarkers"]
    assert marker["IsLatest"] is True
    assert {v["VersionId"] for v in versions["Versions"]} == {first, second}

    # A version delete removes that version only.
    gone = aws_cli("s3api", "delete-object", "--bucket", bucket, "--key", "k", "--version-id", first)
    assert gone["VersionId"] == first
    seen = s3.list_object_versions(Bucket=bucket, Prefix="k")
    assert [v["VersionId"] for v in seen["Versions"]] == [second]
    assert [m["VersionId"] for m in seen["DeleteMarkers"]] == [marker["VersionId"]]

    # DeleteObjects on the marker says it removed a marker, and the older version is current again.
    batch = aws_cli("s3api", "delete-objects", "--bucket", bucket, "--delete",
                    f'{{"Objects": [{{"Key": "k", "VersionId": "{marker["VersionId"]}"}}]}}')
    [deleted] = batch["Deleted"]
    assert (deleted["Key"], deleted["VersionId"]) == ("k", marker["VersionId"])
    assert deleted["DeleteMarker"] is True
    assert deleted["DeleteMarkerVersionId"] == marker["VersionId"]
    current = s3.get_object(Bucket=bucket, Key="k")
    assert current["VersionId"] == second
    assert current["Body"].read() == v2.data
