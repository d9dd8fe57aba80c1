"""Signing keys: Ed25519 and ECDSA P-256 in PEM files, and the keyid fingerprint.

keyid = lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of the public key. It is what the
OpenSSL command `openssl pkey -pubin -in signing.pub -outform DER | sha256sum` prints.

Signatures: Ed25519 (RFC 8032, pure) over the DSSE PAE; ECDSA P-256 with SHA-256 over the PAE,
DER-encoded (ecdsa-sha2-nistp256). Error messages never include key material.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from migrator.errors import InputError
from migrator.files import create_exclusive

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
KeyAlgorithm = Literal["ed25519", "ecdsa-p256"]

KEY_FILE = "signing.key"
PUB_FILE = "signing.pub"


@runtime_checkable
class Signer(Protocol):
    """Signs exact bytes (the DSSE PAE). Cloud KMS signers implement the same three members."""

    @property
    def keyid(self) -> str: ...

    def sign(self, pae: bytes) -> bytes: ...

    def public_key_pem(self) -> bytes: ...


def _check_public(key: object) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise InputError("unsupported key type: only Ed25519 and ECDSA P-256 keys are accepted")


def keyid(public_key: PublicKey) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def verify_signature(public_key: PublicKey, pae: bytes, sig: bytes) -> bool:
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(sig, pae)
        else:
            _check_public(public_key)
            public_key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class FileSigner:
    """A private key held in memory, loaded from a PKCS8 PEM file or generated."""

    def __init__(self, private_key: PrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey) and not isinstance(
                private_key.curve, ec.SECP256R1):
            raise InputError("unsupported key: ECDSA keys must use the P-256 curve")
        if not isinstance(private_key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise InputError("unsupported key type: only Ed25519 and ECDSA P-256 keys are accepted")
        self._key = private_key
        self._public = private_key.public_key()
        self._keyid = keyid(self._public)

    @property
    def keyid(self) -> str:
        return self._keyid

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def algorithm(self) -> KeyAlgorithm:
        return "ed25519" if isinstance(self._key, ed25519.Ed25519PrivateKey) else "ecdsa-p256"

    def sign(self, pae: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(pae)
        return self._key.sign(pae, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> bytes:
        return public_key_pem(self._public)

    def __repr__(self) -> str:  # never show the key
        return f"FileSigner(keyid={self._keyid!r})"


def new_private_key(algorithm: KeyAlgorithm = "ed25519") -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise InputError(f"unknown key algorithm {algorithm!r}: use ed25519 or ecdsa-p256")


def generate_keypair(out_dir: Path, algorithm: KeyAlgorithm = "ed25519") -> tuple[Path, Path]:
    """Write out_dir/signing.key (PKCS8 PEM, mode 0600) and out_dir/signing.pub (SPKI PEM).

    Refuses to overwrite either file. The key file is created with mode 0600 from the start,
    so it is never readable by others, not even briefly.
    """
    out_dir = Path(out_dir)
    key_path, pub_path = out_dir / KEY_FILE, out_dir / PUB_FILE
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists; refusing to overwrite a key", file=str(path))
    private_key = new_private_key(algorithm)
    key_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"cannot create {key_path}: {exc.strerror}", file=str(key_path)) from None
    try:
        create_exclusive(key_path, key_pem, mode=0o600)
    except FileExistsError:
        raise InputError(f"{key_path} already exists; refusing to overwrite a key", file=str(key_path)) from None
    try:
        create_exclusive(pub_path, public_key_pem(private_key.public_key()), mode=0o644)
    except FileExistsError as exc:
        raise InputError(f"cannot create {pub_path}: {exc.strerror}", file=str(pub_path)) from None
    return key_path, pub_path


def load_signer(path: Path | str) -> FileSigner:
    """Load an unencrypted PKCS8 PEM private key. Refuses a file readable by group or others."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read signing key: {exc.strerror}", file=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("signing key is not a regular file", file=str(path))
    if st.st_mode & 0o077:
        raise InputError(
            f"signing key is readable or writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"fix it with: chmod 600 {path}", file=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read signing key: {exc.strerror}", file=str(path)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InputError("signing key is encrypted; migrator needs an unencrypted PKCS8 key",
                         file=str(path)) from None
    except (ValueError, UnsupportedAlgorithm):
        # The parser's message could quote the file; say only what is wrong.
        raise InputError("signing key is not a PEM private key", file=str(path)) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise InputError("unsupported key type: only Ed25519 and ECDSA P-256 keys are accepted",
                         file=str(path))
    return FileSigner(key)


def load_public_key_pem(data: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("not a PEM public key (SubjectPublicKeyInfo)") from None
    return _check_public(key)


def load_public_key(path: Path | str) -> PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read public key: {exc.strerror}", file=str(path)) from None
    try:
        return load_public_key_pem(data)
    except InputError as exc:
        raise InputError(str(exc), file=str(path)) from None
