"""Signer specs, as the CLI takes them (``run --signing-key``, ``audit cosign --signing-key``).

    file:PATH  or a plain PATH          a PKCS#8 PEM private key file, mode 0600 (Ed25519 or ECDSA P-256)
    awskms:KEY_ID_OR_ARN_OR_ALIAS       an AWS KMS ECC_NIST_P256 key (boto3's endpoint, region, credentials)
    ocikms:KEY_OCID@CRYPTO_ENDPOINT     an OCI Vault ECDSA P-256 key; the OCI config comes from
                                        MIGRATOR_OCI_CONFIG / MIGRATOR_OCI_PROFILE (or the SDK default);
                                        the management endpoint from MIGRATOR_OCI_KMS_MANAGEMENT_ENDPOINT,
                                        else derived from the crypto endpoint ("-crypto." -> "-management.")
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from migrator.attest.keys import Signer, load_signer
from migrator.errors import InputError

SCHEMES = ("file", "awskms", "ocikms")


def load_signer_spec(spec: str, *, env: Mapping[str, str] | None = None) -> Signer:
    """Resolve a signer spec. Cloud signers fetch their public key now, so a bad key fails before any work."""
    e = os.environ if env is None else env
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        # A plain path (also one with a colon in it, such as C:\\keys or ./a:b, when no scheme matches).
        return load_signer(spec)
    if scheme == "file":
        return load_signer(rest)
    if scheme == "awskms":
        from migrator.attest.kms import AwsKmsSigner

        return AwsKmsSigner(rest)
    key_id, at, endpoint = rest.partition("@")
    if not at or not key_id or not endpoint:
        raise InputError("want ocikms:KEY_OCID@CRYPTO_ENDPOINT", field="signing_key")
    from migrator.attest.kms import OciKmsSigner

    return OciKmsSigner(key_id, endpoint, management_endpoint=e.get("MIGRATOR_OCI_KMS_MANAGEMENT_ENDPOINT") or None,
                        config_path=e.get("MIGRATOR_OCI_CONFIG") or None,
                        profile=e.get("MIGRATOR_OCI_PROFILE") or "DEFAULT")
