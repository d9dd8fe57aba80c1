"""The OCI emulator behaves as OCI documents: retention rules, replication, versioning states, the Vault's
ECDSA signing, and the sandbox fault hook. Every check goes through the real ``oci`` SDK over HTTP on
127.0.0.1; time moves through the emulator's clock, never by sleeping."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import google_crc32c
import oci
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from oci._vendor.requests.exceptions import ChunkedEncodingError

from migrator.sandbox.faults import FaultPlan, clear_faults, get_faults, set_faults
from migrator.sandbox.oci.server import OciEmulator
from migrator.sandbox.oci_auth import OciSandboxCredentials, write_sandbox_config

if TYPE_CHECKING:
    # The OCI SDK ships no annotations (to mypy these are Any): the names tell the reader what a value is.
    from oci.key_management import KmsCryptoClient, KmsManagementClient
    from oci.object_storage import ObjectStorageClient

    Vault: TypeAlias = tuple[KmsManagementClient, KmsCryptoClient]

NAMESPACE = "sandboxns"
COMPARTMENT = "ocid1.compartment.oc1..sandbox"
DAY = 86400
MODELS = oci.object_storage.models
KMS = oci.key_management.models
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> OciSandboxCredentials:
    return write_sandbox_config(tmp_path_factory.mktemp("oci-fidelity"), NAMESPACE)


@pytest.fixture(scope="module")
def emulator(creds: OciSandboxCredentials) -> Iterator[OciEmulator]:
    emu = OciEmulator(public_key_pem=creds.public_key_path.read_bytes(), namespace=NAMESPACE).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def config(creds: OciSandboxCredentials) -> dict[str, Any]:
    return dict(oci.config.from_file(str(creds.config_path)))


@pytest.fixture(scope="module")
def client(config: dict[str, Any], emulator: OciEmulator) -> ObjectStorageClient:
    return oci.object_storage.ObjectStorageClient(config, service_endpoint=emulator.url,
                                                  retry_strategy=oci.retry.NoneRetryStrategy())


@pytest.fixture(scope="module")
def kms(config: dict[str, Any], emulator: OciEmulator) -> Vault:
    # The vault is served on the emulator's own URL: both clients take it as their service endpoint.
    none = oci.retry.NoneRetryStrategy()
    return (oci.key_management.KmsManagementClient(config, service_endpoint=emulator.url, retry_strategy=none),
            oci.key_management.KmsCryptoClient(config, service_endpoint=emulator.url, retry_strategy=none))


@pytest.fixture
def no_faults(emulator: OciEmulator) -> Iterator[str]:
    """The emulator URL, with the fault plan cleared afterwards whatever the test did."""
    yield emulator.url
    clear_faults(emulator.url)


def control(url: str, path: str, method: str = "POST") -> Any:
    req = urllib.request.Request(url + path, data=b"" if method == "POST" else None, method=method)
    with _OPENER.open(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def advance(emulator: OciEmulator, seconds: float) -> datetime:
    """Move the emulator's clock through its unsigned control path; returns the new emulator time."""
    now = control(emulator.url, f"/_emulator/clock?advance={seconds}")["now"]
    return datetime.fromisoformat(now.replace("Z", "+00:00"))


def new_bucket(client: ObjectStorageClient, versioning: str = "Disabled") -> str:
    name = f"f-{uuid.uuid4().hex[:12]}"
    client.create_bucket(NAMESPACE, MODELS.CreateBucketDetails(name=name, compartment_id=COMPARTMENT,
                                                               versioning=versioning))
    return name


def service_error(fn: Callable[[], object]) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as info:
        fn()
    return info.value


def days(n: int) -> Any:
    return MODELS.Duration(time_amount=n, time_unit="DAYS")


def versions(client: ObjectStorageClient, bucket: str, name: str) -> list[Any]:
    rows = client.list_object_versions(NAMESPACE, bucket, prefix=name, fields="name,size,etag").data.items
    return [r for r in rows if r.name == name]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ------------------------------------------------------------------------------------------ retention

def test_retention_blocks_delete_and_overwrite_until_the_duration_has_passed(
        client: ObjectStorageClient, emulator: OciEmulator) -> None:
    bucket = new_bucket(client)
    client.put_object(NAMESPACE, bucket, "kept", b"v1")
    client.create_retention_rule(NAMESPACE, bucket, MODELS.CreateRetentionRuleDetails(
        display_name="one-day", duration=days(1)))
    err = service_error(lambda: client.delete_object(NAMESPACE, bucket, "kept"))
    assert (err.status, err.code) == (409, "Conflict") and "one-day" in err.message
    err = service_error(lambda: client.put_object(NAMESPACE, bucket, "kept", b"v2"))
    assert err.status == 409
    assert client.get_object(NAMESPACE, bucket, "kept").data.content == b"v1"
    # A multipart commit is an overwrite too.
    up = client.create_multipart_upload(NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="kept")).data
    etag = client.upload_part(NAMESPACE, bucket, "kept", up.upload_id, 1, b"v3").headers["etag"]
    commit = MODELS.CommitMultipartUploadDetails(parts_to_commit=[
        MODELS.CommitMultipartUploadPartDetails(part_num=1, etag=etag)])
    assert service_error(lambda: client.commit_multipart_upload(
        NAMESPACE, bucket, "kept", up.upload_id, commit)).status == 409
    # A new name is not retained by anything yet: writing it is fine, deleting it is not.
    client.put_object(NAMESPACE, bucket, "fresh", b"x")
    assert service_error(lambda: client.delete_object(NAMESPACE, bucket, "fresh")).status == 409

    advance(emulator, DAY - 60)
    assert service_error(lambda: client.delete_object(NAMESPACE, bucket, "kept")).status == 409
    advance(emulator, 120)
    client.delete_object(NAMESPACE, bucket, "kept")
    assert service_error(lambda: client.head_object(NAMESPACE, bucket, "kept")).status == 404


def test_retention_rule_crud(client: ObjectStorageClient) -> None:
    bucket = new_bucket(client)
    first = client.create_retention_rule(NAMESPACE, bucket, MODELS.CreateRetentionRuleDetails(
        display_name="first", duration=MODELS.Duration(time_amount=2, time_unit="YEARS"))).data
    second = client.create_retention_rule(NAMESPACE, bucket, MODELS.CreateRetentionRuleDetails(
        display_name="legal-hold")).data   # no duration: indefinite
    assert second.duration is None and first.duration.time_unit == "YEARS"
    listed = client.list_retention_rules(NAMESPACE, bucket).data.items
    assert [r.id for r in listed] == [second.id, first.id]   # newest first
    got = client.get_retention_rule(NAMESPACE, bucket, first.id)
    assert got.data.display_name == "first" and got.headers["etag"] == first.etag
    updated = client.update_retention_rule(NAMESPACE, bucket, first.id, MODELS.UpdateRetentionRuleDetails(
        duration=days(10)), if_match=first.etag).data
    assert (updated.duration.time_amount, updated.duration.time_unit) == (10, "DAYS")
    assert updated.etag != first.etag
    assert service_error(lambda: client.update_retention_rule(
        NAMESPACE, bucket, first.id, MODELS.UpdateRetentionRuleDetails(display_name="x"),
        if_match=first.etag)).status == 412
    # An indefinite rule retains everything, whatever its age.
    client.put_object(NAMESPACE, bucket, "o", b"1")
    client.delete_retention_rule(NAMESPACE, bucket, first.id)
    assert service_error(lambda: client.delete_object(NAMESPACE, bucket, "o")).status == 409
    client.delete_retention_rule(NAMESPACE, bucket, second.id)
    assert client.list_retention_rules(NAMESPACE, bucket).data.items == []
    assert service_error(lambda: client.get_retention_rule(NAMESPACE, bucket, second.id)).status == 404
    client.delete_object(NAMESPACE, bucket, "o")


def test_locked_rule_cannot_be_deleted_and_only_grows(client: ObjectStorageClient, emulator: OciEmulator) -> None:
    bucket = new_bucket(client)
    now = advance(emulator, 0)
    too_soon = MODELS.CreateRetentionRuleDetails(duration=days(1), time_rule_locked=now + timedelta(days=13))
    assert service_error(lambda: client.create_retention_rule(NAMESPACE, bucket, too_soon)).status == 400
    no_duration = MODELS.CreateRetentionRuleDetails(time_rule_locked=now + timedelta(days=20))
    assert service_error(lambda: client.create_retention_rule(NAMESPACE, bucket, no_duration)).status == 400

    lock_at = now + timedelta(days=14, minutes=1)
    rule = client.create_retention_rule(NAMESPACE, bucket, MODELS.CreateRetentionRuleDetails(
        display_name="locked", duration=days(30), time_rule_locked=lock_at)).data
    assert rule.time_rule_locked is not None
    # During the documented 14-day delay the rule can still change.
    rule = client.update_retention_rule(NAMESPACE, bucket, rule.id, MODELS.UpdateRetentionRuleDetails(
        duration=days(20))).data
    advance(emulator, 15 * DAY)
    err = service_error(lambda: client.delete_retention_rule(NAMESPACE, bucket, rule.id))
    assert err.status == 409 and "locked" in err.message
    assert service_error(lambda: client.update_retention_rule(
        NAMESPACE, bucket, rule.id, MODELS.UpdateRetentionRuleDetails(duration=days(5)))).status == 409
    assert service_error(lambda: client.update_retention_rule(
        NAMESPACE, bucket, rule.id, MODELS.UpdateRetentionRuleDetails(display_name="renamed"))).status == 409
    grown = client.update_retention_rule(NAMESPACE, bucket, rule.id, MODELS.UpdateRetentionRuleDetails(
        duration=days(40))).data
    assert grown.duration.time_amount == 40
    assert [r.id for r in client.list_retention_rules(NAMESPACE, bucket).data.items] == [rule.id]


def test_retention_and_versioning_exclude_each_other(client: ObjectStorageClient, emulator: OciEmulator) -> None:
    versioned = new_bucket(client, "Enabled")
    assert service_error(lambda: client.create_retention_rule(
        NAMESPACE, versioned, MODELS.CreateRetentionRuleDetails(duration=days(1)))).status == 409
    # Documented: rules may be added once versioning is suspended, and then it cannot be resumed.
    first = client.put_object(NAMESPACE, versioned, "o", b"old").headers["version-id"]
    client.put_object(NAMESPACE, versioned, "o", b"new")
    client.update_bucket(NAMESPACE, versioned, MODELS.UpdateBucketDetails(versioning="Suspended"))
    rule = client.create_retention_rule(NAMESPACE, versioned, MODELS.CreateRetentionRuleDetails(
        duration=days(1))).data
    assert service_error(lambda: client.update_bucket(
        NAMESPACE, versioned, MODELS.UpdateBucketDetails(versioning="Enabled"))).status == 409
    # Retention covers each retained version too, by its own age.
    assert service_error(lambda: client.delete_object(NAMESPACE, versioned, "o", version_id=first)).status == 409
    advance(emulator, DAY + 1)
    client.delete_object(NAMESPACE, versioned, "o", version_id=first)
    client.delete_retention_rule(NAMESPACE, versioned, rule.id)
    client.update_bucket(NAMESPACE, versioned, MODELS.UpdateBucketDetails(versioning="Enabled"))


# ---------------------------------------------------------------------------------------- replication

def _replicated_pair(client: ObjectStorageClient, *, source_versioning: str = "Disabled") -> tuple[str, str, Any]:
    source, dest = new_bucket(client, source_versioning), new_bucket(client)
    policy = client.create_replication_policy(NAMESPACE, source, MODELS.CreateReplicationPolicyDetails(
        name="to-phoenix", destination_region_name="us-phoenix-1", destination_bucket_name=dest)).data
    return source, dest, policy


def test_replication_makes_the_destination_read_only(client: ObjectStorageClient) -> None:
    client_put_before = new_bucket(client)
    source, dest, policy = _replicated_pair(client)
    assert policy.status == "ACTIVE" and policy.destination_bucket_name == dest
    assert client.get_bucket(NAMESPACE, dest).data.is_read_only is True
    assert client.get_bucket(NAMESPACE, source).data.replication_enabled is True
    for attempt in (lambda: client.put_object(NAMESPACE, dest, "x", b"1"),
                    lambda: client.delete_object(NAMESPACE, dest, "x"),
                    lambda: client.create_multipart_upload(NAMESPACE, dest,
                                                           MODELS.CreateMultipartUploadDetails(object="x")),
                    lambda: client.update_bucket(NAMESPACE, dest, MODELS.UpdateBucketDetails(versioning="Enabled")),
                    lambda: client.delete_bucket(NAMESPACE, dest)):
        err = service_error(attempt)
        assert (err.status, err.code) == (403, "BucketIsReadonly")
    assert [p.id for p in client.list_replication_policies(NAMESPACE, source).data] == [policy.id]
    assert client.get_replication_policy(NAMESPACE, source, policy.id).data.name == "to-phoenix"
    sources = client.list_replication_sources(NAMESPACE, dest).data
    assert [(s.policy_name, s.source_bucket_name) for s in sources] == [("to-phoenix", source)]
    # Documented constraints: one policy per source, one source per destination, no chains.
    second = MODELS.CreateReplicationPolicyDetails(name="again", destination_region_name="us-phoenix-1",
                                                   destination_bucket_name=client_put_before)
    assert service_error(lambda: client.create_replication_policy(NAMESPACE, source, second)).status == 409
    chained = MODELS.CreateReplicationPolicyDetails(name="chain", destination_region_name="us-phoenix-1",
                                                    destination_bucket_name=client_put_before)
    assert service_error(lambda: client.create_replication_policy(NAMESPACE, dest, chained)).status == 409
    missing = MODELS.CreateReplicationPolicyDetails(name="m", destination_region_name="us-phoenix-1",
                                                    destination_bucket_name="no-such-bucket")
    assert service_error(lambda: client.create_replication_policy(
        NAMESPACE, client_put_before, missing)).status == 400
    versioned_dest = new_bucket(client, "Enabled")
    to_versioned = MODELS.CreateReplicationPolicyDetails(name="v", destination_region_name="us-phoenix-1",
                                                         destination_bucket_name=versioned_dest)
    assert service_error(lambda: client.create_replication_policy(
        NAMESPACE, client_put_before, to_versioned)).status == 409


def test_replication_propagates_puts_and_deletes(client: ObjectStorageClient) -> None:
    source, dest, _ = _replicated_pair(client)
    data = b"replicate me"
    put = client.put_object(NAMESPACE, source, "a/b", data, opc_meta={"subject": "u1"})
    head = client.head_object(NAMESPACE, dest, "a/b").headers
    # Documented: same name, metadata, ETag and MD5; its own version id.
    assert head["etag"] == put.headers["etag"] and head["content-md5"] == md5_b64(data)
    assert head["opc-meta-subject"] == "u1" and head["version-id"] != put.headers["version-id"]
    assert client.get_object(NAMESPACE, dest, "a/b").data.content == data
    client.put_object(NAMESPACE, source, "a/b", b"second")
    assert client.get_object(NAMESPACE, dest, "a/b").data.content == b"second"
    # Deletes propagate: the destination's object goes too.
    client.delete_object(NAMESPACE, source, "a/b")
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "a/b")).status == 404


def test_replication_starts_at_policy_creation(client: ObjectStorageClient) -> None:
    source, dest = new_bucket(client), new_bucket(client)
    client.put_object(NAMESPACE, source, "before", b"old")
    client.create_replication_policy(NAMESPACE, source, MODELS.CreateReplicationPolicyDetails(
        name="p", destination_region_name="us-phoenix-1", destination_bucket_name=dest))
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "before")).status == 404
    client.put_object(NAMESPACE, source, "after", b"new")
    assert client.get_object(NAMESPACE, dest, "after").data.content == b"new"


def test_replication_of_a_versioned_source(client: ObjectStorageClient) -> None:
    source, dest, _ = _replicated_pair(client, source_versioning="Enabled")
    v1 = client.put_object(NAMESPACE, source, "o", b"one").headers["version-id"]
    v2 = client.put_object(NAMESPACE, source, "o", b"two").headers["version-id"]
    assert client.get_object(NAMESPACE, dest, "o").data.content == b"two"
    assert len(versions(client, dest, "o")) == 1       # previous versions never replicate
    # Deleting a previous version changes nothing in the destination.
    client.delete_object(NAMESPACE, source, "o", version_id=v1)
    assert client.get_object(NAMESPACE, dest, "o").data.content == b"two"
    # Deleting the object (a delete marker at the source) deletes it in the destination.
    client.delete_object(NAMESPACE, source, "o")
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "o")).status == 404
    assert {r.version_id for r in versions(client, source, "o")} >= {v2}
    # A version-pinned delete of the latest version is an object delete too.
    v3 = client.put_object(NAMESPACE, source, "p", b"three").headers["version-id"]
    assert client.get_object(NAMESPACE, dest, "p").data.content == b"three"
    client.delete_object(NAMESPACE, source, "p", version_id=v3)
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "p")).status == 404


def test_replication_lag_and_stop(client: ObjectStorageClient, emulator: OciEmulator) -> None:
    source, dest, policy = _replicated_pair(client)
    client.put_object(NAMESPACE, source, "kept", b"k")
    # Paused replication is a lagging destination: the product must check it, not assume it.
    assert control(emulator.url, "/_emulator/replication?paused=true") == {"paused": True, "pending": 0}
    try:
        client.put_object(NAMESPACE, source, "late", b"l")
        client.delete_object(NAMESPACE, source, "kept")
        assert service_error(lambda: client.head_object(NAMESPACE, dest, "late")).status == 404
        assert client.get_object(NAMESPACE, dest, "kept").data.content == b"k"
        assert control(emulator.url, "/_emulator/replication", "GET")["pending"] == 2
    finally:
        control(emulator.url, "/_emulator/replication?paused=false")
    assert client.get_object(NAMESPACE, dest, "late").data.content == b"l"
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "kept")).status == 404
    # Making the destination writable stops replication; the source's policy reports a client error.
    client.make_bucket_writable(NAMESPACE, dest)
    assert client.get_bucket(NAMESPACE, dest).data.is_read_only is False
    assert client.get_replication_policy(NAMESPACE, source, policy.id).data.status == "CLIENT_ERROR"
    client.put_object(NAMESPACE, source, "after-stop", b"s")
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "after-stop")).status == 404
    client.put_object(NAMESPACE, dest, "own", b"writable again")
    client.delete_replication_policy(NAMESPACE, source, policy.id)
    assert client.list_replication_policies(NAMESPACE, source).data == []
    assert client.get_bucket(NAMESPACE, source).data.replication_enabled is False


def test_deleting_the_policy_leaves_the_destination_read_only(client: ObjectStorageClient) -> None:
    source, dest, policy = _replicated_pair(client)
    client.delete_replication_policy(NAMESPACE, source, policy.id)
    assert client.list_replication_sources(NAMESPACE, dest).data == []
    client.put_object(NAMESPACE, source, "x", b"1")
    assert service_error(lambda: client.head_object(NAMESPACE, dest, "x")).status == 404
    assert service_error(lambda: client.put_object(NAMESPACE, dest, "x", b"1")).status == 403
    # Documented: to replicate to that destination again, create a new policy.
    again = client.create_replication_policy(NAMESPACE, source, MODELS.CreateReplicationPolicyDetails(
        name="again", destination_region_name="us-phoenix-1", destination_bucket_name=dest)).data
    client.put_object(NAMESPACE, source, "y", b"2")
    assert client.get_object(NAMESPACE, dest, "y").data.content == b"2"
    client.delete_replication_policy(NAMESPACE, source, again.id)
    client.make_bucket_writable(NAMESPACE, dest)
    client.delete_object(NAMESPACE, dest, "y")
    client.delete_bucket(NAMESPACE, dest)


# ------------------------------------------------------------------------------------------ versioning

def test_versioning_suspended_behaves_as_documented(client: ObjectStorageClient) -> None:
    bucket = new_bucket(client, "Enabled")
    v1 = client.put_object(NAMESPACE, bucket, "o", b"1").headers["version-id"]
    v2 = client.put_object(NAMESPACE, bucket, "o", b"2").headers["version-id"]
    client.update_bucket(NAMESPACE, bucket, MODELS.UpdateBucketDetails(versioning="Suspended"))
    assert client.get_bucket(NAMESPACE, bucket).data.versioning == "Suspended"
    # Uploads behave as with versioning disabled, and the versions made while enabled are retained.
    v3 = client.put_object(NAMESPACE, bucket, "o", b"3").headers["version-id"]
    v4 = client.put_object(NAMESPACE, bucket, "o", b"4").headers["version-id"]
    assert [r.version_id for r in versions(client, bucket, "o")] == [v4, v2, v1]
    assert v3 not in {r.version_id for r in versions(client, bucket, "o")}
    assert client.get_object(NAMESPACE, bucket, "o").data.content == b"4"
    # A delete is permanent for what was written while suspended; the retained versions stay.
    resp = client.delete_object(NAMESPACE, bucket, "o")
    assert resp.headers["is-delete-marker"] == "true"
    rows = versions(client, bucket, "o")
    assert [r.version_id for r in rows][1:] == [v2, v1] and rows[0].is_delete_marker
    assert service_error(lambda: client.get_object(NAMESPACE, bucket, "o")).status == 404
    assert client.get_object(NAMESPACE, bucket, "o", version_id=v2).data.content == b"2"
    # A new object in a suspended bucket has a single entry: a delete removes it for good.
    client.put_object(NAMESPACE, bucket, "new", b"n")
    assert client.delete_object(NAMESPACE, bucket, "new").headers["is-delete-marker"] == "false"
    assert versions(client, bucket, "new") == []
    # Re-enabled, every write makes a version again.
    client.update_bucket(NAMESPACE, bucket, MODELS.UpdateBucketDetails(versioning="Enabled"))
    client.put_object(NAMESPACE, bucket, "new", b"a")
    client.put_object(NAMESPACE, bucket, "new", b"b")
    assert len(versions(client, bucket, "new")) == 2
    disabled = new_bucket(client)
    assert service_error(lambda: client.update_bucket(
        NAMESPACE, disabled, MODELS.UpdateBucketDetails(versioning="Suspended"))).status == 400


# ------------------------------------------------------------------------------------------ Vault (KMS)

def _p256_key(management: KmsManagementClient) -> Any:   # the key's model (oci.key_management.models.Key)
    return management.create_key(KMS.CreateKeyDetails(
        compartment_id=COMPARTMENT, display_name="attestation",
        key_shape=KMS.KeyShape(algorithm="ECDSA", length=32, curve_id="NIST_P256"),
        protection_mode="HSM")).data


def test_kms_signs_digests_with_a_p256_key(kms: Vault) -> None:
    management, crypto = kms
    key = _p256_key(management)
    assert key.lifecycle_state == "ENABLED" and key.key_shape.curve_id == "NIST_P256"
    assert management.get_key(key.id).data.current_key_version == key.current_key_version
    version = management.get_key_version(key.id, key.current_key_version).data
    public = serialization.load_pem_public_key(version.public_key.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"

    payload = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    digest = hashlib.sha256(payload).digest()
    signed = crypto.sign(KMS.SignDataDetails(
        key_id=key.id, message=base64.b64encode(digest).decode(), message_type="DIGEST",
        signing_algorithm="ECDSA_SHA_256")).data
    assert signed.key_version_id == key.current_key_version
    signature = base64.b64decode(signed.signature)
    # A real DER ECDSA signature over the digest: verifiable offline with the public key alone.
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, payload + b"!", ec.ECDSA(hashes.SHA256()))

    def verify(message: bytes, sig: str) -> bool:
        return bool(crypto.verify(KMS.VerifyDataDetails(
            key_id=key.id, key_version_id=signed.key_version_id, signature=sig,
            message=base64.b64encode(message).decode(), message_type="DIGEST",
            signing_algorithm="ECDSA_SHA_256")).data.is_signature_valid)
    assert verify(digest, signed.signature) is True
    assert verify(hashlib.sha256(b"other").digest(), signed.signature) is False


def test_kms_rejects_bad_requests(kms: Vault, emulator: OciEmulator) -> None:
    management, crypto = kms
    key = _p256_key(management)

    def sign(message: bytes, message_type: str = "DIGEST", algorithm: str = "ECDSA_SHA_256") -> Any:
        return crypto.sign(KMS.SignDataDetails(key_id=key.id, message=base64.b64encode(message).decode(),
                                               message_type=message_type, signing_algorithm=algorithm))
    assert service_error(lambda: sign(b"short")).status == 400                       # not a SHA-256 digest
    assert service_error(lambda: sign(hashlib.sha384(b"x").digest(), algorithm="ECDSA_SHA_384")).status == 400
    assert service_error(lambda: sign(b"x" * 4097, message_type="RAW")).status == 400   # documented 4 KiB cap
    assert sign(b"raw message", message_type="RAW").status == 200
    assert service_error(lambda: management.get_key("ocid1.key.oc1.sandbox.nope")).status == 404
    rsa = KMS.CreateKeyDetails(compartment_id=COMPARTMENT, display_name="rsa",
                               key_shape=KMS.KeyShape(algorithm="RSA", length=256))
    assert service_error(lambda: management.create_key(rsa)).status == 400
    # Vault requests are signature-checked like the object storage paths.
    req = urllib.request.Request(emulator.url + "/20180608/sign", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        _OPENER.open(req, timeout=10)
    assert info.value.code == 401


def test_kms_key_rotation_keeps_old_versions_verifiable(kms: Vault) -> None:
    management, crypto = kms
    key = _p256_key(management)
    digest = base64.b64encode(hashlib.sha256(b"m").digest()).decode()
    old = crypto.sign(KMS.SignDataDetails(key_id=key.id, message=digest, message_type="DIGEST",
                                          signing_algorithm="ECDSA_SHA_256")).data
    new_version = management.create_key_version(key.id).data
    assert management.get_key(key.id).data.current_key_version == new_version.id != old.key_version_id
    assert [v.id for v in management.list_key_versions(key.id).data] == [new_version.id, old.key_version_id]
    ok = crypto.verify(KMS.VerifyDataDetails(key_id=key.id, key_version_id=old.key_version_id,
                                             signature=old.signature, message=digest, message_type="DIGEST",
                                             signing_algorithm="ECDSA_SHA_256")).data
    assert ok.is_signature_valid is True


# ---------------------------------------------------------------------------------------------- faults

def test_fault_503_reaches_the_sdk_and_is_counted(client: ObjectStorageClient, no_faults: str) -> None:
    bucket = new_bucket(client)
    client.put_object(NAMESPACE, bucket, "o", b"data")
    before = get_faults(no_faults)["requests"].get("GetObject", 0)
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"503-slowdown"}),
                                    operations=frozenset({"GetObject"})))
    for _ in range(3):
        err = service_error(lambda: client.get_object(NAMESPACE, bucket, "o"))
        assert (err.status, err.code) == (503, "ServiceUnavailable")
    assert client.head_object(NAMESPACE, bucket, "o").status == 200   # other operations are untouched
    snapshot = get_faults(no_faults)
    assert snapshot["injected"] == {"503-slowdown": 3}
    assert snapshot["requests"]["GetObject"] == before + 3
    stats = control(no_faults, "/_emulator/stats", "GET")
    assert stats["requests"]["GetObject"] >= 3 and stats["errors"]["ServiceUnavailable"] >= 3
    clear_faults(no_faults)
    assert client.get_object(NAMESPACE, bucket, "o").data.content == b"data"


def test_fault_429_and_500(client: ObjectStorageClient, no_faults: str) -> None:
    bucket = new_bucket(client)
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"429"}), operations=frozenset({"PutObject"})))
    err = service_error(lambda: client.put_object(NAMESPACE, bucket, "o", b"x"))
    assert (err.status, err.code) == (429, "TooManyRequests")
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"500"}), operations=frozenset({"PutObject"})))
    assert service_error(lambda: client.put_object(NAMESPACE, bucket, "o", b"x")).status == 500
    clear_faults(no_faults)
    assert service_error(lambda: client.head_object(NAMESPACE, bucket, "o")).status == 404   # nothing was stored


def test_flipped_put_is_rejected_by_checksum_validation(client: ObjectStorageClient, emulator: OciEmulator,
                                                         no_faults: str) -> None:
    bucket = new_bucket(client)
    data = bytes(range(256)) * 8
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"flip-put"}), seed=7))
    err = service_error(lambda: client.put_object(NAMESPACE, bucket, "md5", data, content_md5=md5_b64(data)))
    assert (err.status, err.code) == (400, "UnmatchedContentMD5")
    crc = base64.b64encode(int(google_crc32c.value(data)).to_bytes(4, "big")).decode()
    err = service_error(lambda: client.put_object(NAMESPACE, bucket, "crc", data, opc_content_crc32c=crc,
                                                  opc_checksum_algorithm="CRC32C"))
    assert (err.status, err.code) == (400, "UnmatchedContentCRC32C")
    up = client.create_multipart_upload(NAMESPACE, bucket, MODELS.CreateMultipartUploadDetails(object="mp")).data
    err = service_error(lambda: client.upload_part(NAMESPACE, bucket, "mp", up.upload_id, 1, data,
                                                   content_md5=md5_b64(data)))
    assert err.status == 400
    # Without a checksum from the client, the flipped bytes are stored: only the client can notice.
    stored = client.put_object(NAMESPACE, bucket, "unchecked", data)
    clear_faults(no_faults)
    assert stored.headers["opc-content-md5"] != md5_b64(data)
    assert get_faults(no_faults)["injected"] == {}
    assert [name for name, _ in emulator.iter_objects(bucket)] == ["unchecked"]


def test_flipped_and_truncated_gets(client: ObjectStorageClient, no_faults: str) -> None:
    bucket = new_bucket(client)
    data = bytes(range(256)) * 64
    client.put_object(NAMESPACE, bucket, "o", data)
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"flip-get"}), seed=3))
    resp = client.get_object(NAMESPACE, bucket, "o")
    got = resp.data.content
    assert len(got) == len(data) and got != data
    assert sum(bin(a ^ b).count("1") for a, b in zip(got, data, strict=True)) == 1
    assert resp.headers["content-md5"] == md5_b64(data) != md5_b64(got)   # the client can tell
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"truncate"}), seed=3))
    with pytest.raises(ChunkedEncodingError):   # the vendored requests reports the short body
        client.get_object(NAMESPACE, bucket, "o").data.content  # noqa: B018 - reading is the point
    clear_faults(no_faults)
    assert client.get_object(NAMESPACE, bucket, "o").data.content == data


def test_resets_and_timeouts(client: ObjectStorageClient, emulator: OciEmulator, no_faults: str) -> None:
    bucket = new_bucket(client)
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"reset-before"}),
                                    operations=frozenset({"PutObject"})))
    with pytest.raises(oci.exceptions.RequestException):
        client.put_object(NAMESPACE, bucket, "before", b"1")
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"timeout"}), timeout_ms=1,
                                    operations=frozenset({"PutObject"})))
    with pytest.raises(oci.exceptions.RequestException):
        client.put_object(NAMESPACE, bucket, "timeout", b"1")
    # reset-after: the operation is done, only its answer is lost.
    set_faults(no_faults, FaultPlan(rate=1.0, kinds=frozenset({"reset-after"}),
                                    operations=frozenset({"PutObject"})))
    with pytest.raises(oci.exceptions.RequestException):
        client.put_object(NAMESPACE, bucket, "after", b"1")
    clear_faults(no_faults)
    names = sorted(name for name, _ in emulator.iter_objects(bucket))
    assert names == ["after"]
    assert client.get_object(NAMESPACE, bucket, "after").data.content == b"1"
