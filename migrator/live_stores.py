"""The stores a live check (``audit check``) reads through, each reached before any sample is drawn.

The attestation's ``predicate.scope`` names the clouds the wave read from; destinations are in OCI. The
scope is read here without checking a signature: it only says which clouds to connect to, and
``check_live`` verifies the attestation before it trusts any of it. Reaching every store first makes a
missing endpoint or config a usage error (exit 2), not a finding about an object.
"""

from __future__ import annotations

from migrator.attest.live import StoreFor
from migrator.attest.verify import parse_attestation
from migrator.stores.registry import Stores

SCHEMES = ("s3", "gs", "oci")


def reach_scope(attestation: bytes, stores: Stores) -> StoreFor:
    """Build the store of every cloud in the attestation's scope, and OCI's; return ``stores.for_uri``."""
    scope = parse_attestation(attestation)[1].get("predicate", {}).get("scope") or []
    for scheme in sorted({str(loc).partition("://")[0] for loc in scope} | {"oci"}):
        if scheme in SCHEMES:
            stores.get(scheme)
    return stores.for_uri
