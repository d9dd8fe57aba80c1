"""Signer specs, as the CLI takes them (``run --signing-key``, ``audit cosign --signing-key``).

    file:PATH  or a plain PATH          a PKCS#8 PEM private key file, mode 0600 (Ed25519 or ECDSA P-256)
    awskms:KEY_ID_OR_ARN_OR_ALIAS       an AWS KMS ECC_NIST_P256 key (boto3's endpoint, region, credentials;
                                        ``SignerSettings.aws_region`` when neither the ARN nor boto3 names one)
    ocikms:KEY_OCID@CRYPTO_ENDPOINT     an OCI Vault ECDSA P-256 key; the OCI config file and profile from
                                        ``SignerSettings`` (or the SDK default), read by its
                                        ``load_oci_config``; the management endpoint from
                                        ``SignerSettings.oci_kms_management_endpoint``, else derived from the
                                        crypto endpoint ("-crypto." -> "-management.")

A spec is resolved once per process, by the entry point, and the ``Signer`` is passed down as a value: a cloud
signer makes its clients and fetches its public key when it is made. Nothing here reads the environment
or a config file: the caller resolves ``SignerSettings`` (``migrator.config`` does, from MIGRATOR_OCI_CONFIG
and the rest) and hands in the application's one OCI config reader (``migrator.oci_config.load``, which the
store registry uses too), so that attest/ imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from migrator.attest.keys import Signer, load_signer
from migrator.errors import InputError

SCHEMES = ("file", "awskms", "ocikms")

# (config file or None for the SDK's default, profile) -> that profile's OCI SDK config, checked.
OciConfigLoader = Callable[[str | None, str], Mapping[str, Any]]


@dataclass(frozen=True)
class SignerSettings:
    """What cloud signers need besides their spec. The defaults are the SDKs' own."""

    oci_config: str | None = None                   # the OCI SDK config file; None = the SDK's default location
    oci_profile: str = "DEFAULT"
    oci_kms_management_endpoint: str | None = None  # None = derived from the crypto endpoint
    aws_region: str | None = None                   # the last resort for awskms: key ids and aliases name none
    load_oci_config: OciConfigLoader | None = None  # for ocikms: migrator.oci_config.load (the entry point's)


def load_signer_spec(spec: str, settings: SignerSettings | None = None) -> Signer:
    """Resolve a signer spec. Cloud signers fetch their public key now, so a bad key fails before any work."""
    s = settings or SignerSettings()
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        # A plain path (also one with a colon in it, such as C:\\keys or ./a:b, when no scheme matches).
        return load_signer(spec)
    if scheme == "file":
        return load_signer(rest)
    if scheme == "awskms":
        from migrator.attest.kms import AwsKmsSigner

        return AwsKmsSigner(rest, default_region=s.aws_region)
    key_id, at, endpoint = rest.partition("@")
    if not at or not key_id or not endpoint:
        raise InputError("want ocikms:KEY_OCID@CRYPTO_ENDPOINT", field="signing_key")
    if s.load_oci_config is None:
        raise InputError("ocikms: no OCI config reader was given (SignerSettings.load_oci_config)",
                         field="signing_key")
    from migrator.attest.kms import OciKmsSigner

    return OciKmsSigner(key_id, endpoint, config=s.load_oci_config(s.oci_config, s.oci_profile),
                        management_endpoint=s.oci_kms_management_endpoint)
