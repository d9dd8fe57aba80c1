"""The stores a live check (``audit check``) reads through, each reached before any sample is drawn.

The attestation's ``predicate.scope`` names the clouds the wave read from; destinations are in OCI. The
scope is read here without checking a signature: it only says which clouds to connect to, and
``check_live`` verifies the attestation before it trusts any of it. Reaching every store first makes a
missing endpoint or config a usage error (exit 2), not a finding about an object.

An attestation that names locations (predicate v3 ``locations``) is read through the **auditor's
locations file**: ``[locations.NAME]`` per attested location, with the auditor's own endpoint and read-only
credentials, and the attested identity (kind, region, owner) repeated. A location the file does not name,
or names with another identity, is refused before any sample: the auditor must reach the same store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrator.attest.live import StoreFor
from migrator.attest.verify import parse_attestation
from migrator.errors import InputError
from migrator.estate import Estate
from migrator.stores.registry import Stores
from migrator.uri import split_location


def attested_locations(attestation: bytes) -> list[Mapping[str, Any]]:
    """The named locations' identities the attestation states (empty when it names none)."""
    locations = parse_attestation(attestation)[1].get("predicate", {}).get("locations") or []
    return [loc for loc in locations if isinstance(loc, Mapping)]


def check_auditor_locations(attested: list[Mapping[str, Any]], auditor: Estate, file: str | None) -> None:
    """Every attested location is in the auditor's file, with the same kind, region and owner."""
    for loc in attested:
        name = str(loc.get("name"))
        try:
            mine = auditor.get(name)
        except InputError:
            raise InputError(f"the attestation names location {name!r}; the auditor's locations file has no "
                             f"[locations.{name}]", file=file, field=f"locations.{name}") from None
        for member in ("kind", "region", "owner"):
            if getattr(mine, member) != loc.get(member):
                raise InputError(f"{member} {getattr(mine, member)!r} is not the attested {loc.get(member)!r}: "
                                 "the auditor's entry must reach the same store", file=file,
                                 field=f"locations.{name}.{member}")


def reach_scope(attestation: bytes, stores: Stores) -> StoreFor:
    """Build the store of every cloud in the attestation's scope, OCI's, and every named location's;
    return ``stores.for_uri``."""
    scope = parse_attestation(attestation)[1].get("predicate", {}).get("scope") or []
    wanted: set[tuple[str, str]] = set()
    for text in scope:
        try:
            place, _ = split_location(str(text))   # a scope entry may name a prefix after the bucket
        except InputError:
            continue   # not ours to reach; check_live refuses a malformed attestation
        wanted.add((place.scheme, place.at))
    named = attested_locations(attestation)
    wanted |= {(str(loc.get("kind")), str(loc.get("name"))) for loc in named}
    if not named:
        wanted.add(("oci", ""))
    for scheme, at in sorted(wanted):
        stores.get(scheme, at)
    return stores.for_uri
