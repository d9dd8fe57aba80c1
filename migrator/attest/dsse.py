"""DSSE v1 envelopes (secure-systems-lab/dsse), in one strict byte form.

The envelope file is the RFC 8785 canonical JSON of
  {"payload": b64(payload), "payloadType": T, "signatures": [{"keyid": K, "sig": b64(sig)}, ...]}
with standard, padded base64 and no trailing newline. Strict parsing accepts only that form, so
any changed byte of an envelope is either a form error or a changed payload/signature.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migrator.attest.canonical import NotCanonical, canonical_json, loads_canonical
from migrator.attest.keys import Signer
from migrator.errors import InputError, VerificationError


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding; lengths are ASCII decimal byte counts."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_bytes(self) -> bytes:
        return canonical_json({
            "payload": _b64(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures],
        })


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _form(msg: str) -> VerificationError:
    return VerificationError(f"envelope form: {msg}")


def _strict_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _form(f"{what} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _form(f"{what} is not standard base64") from None
    if _b64(raw) != value:  # rejects missing padding and non-zero trailing bits
        raise _form(f"{what} is not strict padded base64")
    return raw


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> bytes:
    """Sign PAE(payload_type, payload) with every signer; return the canonical envelope bytes."""
    if not signers:
        raise InputError("at least one signer is needed")
    message = pae(payload_type, payload)
    sigs: list[Signature] = []
    for signer in signers:
        if not signer.keyid or any(s.keyid == signer.keyid for s in sigs):
            raise InputError("every signer needs a distinct, non-empty keyid")
        sigs.append(Signature(signer.keyid, signer.sign(message)))
    return Envelope(payload, payload_type, tuple(sigs)).to_bytes()


def add_signature(envelope_bytes: bytes, signer: Signer) -> bytes:
    """Co-sign: append signer's signature over the same PAE. The payload is untouched.

    The caller should verify the envelope first; this only refuses a malformed envelope or a
    keyid that has signed already.
    """
    env = parse_envelope_strict(envelope_bytes)
    if not signer.keyid:
        raise InputError("signer has an empty keyid")
    if any(s.keyid == signer.keyid for s in env.signatures):
        raise InputError(f"key {signer.keyid} has already signed this envelope")
    sig = Signature(signer.keyid, signer.sign(env.pae()))
    return Envelope(env.payload, env.payload_type, (*env.signatures, sig)).to_bytes()


def parse_envelope_strict(data: bytes, *, allow_empty_keyid: bool = False) -> Envelope:
    """Parse the one accepted byte form, or raise VerificationError("envelope form: ...").

    ``allow_empty_keyid`` exists for foreign envelopes (the DSSE test vector signs with keyid "").
    """
    try:
        obj = loads_canonical(data)
    except NotCanonical as exc:
        raise _form(f"not canonical JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _form("not a JSON object")
    if set(obj) != {"payload", "payloadType", "signatures"}:
        raise _form("members must be exactly payload, payloadType, signatures")
    payload = _strict_b64(obj["payload"], "payload")
    payload_type = obj["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise _form("payloadType is not a non-empty string")
    raw_sigs = obj["signatures"]
    if not isinstance(raw_sigs, list) or not raw_sigs:
        raise _form("signatures is not a non-empty array")
    sigs: list[Signature] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw_sigs):
        if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
            raise _form(f"signature {i} must have exactly keyid and sig")
        kid = entry["keyid"]
        if not isinstance(kid, str) or (not kid and not allow_empty_keyid):
            raise _form(f"signature {i} keyid is not a non-empty string")
        if kid in seen:
            raise _form(f"duplicate keyid in signature {i}")
        seen.add(kid)
        sig = _strict_b64(entry["sig"], f"signature {i} sig")
        if not sig:
            raise _form(f"signature {i} sig is empty")
        sigs.append(Signature(kid, sig))
    return Envelope(payload, payload_type, tuple(sigs))
