"""Settings resolved once (flags, wave file, environment) into frozen values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from migrator.stores.base import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT


@dataclass(frozen=True)
class EndpointSettings:
    """Where each cloud is. None means the SDK's own default resolution (real clouds)."""

    s3_endpoint: str | None
    gcs_endpoint: str | None
    oci_endpoint: str | None
    oci_config: str | None
    oci_profile: str
    aws_region: str | None
    sandbox: bool  # when true, every endpoint must be loopback

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EndpointSettings:
        e = os.environ if env is None else env
        return cls(
            s3_endpoint=e.get("AWS_ENDPOINT_URL") or None,
            gcs_endpoint=e.get("STORAGE_EMULATOR_HOST") or None,
            oci_endpoint=e.get("MIGRATOR_OCI_ENDPOINT") or None,
            oci_config=e.get("MIGRATOR_OCI_CONFIG") or None,
            oci_profile=e.get("MIGRATOR_OCI_PROFILE") or "DEFAULT",
            aws_region=e.get("AWS_DEFAULT_REGION") or e.get("AWS_REGION") or None,
            sandbox=bool(e.get("MIGRATOR_SANDBOX")),
        )


@dataclass(frozen=True)
class TransferSettings:
    part_size: int = DEFAULT_PART_SIZE
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT
    max_pool_connections: int = 64
