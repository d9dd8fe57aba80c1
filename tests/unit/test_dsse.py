"""DSSE envelopes: the known-answer vector, strict form, and interop with securesystemslib."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from migrator.attest import dsse, keys
from migrator.attest.canonical import canonical_json
from migrator.errors import InputError, VerificationError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dsse-ed25519.json"


@pytest.fixture(scope="module")
def vec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def signer(alg: keys.KeyAlgorithm = "ed25519") -> keys.FileSigner:
    return keys.FileSigner(keys.new_private_key(alg))


def test_pae_example(vec: dict[str, Any]) -> None:
    ex = vec["pae_example"]
    assert dsse.pae(ex["payloadType"], ex["payload_utf8"].encode()) == ex["pae_utf8"].encode()


def test_vector_envelope_verifies(vec: dict[str, Any]) -> None:
    raw = canonical_json(vec["envelope"])
    with pytest.raises(VerificationError, match="envelope form"):
        dsse.parse_envelope_strict(raw)  # keyid "" is refused by default
    env = dsse.parse_envelope_strict(raw, allow_empty_keyid=True)
    assert env.pae().hex() == vec["pae_of_envelope_hex"]
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vec["ed25519_secret_key_hex_rfc8032_test1"])).public_key()
    assert keys.public_key_pem(pub).decode() == vec["ed25519_public_key_pem"]
    assert keys.verify_signature(pub, env.pae(), env.signatures[0].sig)
    assert not keys.verify_signature(pub, env.pae() + b" ", env.signatures[0].sig)
    # Re-signing with the same deterministic Ed25519 key gives the vector's signature bytes.
    ours = keys.FileSigner(ed25519.Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(vec["ed25519_secret_key_hex_rfc8032_test1"])))
    assert ours.sign(env.pae()) == env.signatures[0].sig


def test_envelope_form_is_canonical_without_newline() -> None:
    s = signer()
    data = dsse.sign_envelope(b'{"a":1}', "application/vnd.in-toto+json", [s])
    assert not data.endswith(b"\n")
    assert canonical_json(json.loads(data)) == data
    env = dsse.parse_envelope_strict(data)
    assert env.payload == b'{"a":1}' and env.signatures[0].keyid == s.keyid
    assert env.to_bytes() == data


def test_add_signature() -> None:
    a, b = signer(), signer("ecdsa-p256")
    data = dsse.add_signature(dsse.sign_envelope(b"p", "t", [a]), b)
    env = dsse.parse_envelope_strict(data)
    assert [s.keyid for s in env.signatures] == [a.keyid, b.keyid]
    for s, k in zip(env.signatures, (a, b), strict=True):
        assert keys.verify_signature(k.public_key, env.pae(), s.sig)
    with pytest.raises(InputError, match="already signed"):
        dsse.add_signature(data, a)
    with pytest.raises(InputError):
        dsse.sign_envelope(b"p", "t", [a, a])
    with pytest.raises(InputError):
        dsse.sign_envelope(b"p", "t", [])


def _mutate(data: bytes, fn: Callable[[Any], object]) -> bytes:   # fn edits the parsed envelope in place
    obj = json.loads(data)
    fn(obj)
    return canonical_json(obj)


@pytest.mark.parametrize("case", [
    "pretty", "newline", "extra", "missing", "sig_extra", "dup_keyid", "empty_sigs", "unpadded",
    "urlsafe", "trailing_bits", "empty_sig", "not_object", "sigs_not_list", "dup_member", "type_not_str",
])
def test_strict_parse_rejects(case: str) -> None:
    a, b = signer(), signer()
    good = dsse.sign_envelope(b"\xfb\xff payload", "t", [a])
    two = dsse.sign_envelope(b"x", "t", [a, b])
    p = json.loads(good)["payload"]
    bad = {
        "pretty": json.dumps(json.loads(good), indent=1).encode(),
        "newline": good + b"\n",
        "extra": _mutate(good, lambda o: o.update(extra=1)),
        "missing": _mutate(good, lambda o: o.pop("payloadType")),
        "sig_extra": _mutate(good, lambda o: o["signatures"][0].update(x="")),
        "dup_keyid": _mutate(two, lambda o: o["signatures"][1].update(keyid=o["signatures"][0]["keyid"])),
        "empty_sigs": _mutate(good, lambda o: o.update(signatures=[])),
        "unpadded": _mutate(good, lambda o: o.update(payload=p.rstrip("="))),
        "urlsafe": _mutate(good, lambda o: o.update(payload=base64.urlsafe_b64encode(b"\xfb\xff").decode())),
        "trailing_bits": _mutate(good, lambda o: o.update(payload="+/9=")),  # valid chars, non-zero pad bits
        "empty_sig": _mutate(good, lambda o: o["signatures"][0].update(sig="")),
        "not_object": b"[]",
        "sigs_not_list": _mutate(good, lambda o: o.update(signatures={})),
        "dup_member": good.replace(b'{"payload":', b'{"payload":"","payload":', 1),
        "type_not_str": _mutate(good, lambda o: o.update(payloadType=1)),
    }[case]
    with pytest.raises(VerificationError, match=r"^envelope form"):
        dsse.parse_envelope_strict(bad)


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256"])
def test_securesystemslib_verifies_our_envelope(alg: keys.KeyAlgorithm) -> None:
    s = signer(alg)
    data = dsse.sign_envelope(b'{"_type":"x"}', "application/vnd.in-toto+json", [s])
    their_env = SslibEnvelope.from_dict(json.loads(data))
    their_key = SSlibKey.from_crypto(s.public_key, keyid=s.keyid)
    accepted = their_env.verify([their_key], 1)
    assert list(accepted) == [s.keyid]
    assert their_env.pae() == dsse.pae("application/vnd.in-toto+json", b'{"_type":"x"}')
