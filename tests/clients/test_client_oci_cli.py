"""The OCI CLI (its own pinned oci SDK) against the sandbox's OCI endpoint, signed with the sandbox's key.

What the CLI did is checked again through the oci SDK client of migrator's own store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrator.sandbox.control import SandboxState
from migrator.stores.registry import Stores
from tests.clients.support import PART_SIZE, MiB, Payload, bare_env, ca_file, run_json, sha256_file
from tests.conftest import unique

COMPARTMENT = "ocid1.compartment.oc1..sandbox"


class OciCli:
    def __init__(self, exe: Path, env: dict[str, str], common: list[str], namespace: str) -> None:
        self.exe, self.env, self.common, self.namespace = exe, env, common, namespace

    def __call__(self, *args: str | Path) -> Any:
        return run_json([self.exe, *self.common, *args], self.env)

    def os(self, noun: str, verb: str, *args: str | Path) -> Any:
        return self("os", noun, verb, "--namespace", self.namespace, *args)


@pytest.fixture(scope="module")
def oci_cli_run(oci_cli: Path, sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> OciCli:
    env = bare_env(tmp_path_factory.mktemp("oci-home")) | {
        # The sandbox writes its key 0600 but without OCI's "OCI_API_KEY" label line: both warnings are noise.
        "OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING": "True", "SUPPRESS_LABEL_WARNING": "True"}
    common = ["--config-file", sandbox.oci_config, "--profile", "DEFAULT", "--endpoint", sandbox.oci.url,
              "--output", "json"]
    ca = ca_file(sandbox)
    if ca is not None:
        common += ["--cert-bundle", ca]
    return OciCli(oci_cli, env, common, sandbox.oci_namespace)


@pytest.fixture(scope="module")
def oci_view(stores: Stores) -> tuple[Any, str]:
    """The oci SDK's view: the client of migrator's own OCI store, and the namespace."""
    store = stores.get("oci")
    return store.client, store.namespace  # type: ignore[attr-defined]


@pytest.fixture
def bucket(oci_cli_run: OciCli) -> str:
    name = unique("ocicli")
    made = oci_cli_run.os("bucket", "create", "--name", name, "--compartment-id", COMPARTMENT,
                          "--versioning", "Enabled")
    assert made["data"]["versioning"] == "Enabled"
    return name


def test_small_and_multipart_objects_round_trip_with_checksums(oci_cli_run: OciCli, oci_view: tuple[Any, str],
                                                               bucket: str, payloads: dict[str, Payload],
                                                               tmp_path: Path) -> None:
    small, large = payloads["small"], payloads["large"]
    _, multipart_md5 = large.multipart_md5()
    put = oci_cli_run.os("object", "put", "-bn", bucket, "--file", small.path, "--name", "small",
                         "--opc-checksum-algorithm", "CRC32C", "--verify-checksum")
    assert (put["opc-content-md5"], put["opc-content-crc32c"]) == (small.md5_b64, small.crc32c_b64)
    put = oci_cli_run.os("object", "put", "-bn", bucket, "--file", large.path, "--name", "large",
                         "--part-size", str(PART_SIZE // MiB), "--opc-checksum-algorithm", "CRC32C",
                         "--verify-checksum")
    assert put["opc-multipart-md5"] == multipart_md5
    assert put["opc-content-crc32c"] == large.crc32c_b64   # the whole object's CRC32C, as OCI reports it

    head = oci_cli_run.os("object", "head", "-bn", bucket, "--name", "small")
    assert (int(head["content-length"]), head["content-md5"], head["opc-content-crc32c"]) == (
        small.size, small.md5_b64, small.crc32c_b64)
    head = oci_cli_run.os("object", "head", "-bn", bucket, "--name", "large")
    assert (int(head["content-length"]), head["opc-multipart-md5"], head["opc-content-crc32c"]) == (
        large.size, multipart_md5, large.crc32c_b64)
    assert "content-md5" not in head

    client, namespace = oci_view
    seen = client.head_object(namespace, bucket, "large").headers
    assert (seen["opc-multipart-md5"], seen["version-id"]) == (multipart_md5, head["version-id"])

    for key, p in (("small", small), ("large", large)):
        oci_cli_run.os("object", "get", "-bn", bucket, "--name", key, "--file", tmp_path / key)
        assert sha256_file(tmp_path / key) == p.sha256, key


def test_listings(oci_cli_run: OciCli, oci_view: tuple[Any, str], bucket: str, payloads: dict[str, Payload]) -> None:
    small = payloads["small"]
    for key in ("a/1", "a/2", "b"):
        oci_cli_run.os("object", "put", "-bn", bucket, "--file", small.path, "--name", key)
    listed = oci_cli_run.os("object", "list", "-bn", bucket, "--delimiter", "/", "--fields", "name,size,md5")
    assert [o["name"] for o in listed["data"]] == ["b"]
    assert listed["prefixes"] == ["a/"]
    # One object a page: the CLI follows the pages.
    paged = oci_cli_run.os("object", "list", "-bn", bucket, "--prefix", "a/", "--all", "--page-size", "1",
                           "--fields", "name,size,md5")
    assert [(o["name"], o["size"], o["md5"]) for o in paged["data"]] == [
        ("a/1", small.size, small.md5_b64), ("a/2", small.size, small.md5_b64)]
    client, namespace = oci_view
    names = [o.name for o in client.list_objects(namespace, bucket).data.objects]
    assert names == ["a/1", "a/2", "b"]


def test_versions_and_deletes(oci_cli_run: OciCli, oci_view: tuple[Any, str], bucket: str,
                              payloads: dict[str, Payload], tmp_path: Path) -> None:
    v1, v2 = payloads["small"], payloads["v2"]
    oci_cli_run.os("object", "put", "-bn", bucket, "--file", v1.path, "--name", "k")
    oci_cli_run.os("object", "put", "-bn", bucket, "--file", v2.path, "--name", "k", "--force")
    versions = oci_cli_run.os("object", "list-object-versions", "-bn", bucket, "--prefix", "k", "--all")["data"]
    assert [(v["size"], v["md5"], v["is-delete-marker"]) for v in versions] == [
        (v2.size, v2.md5_b64, False), (v1.size, v1.md5_b64, False)]
    first, second = versions[1]["version-id"], versions[0]["version-id"]
    oci_cli_run.os("object", "get", "-bn", bucket, "--name", "k", "--version-id", first, "--file", tmp_path / "old")
    assert sha256_file(tmp_path / "old") == v1.sha256

    # A delete without a version puts a delete marker on top; both versions stay.
    oci_cli_run.os("object", "delete", "-bn", bucket, "--name", "k", "--force")
    versions = oci_cli_run.os("object", "list-object-versions", "-bn", bucket, "--prefix", "k", "--all")["data"]
    assert [v["is-delete-marker"] for v in versions] == [True, False, False]
    assert [v["version-id"] for v in versions[1:]] == [second, first]
    # The CLI leaves out an empty page's "data".
    assert oci_cli_run.os("object", "list", "-bn", bucket, "--prefix", "k").get("data", []) == []

    # A version delete removes that version only.
    oci_cli_run.os("object", "delete", "-bn", bucket, "--name", "k", "--version-id", first, "--force")
    client, namespace = oci_view
    seen = client.list_object_versions(namespace, bucket, prefix="k").data.items
    assert [(v.version_id == second, v.is_delete_marker) for v in seen] == [(False, True), (True, False)]
