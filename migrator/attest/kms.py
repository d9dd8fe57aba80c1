"""Signers whose private key never leaves a cloud KMS: AWS KMS and OCI Vault, ECDSA P-256 keys.

Both APIs cap raw messages at 4 KiB, so the signer sends SHA-256(PAE) as a DIGEST and asks for
ECDSA_SHA_256: that is an ordinary ECDSA-SHA256 signature over the PAE, DER-encoded, which verifies with
the key's PEM public key alone. The public key (and so the keyid) is fetched once, when the signer is
made; every signature is checked against it before it is used.

SDK retries are off. Each signer takes a ``retry`` callable, by default ``retry_call`` here: a StoreError
marked retryable (a 408/429/5xx status, a connection failure, the services' own throttling codes) is tried
again, up to ATTEMPTS calls in all, after exponential back-off with full jitter; anything else is raised at
once. It is the signers' own, so that attest/ imports nothing of the stores' retry policy (``migrator.retry``
has the same shape and can be passed in instead).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from migrator.attest.keys import PublicKey, keyid, public_key_pem, verify_signature
from migrator.errors import AccessDenied, InputError, StoreError, VerificationError

T = TypeVar("T")
_TIMEOUT = (10.0, 60.0)
_AWS_ARN = re.compile(r"arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key|alias)/.+")
ATTEMPTS = 6
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class RetryPolicy(Protocol):
    def __call__(self, fn: Callable[[], T], /) -> T: ...


def retry_call(fn: Callable[[], T], *, attempts: int = ATTEMPTS,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; again after a retryable StoreError, waiting up to 0.2 s x 2**n (at most 10 s)."""
    attempt = 1
    while True:
        try:
            return fn()
        except StoreError as exc:
            if not exc.retryable or attempt >= attempts:
                raise
        sleep(random.uniform(0.0, min(10.0, 0.2 * 2 ** attempt)))  # noqa: S311 - back-off jitter, not a secret
        attempt += 1


def _retryable_status(status: int | None) -> bool:
    return status is not None and status in RETRYABLE_STATUS


def _p256(der_or_pem: bytes, what: str) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if der_or_pem.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(der_or_pem)
        else:
            key = serialization.load_der_public_key(der_or_pem)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError(f"{what}: the public key cannot be read") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"{what}: not an ECDSA P-256 key")
    return key


class _KmsSigner(abc.ABC):
    """The shared half: keyid, PEM, and the check of each signature the service returns."""

    def __init__(self, public_key: PublicKey, name: str) -> None:
        self._public = public_key
        self._keyid = keyid(public_key)
        self._name = name

    @property
    def keyid(self) -> str:
        return self._keyid

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._public)

    @abc.abstractmethod
    def _sign_digest(self, digest: bytes) -> bytes:
        """The DER ECDSA signature of a SHA-256 digest, made by the service."""

    def sign(self, pae: bytes) -> bytes:
        sig = self._sign_digest(hashlib.sha256(pae).digest())
        if not verify_signature(self._public, pae, sig):
            raise VerificationError(f"signature: {self._name} returned a signature that its public key "
                                    "does not verify over the PAE")
        return sig

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, keyid={self._keyid!r})"


# ---- AWS KMS -------------------------------------------------------------------------------------------

def _aws_call(what: str, fn: Callable[[], T], retry: RetryPolicy) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    def guarded() -> T:
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NotFoundException", "InvalidKeyUsageException", "KMSInvalidStateException",
                        "DisabledException", "ValidationException", "InvalidArnException"):
                raise InputError(f"{what}: {code}") from None
            if code in ("AccessDeniedException", "KMSInvalidSignatureException") or status == 403:
                raise AccessDenied(f"{what}: {code or status}", status=status, code=code) from None
            raise StoreError(f"{what}: {code or status}", status=status, code=code,
                             retryable=_retryable_status(status) or code in (
                                 "KMSInternalException", "DependencyTimeoutException", "ThrottlingException"),
                             ) from None
        except (BotoCoreError, ConnectionError, TimeoutError) as exc:
            raise StoreError(f"{what}: {type(exc).__name__}", retryable=True) from None

    return retry(guarded)


class AwsKmsSigner(_KmsSigner):
    """An AWS KMS key of spec ECC_NIST_P256 and usage SIGN_VERIFY, by key id, ARN or alias.

    The endpoint and credentials come from boto3's own configuration (``AWS_ENDPOINT_URL_KMS`` or
    ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ...). The region: ``region``, else the one an ARN names,
    else boto3's, else ``default_region`` (the caller's resolved settings: boto3 does not read AWS_REGION).
    """

    def __init__(self, key_id: str, *, client: Any = None, region: str | None = None,
                 endpoint_url: str | None = None, default_region: str | None = None,
                 retry: RetryPolicy = retry_call) -> None:
        if not key_id:
            raise InputError("awskms: a key id, ARN or alias is needed")
        if client is None:
            import boto3
            from botocore.config import Config

            m = _AWS_ARN.fullmatch(key_id)
            session = boto3.session.Session(region_name=region or (m.group(1) if m else None))
            if session.region_name is None and default_region:
                session = boto3.session.Session(region_name=default_region)
            if session.region_name is None:
                raise InputError("awskms: no region; set AWS_DEFAULT_REGION or give the key's ARN")
            client = session.client("kms", endpoint_url=endpoint_url, config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=_TIMEOUT[0],
                read_timeout=_TIMEOUT[1]))
        self._client = client
        self._key_id = key_id
        self._retry = retry
        what = f"awskms {key_id}"
        resp = _aws_call(f"{what}: GetPublicKey", lambda: client.get_public_key(KeyId=key_id), retry)
        if resp.get("KeyUsage") != "SIGN_VERIFY" or "ECDSA_SHA_256" not in resp.get("SigningAlgorithms", []):
            raise InputError(f"{what}: not a SIGN_VERIFY key offering ECDSA_SHA_256")
        spec = resp.get("KeySpec") or resp.get("CustomerMasterKeySpec")
        if spec != "ECC_NIST_P256":
            raise InputError(f"{what}: key spec is {spec}, want ECC_NIST_P256")
        # Sign with the resolved key ARN so that an alias moved later cannot switch keys under us.
        self._arn = str(resp.get("KeyId") or key_id)
        super().__init__(_p256(resp["PublicKey"], what), what)

    def _sign_digest(self, digest: bytes) -> bytes:
        resp = _aws_call(f"{self._name}: Sign", lambda: self._client.sign(
            KeyId=self._arn, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"), self._retry)
        return bytes(resp["Signature"])


# ---- OCI Vault -------------------------------------------------------------------------------------------

def _oci_call(what: str, fn: Callable[[], T], retry: RetryPolicy) -> T:
    import oci

    def guarded() -> T:
        try:
            return fn()
        except oci.exceptions.ServiceError as exc:
            status, code = exc.status, str(exc.code)
            if status in (400, 404, 409):
                raise InputError(f"{what}: {status} {code}") from None
            if status in (401, 403):
                raise AccessDenied(f"{what}: {status} {code}", status=status, code=code) from None
            raise StoreError(f"{what}: {status} {code}", status=status, code=code,
                             retryable=_retryable_status(status)) from None
        except (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, ConnectionError,
                TimeoutError) as exc:
            raise StoreError(f"{what}: {type(exc).__name__}", retryable=True) from None

    return retry(guarded)


def management_endpoint_for(crypto_endpoint: str) -> str:
    """A vault's management endpoint: OCI names it like the crypto one with "-management" for "-crypto"."""
    return crypto_endpoint.replace("-crypto.", "-management.", 1)


class OciKmsSigner(_KmsSigner):
    """An OCI Vault ECDSA key (curve NIST_P256), signing through ``KmsCryptoClient.sign``.

    The public key comes from the vault's management endpoint (``get_key`` then ``get_key_version`` of the
    current version); signatures are pinned to that key version. ``config`` is the OCI SDK config of one
    profile, read and checked by the caller (the entry point's loader, ``migrator.oci_config.load``, which
    reports a bad file or key without quoting it; attest/ reads no config file of its own).
    """

    def __init__(self, key_id: str, crypto_endpoint: str, *, config: Mapping[str, Any],
                 management_endpoint: str | None = None, retry: RetryPolicy = retry_call) -> None:
        import oci

        if not key_id or not crypto_endpoint:
            raise InputError("ocikms: a key OCID and the vault's crypto endpoint are needed")
        # The signer's own retry is the policy: neither the SDK's retries nor its circuit breaker.
        kwargs: dict[str, Any] = {"retry_strategy": oci.retry.NoneRetryStrategy(), "timeout": _TIMEOUT,
                                  "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy()}
        self._crypto = oci.key_management.KmsCryptoClient(dict(config), crypto_endpoint, **kwargs)
        mgmt = oci.key_management.KmsManagementClient(
            dict(config), management_endpoint or management_endpoint_for(crypto_endpoint), **kwargs)
        what = f"ocikms {key_id}"
        self._retry = retry
        key = _oci_call(f"{what}: GetKey", lambda: mgmt.get_key(key_id).data, retry)
        shape = key.key_shape
        if (getattr(shape, "algorithm", None) != "ECDSA" or getattr(shape, "curve_id", None) != "NIST_P256"
                or getattr(key, "lifecycle_state", "ENABLED") != "ENABLED"):
            raise InputError(f"{what}: not an enabled ECDSA NIST_P256 key")
        self._key_id = key_id
        self._version = str(key.current_key_version)
        version = _oci_call(f"{what}: GetKeyVersion", lambda: mgmt.get_key_version(key_id, self._version).data,
                            retry)
        pem = getattr(version, "public_key", None)
        if not pem:
            raise InputError(f"{what}: the key version has no public key")
        super().__init__(_p256(str(pem).encode("ascii"), what), what)

    def _sign_digest(self, digest: bytes) -> bytes:
        from oci.key_management.models import SignDataDetails

        details = SignDataDetails(message=base64.b64encode(digest).decode("ascii"), key_id=self._key_id,
                                  key_version_id=self._version, signing_algorithm="ECDSA_SHA_256",
                                  message_type="DIGEST")
        data = _oci_call(f"{self._name}: Sign", lambda: self._crypto.sign(details).data, self._retry)
        try:
            return base64.b64decode(data.signature, validate=True)
        except (TypeError, ValueError):
            raise VerificationError(f"signature: {self._name} returned a signature that is not base64") from None
