"""Co-signing: an independent custodian adds a signature to an attestation that already verifies."""

from __future__ import annotations

from migrator.attest.dsse import add_signature
from migrator.attest.keys import Signer, keyid, load_public_key_pem
from migrator.attest.policy import Inputs, Policy, Threshold
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError


def cosign(attestation: bytes, signer: Signer, policy: Policy) -> bytes:
    """Verify ``attestation`` under ``policy`` (e.g. ``Threshold(trusted_keys, n)``), then append ``signer``'s.

    Raises VerificationError when the attestation does not verify (nothing is signed), InputError when
    ``signer`` has signed it already. The payload is untouched, so the result verifies wherever the
    original did, and counts one more distinct key. No file is read: the policy demands signatures alone.
    """
    verify_attestation(attestation, Inputs(), policy)
    public = load_public_key_pem(signer.public_key_pem())
    if keyid(public) != signer.keyid:
        raise InputError("the signer's keyid is not the fingerprint of its public key")
    signed = add_signature(attestation, signer)
    # The new signature must verify too (a KMS could answer with anything).
    verify_attestation(signed, Inputs(), Threshold([public]))
    return signed
