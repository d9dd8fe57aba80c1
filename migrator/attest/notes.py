"""C2SP signed notes (c2sp.org/signed-note) and their verifier keys ("vkeys").

A signed note is a UTF-8 text ending in a newline, a blank line, then signature lines
``— <key name> base64(4-byte key ID || signature)``. Two signature types are supported:

- 0x01 Ed25519 (RFC 8032) over the note text; key ID = SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4];
- 0x02 ECDSA P-256 with SHA-256 over the note text, ASN.1 DER signature (as github.com/transparency-dev
  implements it, and as a KMS key signs a SHA-256 digest); key ID = SHA-256(DER SubjectPublicKeyInfo)[:4].

A vkey is ``<name>+<8 hex digits of the key ID>+base64(type || key)``, where ``key`` is the 32 raw bytes
for Ed25519 and the DER SubjectPublicKeyInfo for ECDSA. Nothing here imports stores or the pipeline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from migrator.attest.keys import PublicKey, Signer, load_public_key_pem, verify_signature
from migrator.errors import InputError, VerificationError

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
MAX_SIGNATURES = 100   # the spec asks verifiers to accept at least 16
_DASH = "\u2014"       # em dash that starts every signature line


# ---- key names, key IDs, vkeys --------------------------------------------------------------------------

def check_key_name(name: str) -> str:
    """Key names (and log origins) are non-empty, without Unicode spaces, '+' or control characters."""
    if not isinstance(name, str) or not name:
        raise InputError("a key name must be a non-empty string")
    for ch in name:
        if ch.isspace() or ch == "+" or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InputError(f"key name {name!r} must not contain spaces, '+' or control characters")
    return name


def _key_material(public_key: PublicKey) -> tuple[int, bytes]:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return SIG_ED25519, public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return SIG_ECDSA, public_key.public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    raise InputError("signed notes take Ed25519 or ECDSA P-256 keys only")


def key_id(name: str, sig_type: int, key: bytes) -> bytes:
    """The 4-byte key ID of the signature line."""
    if sig_type == SIG_ED25519:
        return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + key).digest()[:4]
    if sig_type == SIG_ECDSA:
        return hashlib.sha256(key).digest()[:4]
    raise InputError(f"unsupported signature type 0x{sig_type:02x}")


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted key: name, signature type and public key; its key ID follows from them."""

    name: str
    sig_type: int
    public_key: PublicKey
    key: bytes          # raw Ed25519 key or ECDSA SPKI DER, as encoded in the vkey
    key_id: bytes

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.sig_type]) + self.key)}"

    def verify(self, text: bytes, sig: bytes) -> bool:
        return verify_signature(self.public_key, text, sig)


def verifier_for(name: str, public_key: PublicKey) -> NoteVerifier:
    check_key_name(name)
    sig_type, key = _key_material(public_key)
    return NoteVerifier(name, sig_type, public_key, key, key_id(name, sig_type, key))


def vkey(name: str, public_key: PublicKey) -> str:
    """The verifier key string an auditor is given, e.g. ``log.example/migrations+1a2b3c4d+AXk...``."""
    return verifier_for(name, public_key).vkey()


def vkey_from_pem(name: str, pem: bytes) -> str:
    return vkey(name, load_public_key_pem(pem))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _strict_b64(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None


def parse_vkey(text: str) -> NoteVerifier:
    """Parse ``name+hash+base64(type||key)``; the hash must be the key's own key ID."""
    text = text.strip()
    parts = text.split("+", 2)  # the base64 part may itself contain '+'
    if len(parts) != 3:
        raise InputError("a vkey has the form name+hash+base64(type||key)")
    name, hash_hex, b64 = parts
    check_key_name(name)
    if len(hash_hex) != 8 or any(c not in "0123456789abcdef" for c in hash_hex):
        raise InputError("the vkey's key hash must be 8 lowercase hex digits")
    raw = _strict_b64(b64)
    if raw is None or len(raw) < 2:
        raise InputError("the vkey's key is not strict base64")
    sig_type, key = raw[0], raw[1:]
    public_key: PublicKey
    if sig_type == SIG_ED25519:
        if len(key) != 32:
            raise InputError("an Ed25519 vkey holds a 32-byte key")
        public_key = ed25519.Ed25519PublicKey.from_public_bytes(key)
    elif sig_type == SIG_ECDSA:
        try:
            loaded = serialization.load_der_public_key(key)
        except (ValueError, UnsupportedAlgorithm, InvalidKey):
            raise InputError("the ECDSA vkey does not hold a DER SubjectPublicKeyInfo") from None
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(loaded.curve, ec.SECP256R1):
            raise InputError("an ECDSA vkey must hold a P-256 key")
        public_key = loaded
    else:
        raise InputError(f"unsupported vkey signature type 0x{sig_type:02x}")
    kid = key_id(name, sig_type, key)
    if kid.hex() != hash_hex:
        raise InputError(f"the vkey's key hash {hash_hex} does not match its key ({kid.hex()})")
    return NoteVerifier(name, sig_type, public_key, key, kid)


# ---- signing ---------------------------------------------------------------------------------------------

class NoteSigner:
    """Signs note texts under a key name with any Signer (file key or KMS): Ed25519 or ECDSA P-256."""

    def __init__(self, name: str, signer: Signer) -> None:
        self.verifier = verifier_for(name, load_public_key_pem(signer.public_key_pem()))
        self._signer = signer

    @property
    def name(self) -> str:
        return self.verifier.name

    def signature_line(self, text: bytes) -> bytes:
        sig = self._signer.sign(text)
        return f"{_DASH} {self.name} {_b64(self.verifier.key_id + sig)}\n".encode()


def _check_text(text: bytes, what: str) -> str:
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in decoded):
        raise InputError(f"{what} holds control characters other than newline")
    return decoded


def sign_note(text: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """``text`` (ending in a newline), a blank line, then one signature line per signer."""
    _check_text(text, "note text")
    if not text.endswith(b"\n"):
        raise InputError("a note text must end with a newline")
    if not signers:
        raise InputError("a signed note needs at least one signer")
    return text + b"\n" + b"".join(s.signature_line(text) for s in signers)


# ---- parsing and verifying -------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    sig: bytes


@dataclass(frozen=True)
class Note:
    text: bytes
    signatures: tuple[NoteSignature, ...]


def _bad(msg: str) -> VerificationError:
    return VerificationError(f"signed note: {msg}")


def parse_note(data: bytes) -> Note:
    """Split a signed note into its text and signature lines (nothing verified yet)."""
    try:
        _check_text(data, "the note")
    except InputError as exc:
        raise _bad(str(exc)) from None
    if not data.endswith(b"\n"):
        raise _bad("does not end with a newline")
    cut = data.rfind(b"\n\n")
    if cut < 0:
        raise _bad("no blank line separates the text from the signatures")
    text, block = data[:cut + 1], data[cut + 2:]
    lines = block.decode("utf-8").split("\n")[:-1]
    if not lines:
        raise _bad("has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise _bad(f"has more than {MAX_SIGNATURES} signatures")
    sigs: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(_DASH + " "):
            raise _bad("a signature line does not start with an em dash and a space")
        name, sep, b64 = line[2:].rpartition(" ")
        if not sep or not name:
            raise _bad("a signature line lacks a key name")
        try:
            check_key_name(name)
        except InputError:
            raise _bad(f"bad key name in a signature line: {name!r}") from None
        raw = _strict_b64(b64)
        if raw is None or len(raw) < 5:
            raise _bad(f"the signature of {name} is not strict base64 of a key ID and a signature")
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(sigs))


def open_note(data: bytes, verifiers: Sequence[NoteVerifier]) -> tuple[bytes, tuple[str, ...]]:
    """Verify a signed note against trusted keys; return its text and the names whose signatures verified.

    Signatures of unknown keys (name and key ID not both matching) are ignored; a known key whose
    signature fails rejects the note; at least one known key must have signed.
    """
    note = parse_note(data)
    verified: list[str] = []
    for sig in note.signatures:
        for v in verifiers:
            if v.name == sig.name and v.key_id == sig.key_id:
                if not v.verify(note.text, sig.sig):
                    raise _bad(f"the signature by {v.name}+{v.key_id.hex()} does not verify")
                verified.append(v.name)
    if not verified:
        raise _bad("no signature by a trusted key")
    return note.text, tuple(verified)
