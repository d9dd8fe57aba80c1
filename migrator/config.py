"""Settings resolved once (flags, wave file, environment) into frozen values."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from migrator.errors import InputError
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
    """How bytes move (the wave file's ``[transfer]`` table); none of it changes what is proven."""

    part_size: int = DEFAULT_PART_SIZE                    # multipart writes: bytes per part
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD  # objects up to this size go in one request
    parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT        # per multipart object
    max_pool_connections: int = 64

    def __post_init__(self) -> None:
        for name in ("part_size", "multipart_threshold", "parts_in_flight", "max_pool_connections"):
            if getattr(self, name) < 1:
                raise InputError("must be at least 1", field=name)
        # Checked here, before a wave touches its state folder: S3 takes parts of 5 MiB to 5 GiB, and GCS
        # resumable uploads take chunks in multiples of 256 KiB.
        if not 5 * 2**20 <= self.part_size <= 5 * 2**30 or self.part_size % (256 * 1024):
            raise InputError(f"want a multiple of 256 KiB between 5 MiB and 5 GiB (S3's and GCS's limits), "
                             f"got {self.part_size}", field="part_size")


VERSIONS_POLICIES = ("all", "current")
SOFT_DELETE_POLICIES = ("require-off", "attest-pending")


@dataclass(frozen=True)
class WavePolicy:
    """What a wave may do. Every choice that weakens a default is named in the attestation's predicate."""

    versions: str = "all"                    # "all": migrate every version; "current": dispose of noncurrent
    second_read: bool = True                 # evidence tier 4 allowed when nothing else proves the bytes
    concurrency: int = 16
    soft_delete: str = "require-off"         # GCS: hold buckets with soft delete on, or delete and attest pending
    require_destination_protection: bool = True  # delete sources only into a versioned/retained destination
    bypass_governance: bool = False          # S3 Object Lock GOVERNANCE: bypass (logged) instead of hold
    batch_rows: int = 1000                   # rows sharing listings, delete batches and group commits
    delete_batch: int = 1000                 # pinned targets per batch delete request (S3's maximum)

    def __post_init__(self) -> None:
        if self.versions not in VERSIONS_POLICIES:
            raise InputError(f"versions must be one of {', '.join(VERSIONS_POLICIES)}", field="versions")
        if self.soft_delete not in SOFT_DELETE_POLICIES:
            raise InputError(f"soft_delete must be one of {', '.join(SOFT_DELETE_POLICIES)}", field="soft_delete")
        if not 1 <= self.concurrency <= 1024:
            raise InputError("concurrency must be between 1 and 1024", field="concurrency")
        if not 1 <= self.batch_rows <= 100_000:
            raise InputError("batch_rows must be between 1 and 100000", field="batch_rows")
        if not 1 <= self.delete_batch <= 1000:
            raise InputError("delete_batch must be between 1 and 1000", field="delete_batch")

    def as_record(self) -> dict[str, Any]:
        return {"versions": self.versions, "second_read": self.second_read, "soft_delete": self.soft_delete,
                "require_destination_protection": self.require_destination_protection,
                "bypass_governance": self.bypass_governance}


_WAVE_KEYS = {f.name: f.type for f in fields(WavePolicy)}


def _wave_table(path: Path, name: str) -> dict[str, Any]:
    """One table of a wave file (empty when absent), the file checked for unknown tables."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read wave file: {exc.strerror}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(path)) from None
    unknown_tables = set(doc) - {"policy", "transfer"}
    if unknown_tables:
        raise InputError(f"unknown table(s) {sorted(unknown_tables)}; want [policy] or [transfer]", file=str(path))
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"want a [{name}] table", file=str(path), field=name)
    return table


def load_wave_file(path: Path | None, overrides: Mapping[str, Any]) -> WavePolicy:
    """A wave file (TOML, table ``[policy]``) resolved once with flag overrides (None = not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        for key, value in _wave_table(path, "policy").items():
            if key not in _WAVE_KEYS:
                raise InputError(f"unknown policy key (known: {', '.join(sorted(_WAVE_KEYS))})",
                                 file=str(path), field=key)
            want: type = str
            if key in ("concurrency", "batch_rows", "delete_batch"):
                want = int
            elif _WAVE_KEYS[key] in (bool, "bool"):
                want = bool
            if type(value) is not want:
                article = "an" if want.__name__[0] in "aeiou" else "a"
                raise InputError(f"want {article} {want.__name__}, got {value!r}", file=str(path), field=key)
            values[key] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return WavePolicy(**values)
    except InputError as exc:
        raise InputError(str(exc.args[0]), file=str(path) if path else None, field=exc.field) from None


_TRANSFER_KEYS = ("part_size", "multipart_threshold", "parts_in_flight", "max_pool_connections")


def load_transfer_settings(path: Path | None) -> TransferSettings:
    """The wave file's ``[transfer]`` table (sizes in bytes), defaults where absent."""
    if path is None:
        return TransferSettings()
    table = _wave_table(path, "transfer")
    for key, value in table.items():
        if key not in _TRANSFER_KEYS:
            raise InputError(f"unknown transfer key (known: {', '.join(_TRANSFER_KEYS)})", file=str(path), field=key)
        if type(value) is not int:
            raise InputError(f"want an int (bytes or a count), got {value!r}", file=str(path), field=key)
    try:
        return TransferSettings(**table)
    except InputError as exc:
        raise InputError(str(exc.args[0]), file=str(path), field=exc.field) from None
