"""What the store registry needs to build an adapter: where each cloud is, and what its SDK client may use.

These are values, resolved above the store layer (``migrator.config`` builds them from flags, the wave file
and the environment); nothing in ``migrator.stores`` reads the environment, the wave file or the OCI SDK's
config file. The transfer knobs carry no defaults here: the defaults and the memory formula live in one
place, ``migrator.config.TransferSettings``. The OCI config is read by the application's one reader
(``migrator.oci_config.load``, which the Vault signer uses too), handed in as ``load_oci_config`` and
called only when an ``oci://`` store is first needed: a wave that names no OCI location needs no config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.estate import LocationSpec
from migrator.limits import Rates

# (config file or None for the SDK's default, profile) -> that profile's OCI SDK config, checked.
OciConfigLoader = Callable[[str | None, str], Mapping[str, Any]]


@dataclass(frozen=True)
class EndpointSettings:
    """Where each cloud is. None means the SDK's own default resolution (real clouds)."""

    s3_endpoint: str | None = None
    gcs_endpoint: str | None = None
    oci_endpoint: str | None = None
    oci_config: str | None = None      # the OCI SDK config file; None = the SDK's default location
    oci_profile: str = "DEFAULT"
    aws_region: str | None = None
    sandbox: bool = False              # when true, every endpoint must be loopback (checked before any request)
    # "moto": S3 is answered by moto's in-process mock (no endpoint), which replaces the loopback guard for
    # S3 (migrator.stores.moto_inprocess); the other clouds' endpoints must then be loopback.
    s3_inprocess_mock: str | None = None


@dataclass(frozen=True)
class StoreTransfer:
    """The transfer knobs every adapter receives, the same value for each; an adapter uses what its SDK can.

    - S3: all four (its own multipart upload, a botocore pool of ``max_pool_connections``).
    - OCI: all four (its own multipart upload, a requests pool of ``max_pool_connections``).
    - GCS: ``part_size`` (the resumable upload's chunk), ``multipart_threshold`` and ``max_pool_connections``
      (the requests pool). Not ``parts_in_flight``: a resumable upload takes its chunks one after another,
      in order, so one object has one chunk in flight.
    """

    part_size: int               # bytes per part (S3, OCI) or resumable chunk (GCS)
    multipart_threshold: int     # objects up to this size are written in one request
    parts_in_flight: int         # parts of one object uploaded at once (S3, OCI)
    max_pool_connections: int    # HTTP connections kept per client


@dataclass(frozen=True)
class StoreSettings:
    """Everything the registry needs, as one value."""

    endpoints: EndpointSettings
    transfer: StoreTransfer
    load_oci_config: OciConfigLoader   # reads endpoints.oci_config's oci_profile (migrator.oci_config.load)
    locations: tuple[LocationSpec, ...] = ()   # the wave file's named locations; a URI's ``at`` picks one
    rates: Rates = field(default_factory=Rates)   # the wave-wide caps; each location's own are on its LocationSpec
