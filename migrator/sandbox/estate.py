"""The sandbox's estate as a wave file's ``[locations.*]`` tables (issue 15), and buckets made by location.

Six locations over the five endpoints of :mod:`migrator.sandbox.control`:

========  ====  ========  ==============  ============  ======================================
name      kind  server    region          owner         credentials
========  ====  ========  ==============  ============  ======================================
dc        s3    s3dc      us-east-1       000000000042  AWS profile ``sandbox-dc``, path-style
aws-us    s3    s3        us-east-1       123456789012  AWS profile ``sandbox-aws``
aws-sg    s3    s3        ap-southeast-1  123456789012  AWS profile ``sandbox-aws``
gcp       gs    gcs       us-east1        424242424242  none (the emulator is anonymous)
oci-us    oci   oci       us-ashburn-1    sandboxns     the sandbox's OCI config, ``DEFAULT``
oci-eu    oci   oci_eu    eu-frankfurt-1  sandboxns     the sandbox's OCI config, ``DEFAULT``
========  ====  ========  ==============  ============  ======================================

Every endpoint is ``127.0.0.1:PORT``, so every region here is declared, never verified. The two AWS
locations share one server: only their buckets' LocationConstraint tells them apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from migrator.sandbox.buckets import create_bucket, endpoint
from migrator.sandbox.control import (
    AWS_OWNER,
    AWS_PROFILE_AWS,
    AWS_PROFILE_DC,
    AWS_REGION,
    AWS_SG_REGION,
    DC_OWNER,
    DC_REGION,
    NAMESPACE,
    OCI_EU_REGION,
    OCI_REGION,
    SandboxState,
)
from migrator.sandbox.gcs.service import PROJECT_NUMBER

GCP_REGION = "us-east1"  # the location of the gcp location's buckets (made by create_location_bucket)
OCI_PROFILE = "DEFAULT"


@dataclass(frozen=True)
class SandboxLocation:
    name: str
    kind: str    # the URI scheme: s3 | gs | oci
    server: str  # the SandboxState field of its endpoint
    region: str
    owner: str
    profile: str | None = None


LOCATIONS: tuple[SandboxLocation, ...] = (
    SandboxLocation("dc", "s3", "s3dc", DC_REGION, DC_OWNER, AWS_PROFILE_DC),
    SandboxLocation("aws-us", "s3", "s3", AWS_REGION, AWS_OWNER, AWS_PROFILE_AWS),
    SandboxLocation("aws-sg", "s3", "s3", AWS_SG_REGION, AWS_OWNER, AWS_PROFILE_AWS),
    SandboxLocation("gcp", "gs", "gcs", GCP_REGION, PROJECT_NUMBER),
    SandboxLocation("oci-us", "oci", "oci", OCI_REGION, NAMESPACE, OCI_PROFILE),
    SandboxLocation("oci-eu", "oci", "oci_eu", OCI_EU_REGION, NAMESPACE, OCI_PROFILE),
)
_BY_NAME = {loc.name: loc for loc in LOCATIONS}


def location(name: str) -> SandboxLocation:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"no sandbox location {name!r} (known: {', '.join(_BY_NAME)})") from None


def _toml(value: str | Sequence[str]) -> str:
    # JSON's string escapes are TOML basic strings' for everything a path or a bucket name holds.
    return json.dumps(value if isinstance(value, str) else list(value))


def estate_locations(state: SandboxState, buckets: Mapping[str, Sequence[str]]) -> str:
    """The ``[locations.NAME]`` tables for the locations named in ``buckets`` (location name -> the bucket
    names or fnmatch patterns it serves), in the order of :data:`LOCATIONS`. An unknown name is refused;
    the state must have the estate's endpoints (a sandbox started before it is refused)."""
    for name in buckets:
        location(name)
    tables = []
    for loc in LOCATIONS:
        if loc.name not in buckets:
            continue
        fields: list[tuple[str, str | Sequence[str]]] = [
            ("kind", loc.kind), ("endpoint", endpoint(state, loc.server).url), ("region", loc.region),
            ("owner", loc.owner), ("buckets", buckets[loc.name])]
        if loc.server == "s3dc":
            fields.append(("addressing_style", "path"))
        if state.ca_file is not None:
            fields.append(("ca_bundle", state.ca_file))
        if loc.kind == "oci":
            fields.append(("config_file", state.oci_config))
        if loc.profile is not None:
            fields.append(("profile", loc.profile))
        lines = [f"[locations.{loc.name}]", *(f"{key} = {_toml(value)}" for key, value in fields)]
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def create_location_bucket(state: SandboxState, name: str, bucket: str, *, versioned: bool = False,
                           object_lock: bool = False, soft_delete_seconds: int = 0) -> None:
    """Create ``bucket`` where location ``name`` has it: on that location's server, in its region."""
    loc = location(name)
    region = None if loc.kind == "oci" else loc.region
    create_bucket(state, loc.kind, bucket, versioned=versioned, object_lock=object_lock,
                  soft_delete_seconds=soft_delete_seconds, server=loc.server, region=region)
