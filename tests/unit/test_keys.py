"""Key files, keyids and signatures for Ed25519 and ECDSA P-256."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from migrator.attest import keys
from migrator.errors import InputError

ALGS: list[keys.KeyAlgorithm] = ["ed25519", "ecdsa-p256"]


@pytest.mark.parametrize("alg", ALGS)
def test_generate_load_sign_verify(tmp_path: Path, alg: keys.KeyAlgorithm) -> None:
    key_path, pub_path = keys.generate_keypair(tmp_path / "k", alg)
    assert key_path.name == "signing.key" and pub_path.name == "signing.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key_path.read_bytes()  # PKCS8
    assert b"BEGIN PUBLIC KEY" in pub_path.read_bytes()   # SubjectPublicKeyInfo
    signer = keys.load_signer(key_path)
    assert isinstance(signer, keys.Signer)
    assert signer.algorithm == alg
    pub = keys.load_public_key(pub_path)
    assert signer.keyid == keys.keyid(pub)
    assert signer.public_key_pem() == pub_path.read_bytes()
    sig = signer.sign(b"DSSEv1 1 t 1 p")
    assert keys.verify_signature(pub, b"DSSEv1 1 t 1 p", sig)
    assert not keys.verify_signature(pub, b"DSSEv1 1 t 1 q", sig)
    assert not keys.verify_signature(pub, b"DSSEv1 1 t 1 p", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert "PRIVATE" not in repr(signer)


def test_keyid_is_sha256_of_der_spki(tmp_path: Path) -> None:
    _, pub_path = keys.generate_keypair(tmp_path)
    pub = keys.load_public_key(pub_path)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys.keyid(pub) == hashlib.sha256(der).hexdigest()
    # The documented openssl recipe gives the same value, where openssl is installed.
    try:
        out = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(pub_path), "-outform", "DER"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    assert hashlib.sha256(out).hexdigest() == keys.keyid(pub)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    keys.generate_keypair(tmp_path)
    before = (tmp_path / "signing.key").read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        keys.generate_keypair(tmp_path)
    assert (tmp_path / "signing.key").read_bytes() == before
    (tmp_path / "signing.key").unlink()
    with pytest.raises(InputError, match="refusing to overwrite"):  # the .pub alone blocks too
        keys.generate_keypair(tmp_path)
    assert not (tmp_path / "signing.key").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_refuses_group_or_other_readable_key(tmp_path: Path, mode: int) -> None:
    key_path, _ = keys.generate_keypair(tmp_path)
    os.chmod(key_path, mode)
    with pytest.raises(InputError) as info:
        keys.load_signer(key_path)
    msg = info.value.diagnostics()
    assert "chmod 600" in msg
    assert "PRIVATE" not in msg and key_path.read_text().splitlines()[1] not in msg
    os.chmod(key_path, 0o600)
    keys.load_signer(key_path)


def test_bad_key_files_never_echo_content(tmp_path: Path) -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, secret.encode())
    os.close(fd)
    with pytest.raises(InputError) as info:
        keys.load_signer(path)
    assert "TOPSECRET" not in info.value.diagnostics()
    with pytest.raises(InputError):
        keys.load_signer(tmp_path / "missing.key")
    with pytest.raises(InputError):
        keys.load_public_key(path)


def test_rejects_other_curves(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InputError):
        keys.FileSigner(p384)
    pem = p384.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InputError):
        keys.load_public_key_pem(pem)
