"""KMS signers through the real SDKs: AWS KMS on moto's server, OCI Vault on the sandbox's OCI emulator.

Both make real ECDSA signatures. moto 5.2 ignores ``MessageType=DIGEST`` (it hashes the digest again,
which real KMS does not), so the fixture below makes moto's KMS sign a DIGEST as prehashed, as AWS
documents; everything else is moto's own.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import boto3
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from migrator.attest import keys
from migrator.attest.cosign import cosign
from migrator.attest.kms import AwsKmsSigner, OciKmsSigner
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.signers import SignerSettings, load_signer_spec
from migrator.attest.verify import verify_attestation
from migrator.config import load_wave
from migrator.errors import InputError, VerificationError
from migrator.sandbox.control import SandboxState
from tests.unit.test_proofs import make_wave

if TYPE_CHECKING:
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey

# ---- AWS KMS on moto ---------------------------------------------------------------------------------------

class _Seen(threading.local):
    digest = False


class MotoKms(TypedDict):
    url: str
    client: Any                       # boto3's KMS client: the dev stubs (boto3-stubs[s3]) type S3 alone
    seen: list[tuple[str, int]]       # (message type, length) of each message moto's KMS signed
    tamper: dict[str, ec.EllipticCurvePrivateKey | None]   # "key": sign with this key instead


@pytest.fixture(scope="module")
def moto_kms() -> Iterator[MotoKms]:
    from moto.kms import responses, utils
    from moto.server import ThreadedMotoServer

    seen: list[tuple[str, int]] = []
    state = _Seen()
    tamper: dict[str, ec.EllipticCurvePrivateKey | None] = {"key": None}
    original_response, original_sign = responses.KmsResponse.sign, utils.ECDSAPrivateKey.sign

    def response_sign(self: KmsResponse) -> str:
        state.digest = self._get_param("MessageType") == "DIGEST"
        try:
            return str(original_response(self))
        finally:
            state.digest = False

    def key_sign(self: ECDSAPrivateKey, message: bytes, algorithm: str) -> bytes:
        seen.append(("DIGEST" if state.digest else "RAW", len(message)))
        key = tamper["key"] or self.private_key
        if state.digest and algorithm == "ECDSA_SHA_256" and len(message) == 32:
            return bytes(key.sign(message, ec.ECDSA(Prehashed(hashes.SHA256()))))
        return bytes(original_sign(self, message, algorithm))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(responses.KmsResponse, "sign", response_sign)
        mp.setattr(utils.ECDSAPrivateKey, "sign", key_sign)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()  # port 0: the OS picked a free one
            url = f"http://{host}:{port}"
            client = boto3.client("kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                                  aws_secret_access_key="test",
                                  config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
            yield {"url": url, "client": client, "seen": seen, "tamper": tamper}
        finally:
            server.stop()


@pytest.fixture
def aws_env(moto_kms: MotoKms, monkeypatch: pytest.MonkeyPatch) -> MotoKms:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_kms["url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")   # boto3's own; AWS_REGION goes through the settings
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_kms


def _signers() -> SignerSettings:
    """As the CLI resolves them: from this process's environment."""
    return load_wave(None, {}, os.environ).signers


def _key(client: Any, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> dict[str, Any]:
    meta: dict[str, Any] = client.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    return meta


def test_aws_kms_signs_dsse_that_pem_public_keys_verify(aws_env: MotoKms, tmp_path: Path) -> None:
    meta = _key(aws_env["client"])
    aws_env["seen"].clear()
    signer = load_signer_spec(f"awskms:{meta['Arn']}", _signers())
    public = keys.load_public_key_pem(signer.public_key_pem())
    der = aws_env["client"].get_public_key(KeyId=meta["KeyId"])["PublicKey"]
    assert signer.keyid == __import__("hashlib").sha256(der).hexdigest()     # keyid = SHA-256 of the SPKI
    w = make_wave(4, signers=[signer])
    (tmp_path / "signing.pub").write_bytes(signer.public_key_pem())
    v = verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest),
                           AllOf(Threshold([keys.load_public_key(tmp_path / "signing.pub")]), RequireRecords(),
                                 RequireManifest()))
    assert v.signed_by == (signer.keyid,)
    assert aws_env["seen"] == [("DIGEST", 32)]                  # SHA-256(PAE), never the PAE itself
    theirs = SslibEnvelope.from_dict(json.loads(w.envelope))
    assert list(theirs.verify([SSlibKey.from_crypto(public, keyid=signer.keyid)], 1)) == [signer.keyid]


def test_aws_kms_by_key_id_and_alias(aws_env: MotoKms) -> None:
    meta = _key(aws_env["client"])
    aws_env["client"].create_alias(AliasName="alias/migrator-attest", TargetKeyId=meta["KeyId"])
    by_id = AwsKmsSigner(meta["KeyId"])
    by_alias = load_signer_spec("awskms:alias/migrator-attest", _signers())
    assert by_id.keyid == by_alias.keyid


def test_aws_region_reaches_the_kms_signer_through_the_settings(aws_env: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 reads AWS_DEFAULT_REGION only; the CLI's settings take AWS_REGION too and hand it to the signer.
    meta = _key(aws_env["client"])
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(InputError, match="no region"):
        load_signer_spec(f"awskms:{meta['KeyId']}")
    assert load_signer_spec(f"awskms:{meta['KeyId']}", _signers()).keyid == AwsKmsSigner(meta["Arn"]).keyid


def test_aws_kms_cosigns_a_file_key_attestation(aws_env: MotoKms) -> None:
    operator = keys.FileSigner(keys.new_private_key("ed25519"))
    w = make_wave(3, signers=[operator])
    custodian = AwsKmsSigner(_key(aws_env["client"])["Arn"])
    both = cosign(w.envelope, custodian, Threshold([operator.public_key]))
    v = verify_attestation(both, Inputs(), Threshold([operator.public_key, custodian.public_key], 2))
    assert set(v.signed_by) == {operator.keyid, custodian.keyid}


@pytest.mark.parametrize("spec,usage", [("ECC_NIST_P384", "SIGN_VERIFY"), ("RSA_2048", "SIGN_VERIFY"),
                                        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")])
def test_aws_kms_refuses_other_keys(aws_env: MotoKms, spec: str, usage: str) -> None:
    meta = _key(aws_env["client"], spec, usage)
    with pytest.raises(InputError):
        AwsKmsSigner(meta["Arn"])


def test_aws_kms_unknown_key_is_bad_input(aws_env: MotoKms) -> None:
    with pytest.raises(InputError, match="NotFoundException"):
        AwsKmsSigner("arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000")


def test_a_kms_signature_that_does_not_verify_is_refused(aws_env: MotoKms) -> None:
    signer = AwsKmsSigner(_key(aws_env["client"])["Arn"])
    aws_env["tamper"]["key"] = ec.generate_private_key(ec.SECP256R1())    # the service signs with another key
    try:
        with pytest.raises(VerificationError, match="does not verify"):
            make_wave(2, signers=[signer])
    finally:
        aws_env["tamper"]["key"] = None


# ---- OCI Vault on the sandbox's OCI emulator ------------------------------------------------------------------

COMPARTMENT = "ocid1.compartment.oc1..migrator-tests"


class NewKey(Protocol):
    def __call__(self, curve: str = "NIST_P256", length: int = 32) -> str: ...


class OciVault(TypedDict):
    url: str
    config: dict[str, Any]            # the OCI SDK's config dict
    mgmt: Any                         # oci.key_management.KmsManagementClient (the OCI SDK is untyped)
    new_key: NewKey


@pytest.fixture(scope="module")
def oci_vault(sandbox: SandboxState) -> OciVault:
    import oci

    config = oci.config.from_file(sandbox.oci_config, "DEFAULT")
    mgmt = oci.key_management.KmsManagementClient(config, sandbox.oci.url,
                                                  retry_strategy=oci.retry.NoneRetryStrategy())

    def new_key(curve: str = "NIST_P256", length: int = 32) -> str:
        try:
            details = oci.key_management.models.CreateKeyDetails(
                compartment_id=COMPARTMENT, display_name="attest",
                key_shape=oci.key_management.models.KeyShape(algorithm="ECDSA", length=length, curve_id=curve),
                protection_mode="SOFTWARE")
            return str(mgmt.create_key(details).data.id)
        except oci.exceptions.ServiceError as exc:
            if exc.status == 404:
                pytest.fail("the sandbox's OCI emulator serves no Vault (KMS) endpoint")
            raise

    return {"url": sandbox.oci.url, "config": config, "mgmt": mgmt, "new_key": new_key}


def _oci_signer(vault: OciVault, key_id: str) -> OciKmsSigner:
    return OciKmsSigner(key_id, vault["url"], config=vault["config"])


def test_oci_kms_signs_dsse_that_pem_public_keys_verify(oci_vault: OciVault) -> None:
    key_id = oci_vault["new_key"]()
    signer = load_signer_spec(f"ocikms:{key_id}@{oci_vault['url']}", _signers())   # MIGRATOR_OCI_CONFIG
    public = keys.load_public_key_pem(signer.public_key_pem())
    w = make_wave(4, signers=[signer])
    assert verify_attestation(w.envelope, Inputs(records=w.records),
                              AllOf(Threshold([public]), RequireRecords())).signed_by == (signer.keyid,)
    theirs = SslibEnvelope.from_dict(json.loads(w.envelope))
    assert list(theirs.verify([SSlibKey.from_crypto(public, keyid=signer.keyid)], 1)) == [signer.keyid]


def test_oci_kms_signatures_stay_pinned_to_the_version_read(oci_vault: OciVault) -> None:
    key_id = oci_vault["new_key"]()
    before = _oci_signer(oci_vault, key_id)
    oci_vault["mgmt"].create_key_version(key_id)                  # rotation
    after = _oci_signer(oci_vault, key_id)
    assert before.keyid != after.keyid
    w = make_wave(2, signers=[before, after])                     # both versions sign; both verify
    v = verify_attestation(w.envelope, Inputs(), Threshold([before.public_key, after.public_key], 2))
    assert set(v.signed_by) == {before.keyid, after.keyid}


def test_oci_kms_cosigns_and_refuses_other_curves(oci_vault: OciVault) -> None:
    operator = keys.FileSigner(keys.new_private_key("ecdsa-p256"))
    w = make_wave(3, signers=[operator])
    custodian = _oci_signer(oci_vault, oci_vault["new_key"]())
    both = cosign(w.envelope, custodian, Threshold([operator.public_key]))
    verify_attestation(both, Inputs(), Threshold([operator.public_key, custodian.public_key], 2))
    with pytest.raises(InputError, match="NIST_P256"):
        _oci_signer(oci_vault, oci_vault["new_key"]("NIST_P384", 48))
    with pytest.raises(InputError):
        _oci_signer(oci_vault, "ocid1.key.oc1.sandbox.does-not-exist")


def test_oci_kms_failures_go_through_the_one_retry_policy(oci_vault: OciVault) -> None:
    from migrator import retry
    from migrator.errors import StoreError
    from migrator.sandbox.faults import FaultPlan, clear_faults, get_faults, set_faults

    # The signer takes the retry it is given: here the stores' policy, whose back-off tests switch off.
    signer = OciKmsSigner(oci_vault["new_key"](), oci_vault["url"], config=oci_vault["config"], retry=retry.call)
    before = get_faults(oci_vault["url"])["requests"].get("Sign", 0)
    set_faults(oci_vault["url"], FaultPlan(rate=1.0, kinds=frozenset({"503-slowdown"}),
                                           operations=frozenset({"Sign"})))
    try:
        with pytest.raises(StoreError) as caught:
            make_wave(1, signers=[signer])
        assert caught.value.retryable and caught.value.status == 503
        assert get_faults(oci_vault["url"])["requests"]["Sign"] - before == retry.DEFAULT_ATTEMPTS
    finally:
        clear_faults(oci_vault["url"])
    make_wave(1, signers=[signer])


# ---- the signers' own retry (the default: attest/ imports nothing of the stores' policy) ---------------------

def test_kms_signers_retry_what_is_retryable_and_nothing_else() -> None:
    from migrator.attest import kms
    from migrator.errors import StoreError

    waits: list[float] = []
    calls = {"n": 0}

    def flaky(fails: int, error: StoreError) -> Any:
        def call() -> str:
            calls["n"] += 1
            if calls["n"] <= fails:
                raise error
            return "signed"
        return call

    assert kms.retry_call(flaky(2, StoreError("503", status=503, retryable=True)), sleep=waits.append) == "signed"
    assert calls["n"] == 3 and len(waits) == 2 and all(0 <= w <= 10 for w in waits)
    calls["n"], waits[:] = 0, []
    with pytest.raises(StoreError) as caught:
        kms.retry_call(flaky(99, StoreError("503", status=503, retryable=True)), sleep=waits.append)
    assert caught.value.status == 503 and calls["n"] == kms.ATTEMPTS and len(waits) == kms.ATTEMPTS - 1
    calls["n"] = 0
    with pytest.raises(StoreError):
        kms.retry_call(flaky(99, StoreError("400", status=400)), sleep=waits.append)
    assert calls["n"] == 1                                     # not retryable: raised at once
