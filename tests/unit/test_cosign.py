"""Co-signatures, thresholds of distinct trusted keys, and tamper evidence of the envelope."""

from __future__ import annotations

import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from migrator.attest import dsse, keys
from migrator.attest.cosign import cosign
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError, VerificationError
from tests.unit.test_proofs import Wave, make_wave


def new(alg: keys.KeyAlgorithm = "ed25519") -> keys.FileSigner:
    return keys.FileSigner(keys.new_private_key(alg))


@pytest.fixture(scope="module")
def operator() -> keys.FileSigner:
    return new()


@pytest.fixture(scope="module")
def wave(operator: keys.FileSigner) -> Wave:
    return make_wave(5, signers=[operator])


def test_cosign_then_threshold_two(wave: Wave, operator: keys.FileSigner) -> None:
    custodian = new("ecdsa-p256")
    both = cosign(wave.envelope, custodian, Threshold([operator.public_key]))
    assert dsse.parse_envelope_strict(both).payload == dsse.parse_envelope_strict(wave.envelope).payload
    v = verify_attestation(both, Inputs(records=wave.records, manifest=wave.manifest),
                           AllOf(Threshold([operator.public_key, custodian.public_key], 2), RequireRecords(),
                                 RequireManifest()))
    assert set(v.signed_by) == {operator.keyid, custodian.keyid}
    # One key alone cannot meet a threshold of two, however often it is listed.
    with pytest.raises(VerificationError, match=r"^signature: 1 valid"):
        verify_attestation(wave.envelope, Inputs(), Threshold([operator.public_key, custodian.public_key], 2))
    with pytest.raises(InputError, match="distinct trusted keys"):
        verify_attestation(both, Inputs(), Threshold([operator.public_key, operator.public_key], 2))
    # A third, untrusted signature is ignored: it never counts.
    three = cosign(both, new(), Threshold([operator.public_key]))
    with pytest.raises(VerificationError, match=r"^signature: 1 valid"):
        verify_attestation(three, Inputs(), Threshold([operator.public_key, new().public_key], 2))
    assert len(verify_attestation(three, Inputs(),
                                  Threshold([operator.public_key, custodian.public_key], 2)).signed_by) == 2


def test_cosign_refuses_what_does_not_verify(wave: Wave, operator: keys.FileSigner) -> None:
    custodian = new()
    with pytest.raises(VerificationError, match=r"^signature"):
        cosign(wave.envelope, custodian, Threshold([new().public_key]))     # not the operator's key
    obj = json.loads(wave.envelope)
    obj["payload"] = obj["payload"][:-4] + "AAA="
    with pytest.raises(VerificationError):
        cosign(dsse.Envelope(b"x", "t", ()).to_bytes(), custodian, Threshold([operator.public_key]))
    with pytest.raises(InputError, match="already signed"):
        cosign(wave.envelope, operator, Threshold([operator.public_key]))
    with pytest.raises(InputError, match="public keys"):
        cosign(wave.envelope, custodian, Threshold([]))


def test_cosign_can_demand_a_threshold_first(wave: Wave, operator: keys.FileSigner) -> None:
    second = new()
    with pytest.raises(VerificationError, match=r"^signature"):
        cosign(wave.envelope, new(), Threshold([operator.public_key, second.public_key], 2))
    both = cosign(wave.envelope, second, Threshold([operator.public_key]))
    cosign(both, new(), Threshold([operator.public_key, second.public_key], 2))


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256"])
def test_securesystemslib_verifies_cosigned_envelopes(wave: Wave, operator: keys.FileSigner,
                                                      alg: keys.KeyAlgorithm) -> None:
    custodian = new(alg)
    both = cosign(wave.envelope, custodian, Threshold([operator.public_key]))
    theirs = SslibEnvelope.from_dict(json.loads(both))
    accepted = theirs.verify([SSlibKey.from_crypto(s.public_key, keyid=s.keyid) for s in (operator, custodian)], 2)
    assert set(accepted) == {operator.keyid, custodian.keyid}


def _every_byte_changed(env: bytes) -> list[bytes]:
    out = []
    for i in range(len(env)):
        for b in {env[i] ^ 0x01, env[i] ^ 0x20, ord("A") if env[i] != ord("A") else ord("B")}:
            out.append(env[:i] + bytes([b]) + env[i + 1:])
    return out


def test_every_single_byte_change_of_an_envelope_is_detected(wave: Wave, operator: keys.FileSigner) -> None:
    for bad in _every_byte_changed(wave.envelope):
        with pytest.raises(VerificationError):
            verify_attestation(bad, Inputs(), Threshold([operator.public_key]))


def test_every_single_byte_change_of_a_cosigned_envelope_is_detected(wave: Wave, operator: keys.FileSigner) -> None:
    # Every signature must count (threshold = signatures): a signature the verifier does not require is
    # ignored, and so are changes to it (DSSE's rule for untrusted keyids).
    custodian = new("ecdsa-p256")
    env = cosign(wave.envelope, custodian, Threshold([operator.public_key]))
    assert len(env) < 4000
    for bad in _every_byte_changed(env):
        with pytest.raises(VerificationError):
            verify_attestation(bad, Inputs(), Threshold([operator.public_key, custodian.public_key], 2))


def test_dropped_or_added_bytes_are_detected(wave: Wave, operator: keys.FileSigner) -> None:
    env = wave.envelope
    for bad in (env + b"\n", b" " + env, env[:-1], env.replace(b",", b", ", 1)):
        with pytest.raises(VerificationError, match=r"^envelope form"):
            verify_attestation(bad, Inputs(), Threshold([operator.public_key]))


def test_a_signature_by_an_untrusted_key_is_not_enough(wave: Wave) -> None:
    stranger = new()
    forged = make_wave(5, signers=[stranger])
    with pytest.raises(VerificationError, match=r"^signature: 0 valid"):
        verify_attestation(forged.envelope, Inputs(), Threshold(wave.pubs))
    # Naming a trusted key's keyid does not help a signature made by another key.
    obj = json.loads(forged.envelope)
    obj["signatures"][0]["keyid"] = wave.signers[0].keyid
    relabelled = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(VerificationError, match=r"^signature: signature with trusted keyid .* does not verify"):
        verify_attestation(relabelled, Inputs(), Threshold(wave.pubs))


def test_an_attestation_presented_with_another_waves_manifest_fails(wave: Wave, operator: keys.FileSigner) -> None:
    other = make_wave(5, signers=[operator], wave_id="wave-2",
                      recs=[{**json.loads(line), "source": "s3://elsewhere/" + str(i)}
                            for i, line in enumerate(wave.records.splitlines())])
    assert other.manifest != wave.manifest
    with pytest.raises(VerificationError, match=r"^subject manifest"):
        verify_attestation(wave.envelope, Inputs(manifest=other.manifest),
                           AllOf(Threshold([operator.public_key]), RequireManifest()))
    with pytest.raises(VerificationError, match=r"^subject records"):
        verify_attestation(wave.envelope, Inputs(records=other.records),
                           AllOf(Threshold([operator.public_key]), RequireRecords()))
