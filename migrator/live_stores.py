"""The stores a live check (``audit check``) reads through, each reached before any sample is drawn.

The attestation's ``predicate.scope`` names the clouds the wave read from; destinations are in OCI. A v3
attestation may also name the wave's locations (``predicate.locations``): then every record's URIs say
which location holds them (``s3://dc@users/key``), and the auditor maps each location to an endpoint and
read-only credentials of their own with a locations file (``--locations``, docs/attestation.md §11). That
file must name the same identity the attestation states (kind, region, owner): the owner goes into every
request where the API takes it (S3's ExpectedBucketOwner, the OCI namespace), so the auditor reaches the
same store, by whatever hostname.

The attestation is read here without checking a signature: it only says which stores to connect to, and
``check_live`` verifies the attestation before it trusts any of it. Reaching every store first makes a
missing endpoint, config or location a usage error (exit 2), not a finding about an object.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from migrator.attest.live import StoreFor
from migrator.attest.verify import parse_attestation
from migrator.errors import AccessDenied, InputError, NotFound, StoreError
from migrator.estate import Estate, parse_locations
from migrator.stores.registry import Stores
from migrator.toml_lines import located
from migrator.uri import split_location

SCHEMES = ("s3", "gs", "oci")
IDENTITY = ("kind", "region", "owner")   # what the auditor's file must state as the attestation does


def attested_locations(attestation: bytes) -> list[dict[str, Any]]:
    """The identities in ``predicate.locations`` (v3); [] when it is null or absent (v1, v2)."""
    found = parse_attestation(attestation)[1].get("predicate", {}).get("locations")
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in found):
        raise InputError("predicate.locations is neither null nor a list of named identities")
    return found


def _allowed(ident: Mapping[str, Any], key: str) -> list[Any]:
    """The attested values of ``key``: as declared; and when the wave declared none, also the one value
    the cloud reported for every bucket used there (``used[].region``/``owner``), so an auditor may pin
    the store to what was seen."""
    declared = ident.get(key)
    if key == "kind" or declared is not None:
        return [declared]
    reported = {u.get(key) for u in ident.get("used") or [] if isinstance(u, dict) and u.get(key) is not None}
    return [None, *reported] if len(reported) == 1 else [None]


def auditor_estate(attestation: bytes, file: Path | None) -> Estate:
    """The auditor's locations file, checked against the attestation's identities.

    Without locations in the attestation the file must be absent (the environment's endpoints serve, as
    before). With them, every attested location needs a ``[locations.NAME]`` table, and no other may be
    given. Raises InputError (exit 2), naming the file, the line and the field, before any store is built.
    """
    try:
        return _auditor_estate(attestation, file)
    except InputError as exc:
        raise located(exc, file) if file is not None and exc.file == str(file) else exc from None


def _auditor_estate(attestation: bytes, file: Path | None) -> Estate:
    """The auditor's locations file, checked against the attestation's identities.

    Without locations in the attestation the file must be absent (the environment's endpoints serve, as
    before). With them, every attested location needs a ``[locations.NAME]`` table, and no other may be
    given. Raises InputError (exit 2), naming the file and the field, before any store is built.
    """
    idents = attested_locations(attestation)
    if not idents:
        if file is not None:
            raise InputError("this attestation names no locations: leave out --locations (the environment's "
                             "endpoints serve its URIs)", file=str(file))
        return Estate()
    names = [str(i["name"]) for i in idents]
    if file is None:
        raise InputError(f"this attestation names location(s) {', '.join(names)}: map each to your endpoint "
                         "and read-only credentials with --locations FILE ([locations.NAME] tables)")
    where = str(file)
    try:
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the locations file: {exc.strerror}", file=where) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the file); TOML is UTF-8", file=where) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not TOML: {exc}", file=where) from None
    extra = sorted(set(doc) - {"locations"})
    if extra:
        raise InputError("a locations file holds only [locations.NAME] tables", file=where, field=extra[0])
    tables = doc.get("locations")
    if not isinstance(tables, dict):
        raise InputError("want [locations.NAME] tables", file=where, field="locations")
    missing = [n for n in names if n not in tables]
    if missing:
        raise InputError(f"the attestation names location(s) {', '.join(missing)}, which this file does not map "
                         f"(add [locations.{missing[0]}])", file=where, field="locations")
    unknown = sorted(set(tables) - set(names))
    if unknown:
        raise InputError(f"the attestation names no location {unknown[0]!r} (it names {', '.join(names)})",
                         file=where, field=f"locations.{unknown[0]}")
    by_name = {str(i["name"]): i for i in idents}
    bodies: dict[str, Any] = {}
    for name, body in tables.items():
        if not isinstance(body, dict):
            raise InputError("want a table", file=where, field=f"locations.{name}")
        attested_buckets = [b for b in by_name[name].get("buckets") or [] if isinstance(b, str)]
        if "buckets" in body and body["buckets"] != attested_buckets:
            raise InputError(f"the attestation says this location serves {attested_buckets}; leave buckets out",
                             file=where, field=f"locations.{name}.buckets")
        bodies[name] = {**body, "buckets": attested_buckets or ["*"]}   # which buckets: the attestation's word
    estate = parse_locations(bodies, file=where)
    for spec in estate.locations:
        ident = by_name[spec.name]
        for key in IDENTITY:
            allowed, got = _allowed(ident, key), getattr(spec, key)
            if got not in allowed:
                reported = f" (declared none; the cloud reported {allowed[1]!r})" if len(allowed) > 1 else ""
                raise InputError(f"the attestation's location {spec.name!r} has {key} {allowed[0]!r}{reported}, "
                                 f"this file says {got!r}: the auditor must reach the same store", file=where,
                                 field=f"locations.{spec.name}.{key}")
    return estate


def reach_scope(attestation: bytes, stores: Stores) -> StoreFor:
    """Build the store of every attested location, of every unnamed cloud in the scope, and OCI's when the
    attestation names no locations (its destinations are then the environment's OCI); return
    ``stores.for_uri``."""
    idents = attested_locations(attestation)
    for ident in sorted(idents, key=lambda i: str(i["name"])):
        stores.get(str(ident.get("kind")), str(ident["name"]))
    scope = parse_attestation(attestation)[1].get("predicate", {}).get("scope") or []
    unnamed = {"oci"} if not idents else set()
    for text in scope:
        try:
            location, _ = split_location(str(text))
        except InputError:
            continue   # check_live's verification decides what a malformed scope means
        if not location.at:
            unnamed.add(location.scheme)
    for scheme in sorted(unnamed & set(SCHEMES)):
        stores.get(scheme)
    return stores.for_uri


def probe_locations(attestation: bytes, stores: Stores, file: Path | None) -> None:
    """Reach each attested location once, through the auditor's own access, before any sample is drawn:
    identify one bucket the wave used there, and check the owner the cloud reports against the attested
    one. An unreachable store, refused credentials or another owner is the auditor's setting to fix
    (InputError, exit 2, naming the location), not a finding against the wave."""
    for ident in sorted(attested_locations(attestation), key=lambda i: str(i["name"])):
        name = str(ident["name"])
        used = [u for u in ident.get("used") or [] if isinstance(u, dict) and isinstance(u.get("bucket"), str)]
        if not used:
            continue   # nothing of the wave's there to check
        try:
            location, _ = split_location(used[0]["bucket"])
        except InputError:
            continue   # check_live's verification decides what a malformed statement means
        where, named = f"locations.{name}", str(file) if file else None
        try:
            found = stores.get(location.scheme, name).identify(location)
        except NotFound:
            continue   # an emptied bucket may since be gone: its records' own checks say what that means
        except AccessDenied as exc:
            raise InputError(f"location {name!r}: {location} refuses your access ({exc}); check the endpoint "
                             "and read-only credentials your locations file gives it", file=named,
                             field=where) from None
        except StoreError as exc:
            raise InputError(f"location {name!r}: cannot reach {location} ({type(exc).__name__}: {exc}); check "
                             "the endpoint your locations file gives it", file=named, field=where) from None
        attested = used[0].get("owner")
        if attested is not None and found.owner is not None and found.owner != attested:
            raise InputError(f"location {name!r}: {location} is owned by {found.owner}, the attestation says "
                             f"{attested}: your endpoint reaches another store",
                             file=named, field=where)
