"""Sandbox credentials for the OCI SDK: an RSA key pair and a config file that point at the emulator.

The values look like real OCIDs so that the SDK's own validation accepts them; nothing here is a
secret outside the sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REGION = "us-ashburn-1"


@dataclass(frozen=True)
class OciSandboxCredentials:
    config_path: Path
    public_key_path: Path
    namespace: str
    fingerprint: str


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """OCI API key fingerprint: colon-separated hex MD5 of the SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _ocid(kind: str) -> str:
    token = base64.b32encode(secrets.token_bytes(30)).decode("ascii").lower().rstrip("=")
    return f"ocid1.{kind}.oc1..{token}"


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: never world-readable, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def write_sandbox_config(directory: Path, namespace: str) -> OciSandboxCredentials:
    """Generate a key pair and an OCI config (profile DEFAULT) in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path = directory / "oci_api_key.pem"
    public_path = directory / "oci_api_key_public.pem"
    config_path = directory / "oci_config"
    _write_private(private_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    fp = fingerprint(key.public_key())
    config = (
        "[DEFAULT]\n"
        f"user={_ocid('user')}\n"
        f"tenancy={_ocid('tenancy')}\n"
        f"fingerprint={fp}\n"
        f"key_file={private_path.resolve()}\n"
        f"region={REGION}\n"
    )
    _write_private(config_path, config.encode("ascii"))
    return OciSandboxCredentials(config_path=config_path, public_key_path=public_path,
                                 namespace=namespace, fingerprint=fp)
