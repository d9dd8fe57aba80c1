"""Signer specs for the CLI, and signing with file keys through them (KMS signers: integration tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrator.attest import keys
from migrator.attest.dsse import sign_envelope
from migrator.attest.keys import load_public_key
from migrator.attest.kms import management_endpoint_for
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.signers import load_signer_spec
from migrator.attest.statement import PAYLOAD_TYPE
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError
from tests.unit.test_proofs import make_wave


@pytest.mark.parametrize("alg", ["ed25519", "ecdsa-p256"])
def test_file_specs_sign_verifiable_envelopes(tmp_path: Path, alg: keys.KeyAlgorithm) -> None:
    key, pub = keys.generate_keypair(tmp_path / "k", alg)
    for spec in (str(key), f"file:{key}"):
        signer = load_signer_spec(spec)
        assert signer.keyid == keys.keyid(load_public_key(pub))
        w = make_wave(3, signers=[signer])
        verify_attestation(w.envelope, Inputs(records=w.records, manifest=w.manifest),
                           AllOf(Threshold([load_public_key(pub)]), RequireRecords(), RequireManifest()))


def test_a_path_with_a_colon_is_a_path(tmp_path: Path) -> None:
    d = tmp_path / "a:b"
    key, _ = keys.generate_keypair(d)
    assert load_signer_spec(str(key)).keyid == keys.load_signer(key).keyid


def test_file_specs_keep_the_key_file_rules(tmp_path: Path) -> None:
    key, _ = keys.generate_keypair(tmp_path / "k")
    os.chmod(key, 0o644)
    with pytest.raises(InputError, match="chmod 600"):
        load_signer_spec(f"file:{key}")
    with pytest.raises(InputError, match="cannot read"):
        load_signer_spec(f"file:{tmp_path / 'missing.key'}")


@pytest.mark.parametrize("spec", ["ocikms:ocid1.key.oc1..x", "ocikms:@http://127.0.0.1:1", "ocikms:"])
def test_bad_oci_specs_are_refused_before_any_call(spec: str) -> None:
    with pytest.raises(InputError, match="ocikms:KEY_OCID@CRYPTO_ENDPOINT"):
        load_signer_spec(spec)


def test_awskms_needs_a_key() -> None:
    with pytest.raises(InputError, match="awskms"):
        load_signer_spec("awskms:")


def test_management_endpoint_follows_oci_naming() -> None:
    assert management_endpoint_for("https://abc-crypto.kms.us-ashburn-1.oraclecloud.com") == \
        "https://abc-management.kms.us-ashburn-1.oraclecloud.com"
    assert management_endpoint_for("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


def test_signers_sign_the_pae() -> None:
    # Whatever the signer, the signature covers PAE(payloadType, payload), as DSSE defines.
    signer = keys.FileSigner(keys.new_private_key("ecdsa-p256"))
    env = sign_envelope(b"{}", PAYLOAD_TYPE, [signer])
    from migrator.attest.dsse import pae, parse_envelope_strict

    parsed = parse_envelope_strict(env)
    assert keys.verify_signature(signer.public_key, pae(PAYLOAD_TYPE, b"{}"), parsed.signatures[0].sig)
    assert not keys.verify_signature(signer.public_key, b"{}", parsed.signatures[0].sig)
