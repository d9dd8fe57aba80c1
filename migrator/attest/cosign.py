"""Co-signing: an independent custodian adds a signature to an attestation that already verifies."""

from __future__ import annotations

from collections.abc import Sequence

from migrator.attest.dsse import add_signature
from migrator.attest.keys import PublicKey, Signer, keyid, load_public_key_pem
from migrator.attest.verify import verify_attestation
from migrator.errors import InputError


def cosign(attestation: bytes, signer: Signer, trusted_keys: Sequence[PublicKey], *, threshold: int = 1) -> bytes:
    """Verify ``attestation`` (``threshold`` signatures from ``trusted_keys``), then append ``signer``'s.

    Raises VerificationError when the attestation does not verify (nothing is signed), InputError when
    ``signer`` has signed it already. The payload is untouched, so the result verifies wherever the
    original did, and counts one more distinct key.
    """
    if not trusted_keys:
        raise InputError("co-signing needs the public keys of the signers to check first")
    verify_attestation(attestation, trusted_keys, threshold=threshold)
    public = load_public_key_pem(signer.public_key_pem())
    if keyid(public) != signer.keyid:
        raise InputError("the signer's keyid is not the fingerprint of its public key")
    signed = add_signature(attestation, signer)
    # The new signature must verify too (a KMS could answer with anything).
    verify_attestation(signed, [public], threshold=1)
    return signed
