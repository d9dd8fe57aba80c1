"""The estate: the named locations a wave reads from and writes to (``[locations.NAME]`` in the wave file).

A location is one endpoint with its own credentials and region: the platform's own S3-compatible store,
AWS S3 in one region, GCS, OCI in one region. It says which buckets it serves. A row's URIs stay standard;
``resolve`` names the location of each (``s3://users/k`` -> ``s3://dc@users/k``), and a bucket that two
locations serve must be written qualified (``s3://dc@users/k``), so no address is ever ambiguous.

Identity is what an auditor re-checks: the kind, the region, the owner and the bucket. The endpoint URL is
kept only as information (an auditor may reach the same store by another hostname), and credentials and
profiles are never part of it: ``digest`` leaves them out, so a rotated token is not a change of estate.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migrator.errors import InputError
from migrator.limits import Rates
from migrator.uri import LOCATION_NAME, SCHEMES, ObjectURI

KINDS = SCHEMES                     # a location's kind is the scheme of its URIs: s3, gs, oci
ADDRESSING_STYLES = ("path", "virtual", "auto")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEYS = {
    # key: (kinds it applies to, type)
    "kind": (KINDS, str), "endpoint": (KINDS, str), "region": (KINDS, str), "owner": (KINDS, str),
    "buckets": (KINDS, list), "ca_bundle": (KINDS, str), "addressing_style": (("s3",), str),
    "profile": (("s3", "oci"), str), "credentials_file": (("gs",), str), "config_file": (("oci",), str),
    "requests_per_second": (KINDS, (int, float)), "bytes_per_second": (KINDS, int),
}


@dataclass(frozen=True)
class LocationSpec:
    """One named location, as the wave file gives it."""

    name: str
    kind: str
    buckets: tuple[str, ...]             # names or fnmatch patterns
    endpoint: str | None = None          # None: the cloud's own endpoint
    region: str | None = None            # declared; checked against the cloud where its API can say
    owner: str | None = None             # s3: account id; gs: project number; oci: namespace
    ca_bundle: str | None = None
    addressing_style: str | None = None  # s3 only
    profile: str | None = None           # s3: AWS profile; oci: config profile
    credentials_file: str | None = None  # gs: service-account JSON (None: ADC)
    config_file: str | None = None       # oci: SDK config file (None: the SDK's default)
    # This location's caps (None or 0: unlimited), on top of the wave's. Operational: not its identity.
    requests_per_second: float | None = None   # HTTP requests a second to this location's store
    bytes_per_second: int | None = None        # bytes a second copied from or to this location

    def __post_init__(self) -> None:
        Rates(self.requests_per_second, self.bytes_per_second, where=f"locations.{self.name}")

    @property
    def rates(self) -> Rates:
        return Rates(self.requests_per_second, self.bytes_per_second, where=f"locations.{self.name}")

    def serves(self, uri: ObjectURI) -> bool:
        if uri.scheme != self.kind:
            return False
        if self.kind == "oci" and self.owner and uri.namespace != self.owner:
            return False
        return any(fnmatch.fnmatchcase(uri.bucket, pattern) for pattern in self.buckets)

    def identity(self) -> dict[str, Any]:
        """What the statement names (and the estate digest covers): no credentials, no profiles, no files."""
        return {"name": self.name, "kind": self.kind, "region": self.region, "owner": self.owner,
                "endpoint": self.endpoint, "buckets": list(self.buckets)}


@dataclass(frozen=True)
class Estate:
    """Every location of a wave; empty when the wave file names none (the environment's endpoints apply)."""

    locations: tuple[LocationSpec, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.locations)

    def get(self, name: str) -> LocationSpec:
        for spec in self.locations:
            if spec.name == name:
                return spec
        raise InputError(f"no location named {name!r} (the wave file names: "
                         f"{', '.join(s.name for s in self.locations) or 'none'})")

    def resolve(self, uri: ObjectURI, *, field: str | None = None) -> ObjectURI:
        """The URI with its location named, or InputError saying why it has none or is ambiguous."""
        if not self.locations:
            if uri.at:
                raise InputError(f"{uri} names location {uri.at!r}, but no locations are given (a wave file's "
                                 "[locations.NAME] tables, with --wave)", field=field)
            return uri
        if uri.at:
            try:
                spec = self.get(uri.at)
            except InputError as exc:
                raise InputError(f"{uri}: {exc}", field=field) from None
            if not spec.serves(uri):
                raise InputError(f"{uri}: location {spec.name!r} ({spec.kind}) does not serve bucket "
                                 f"{uri.bucket!r}", field=field)
            return uri
        serving = [s.name for s in self.locations if s.serves(uri)]
        if not serving:
            # An OCI location's owner is its namespace: a bucket it lists, in another namespace, is not its.
            other = [s for s in self.locations if s.kind == uri.scheme == "oci" and s.owner
                     and any(fnmatch.fnmatchcase(uri.bucket, p) for p in s.buckets)]
            if other:
                raise InputError(f"{uri.location}: location {other[0].name!r} serves bucket {uri.bucket!r} in "
                                 f"namespace {other[0].owner!r} (its owner), not {uri.namespace!r}", field=field)
            raise InputError(f"no location serves {uri.location} (add it to a location's buckets)", field=field)
        if len(serving) > 1:
            forms = " or ".join(str(uri.placed(name)) for name in serving)
            raise InputError(f"{uri.location} is served by {', '.join(serving)}: write {forms}", field=field)
        return uri.placed(serving[0])

    def identities(self) -> list[dict[str, Any]]:
        return [s.identity() for s in sorted(self.locations, key=lambda s: s.name)]

    def binding(self) -> dict[str, dict[str, Any]]:
        """What a resume must keep: each location's identity without its endpoint, which is information
        only (the same store may be reached through another hostname)."""
        return {s.name: {k: v for k, v in s.identity().items() if k not in ("name", "endpoint")}
                for s in sorted(self.locations, key=lambda s: s.name)}


def parse_locations(table: Any, *, file: str | None) -> Estate:
    """``[locations.NAME]`` tables -> Estate; every error names the file and the field."""
    if not isinstance(table, dict):
        raise InputError("want [locations.NAME] tables", file=file, field="locations")
    specs = []
    for name, body in table.items():
        where = f"locations.{name}"
        if not LOCATION_NAME.match(name):
            raise InputError("a location name is [a-z][a-z0-9-]*, up to 32 characters", file=file, field=where)
        if not isinstance(body, dict):
            raise InputError("want a table", file=file, field=where)
        specs.append(_spec(name, body, file, where))
    return Estate(tuple(specs))


def _spec(name: str, body: Mapping[str, Any], file: str | None, where: str) -> LocationSpec:
    kind = body.get("kind")
    if kind not in KINDS:
        got = "none" if kind is None else repr(kind)
        raise InputError(f"want kind = one of {', '.join(KINDS)}, got {got}", file=file, field=f"{where}.kind")
    for key, value in body.items():
        if key not in _KEYS:
            raise InputError(f"unknown key (known: {', '.join(sorted(_KEYS))})", file=file, field=f"{where}.{key}")
        kinds, want = _KEYS[key]
        if kind not in kinds:
            raise InputError(f"{key} applies to {', '.join(kinds)} locations, not {kind}", file=file,
                             field=f"{where}.{key}")
        types = want if isinstance(want, tuple) else (want,)
        if type(value) not in types or (want is str and not value):   # exact: a TOML bool is not an int
            what = {str: "non-empty string", list: "list", int: "whole number (bytes a second)"}.get(
                types[0], "number")
            raise InputError(f"want a {what}, got {value!r}", file=file, field=f"{where}.{key}")
    buckets = body.get("buckets")
    if not buckets or not all(isinstance(b, str) and b for b in buckets):
        raise InputError("want buckets = a non-empty list of bucket names or patterns", file=file,
                         field=f"{where}.buckets")
    region = body.get("region")
    if region is not None and not _REGION.match(region):
        raise InputError(f"not a region name: {region!r}", file=file, field=f"{where}.region")
    style = body.get("addressing_style")
    if style is not None and style not in ADDRESSING_STYLES:
        raise InputError(f"want one of {', '.join(ADDRESSING_STYLES)}, got {style!r}", file=file,
                         field=f"{where}.addressing_style")
    endpoint = body.get("endpoint")
    if endpoint is not None and not endpoint.startswith(("https://", "http://")):
        raise InputError(f"want an http(s):// URL, got {endpoint!r}", file=file, field=f"{where}.endpoint")
    return LocationSpec(name=name, kind=kind, buckets=tuple(buckets), endpoint=endpoint, region=region,
                        owner=body.get("owner"), ca_bundle=body.get("ca_bundle"), addressing_style=style,
                        profile=body.get("profile"), credentials_file=body.get("credentials_file"),
                        config_file=body.get("config_file"), **_rates(body, file, where))


def _rates(body: Mapping[str, Any], file: str | None, where: str) -> dict[str, Any]:
    """The location's caps, checked (negative, infinite, not a number: refused, naming the field)."""
    try:
        rates = Rates(body.get("requests_per_second"), body.get("bytes_per_second"), where=where)
    except InputError as exc:
        raise InputError(str(exc.args[0]), file=file, field=exc.field) from None
    return {"requests_per_second": rates.requests_per_second, "bytes_per_second": rates.bytes_per_second}
