"""Settings resolved once per entry point (flags, the wave file, the environment) into frozen values.

``load_wave(path, flags, env) -> WaveSettings`` is the one reader: it opens and parses the wave file once,
and the entry point (the CLI) passes the values it returns down. Nothing below the entry points reads
the environment or the wave file: the store registry gets ``WaveSettings.stores`` (a value defined in
``migrator.stores``), the signer spec gets ``WaveSettings.signers`` (defined in ``migrator.attest``).

The rules:
- A flag that is given (not None) beats the wave file, which beats the default. The environment gives
  endpoints and SDK configuration only, never policy or transfer settings.
- The wave file (TOML) has two tables. ``[policy]`` holds what ``WavePolicy`` names and, as it always has,
  ``concurrency``, ``batch_rows`` and ``delete_batch`` (which are ``TransferSettings``); ``[transfer]``
  holds the other transfer settings (sizes in bytes). Any other table or key is refused.
- Types are checked against the dataclass fields, values by each dataclass; every error names the file
  (when there is one) and the field.

The environment: AWS_ENDPOINT_URL (S3), STORAGE_EMULATOR_HOST (GCS), MIGRATOR_OCI_ENDPOINT,
MIGRATOR_OCI_CONFIG and MIGRATOR_OCI_PROFILE (the OCI SDK config, for the store and the Vault signer),
MIGRATOR_OCI_KMS_MANAGEMENT_ENDPOINT, AWS_DEFAULT_REGION or AWS_REGION, MIGRATOR_SANDBOX (every
endpoint must be loopback) and MIGRATOR_S3_INPROCESS_MOCK=moto (S3 answered by moto's in-process mock,
checked instead of an endpoint; see migrator.stores.moto_inprocess).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from migrator import oci_config
from migrator.attest.signers import SignerSettings
from migrator.errors import InputError
from migrator.estate import Estate, parse_locations
from migrator.limits import Rates
from migrator.stores.moto_inprocess import INPROCESS_MOCKS
from migrator.stores.settings import EndpointSettings, StoreSettings, StoreTransfer
from migrator.toml_lines import located

__all__ = ["EndpointSettings", "TransferSettings", "WavePolicy", "WaveSettings", "endpoints_from_env", "load_wave"]

MiB = 1024 * 1024
# TransferSettings fields that the wave file keeps in its [policy] table (where they have always been).
_POLICY_TABLE = {"table": "policy"}


@dataclass(frozen=True)
class TransferSettings:
    """How bytes move; none of it changes what is proven.

    Memory. A wave's peak is about

        buffer_memory + concurrency x part_size x parts_in_flight

    - ``buffer_memory``: objects the destination takes in one request (up to ``multipart_threshold`` bytes)
      are read whole before they are written, so the write carries digests hashed once. All of a wave's
      workers share this budget and wait for room; an object larger than the budget goes alone, so
      the term is really ``max(buffer_memory, multipart_threshold)``. While such an object is assembled
      from several reads it is briefly held twice.
    - ``concurrency x part_size x parts_in_flight``: larger objects stream through a multipart upload; at most
      ``concurrency`` objects are in flight, each holding up to ``parts_in_flight`` parts (S3, OCI) or one
      chunk (GCS: a resumable upload sends its chunks in order). Past 10,000 parts S3 and OCI grow the
      part to size / 10,000, so a 1 TiB object holds parts of about 105 MiB each.
    - Also counted, and small next to those: two batches of ``batch_rows`` rows with their listings, one
      1 MiB read chunk per stream, and ``max_pool_connections`` connections per cloud client.

    With the defaults: 256 MiB + 16 x 8 MiB x 4 = 768 MiB.
    """

    concurrency: int = field(default=16, metadata=_POLICY_TABLE)      # objects in flight
    batch_rows: int = field(default=1000, metadata=_POLICY_TABLE)     # rows sharing listings, delete batches, commits
    delete_batch: int = field(default=1000, metadata=_POLICY_TABLE)   # pinned targets per batch delete (S3's maximum)
    part_size: int = 8 * MiB                 # multipart writes: bytes per part (GCS: per resumable chunk)
    multipart_threshold: int = 64 * MiB      # objects up to this size go in one request (S3 takes 5 GiB, OCI 50)
    parts_in_flight: int = 4                 # parts of one multipart object uploaded at once (S3, OCI)
    max_pool_connections: int = 64           # HTTP connections kept per cloud client
    buffer_memory: int = 256 * MiB           # bytes that one-request copies may hold at once, all workers together
    # Caps on the whole wave (rclone's --tpslimit, --bwlimit); None or 0: unlimited. Operational, not policy:
    # a state folder does not bind them (``WaveSettings.binding``), so a resume may change them.
    requests_per_second: float | None = None   # HTTP requests a second, every store together (SDK retries too)
    bytes_per_second: int | None = None        # bytes a second read by copies, every location together

    def __post_init__(self) -> None:
        Rates(self.requests_per_second, self.bytes_per_second)   # checks both, naming the field
        for name in ("part_size", "multipart_threshold", "parts_in_flight", "max_pool_connections", "buffer_memory"):
            if getattr(self, name) < 1:
                raise InputError("must be at least 1", field=name)
        # Checked here, before a wave touches its state folder: S3 takes parts of 5 MiB to 5 GiB, and GCS
        # resumable uploads take chunks in multiples of 256 KiB.
        if not 5 * 2**20 <= self.part_size <= 5 * 2**30 or self.part_size % (256 * 1024):
            raise InputError(f"want a multiple of 256 KiB between 5 MiB and 5 GiB (S3's and GCS's limits), "
                             f"got {self.part_size}", field="part_size")
        if not 1 <= self.concurrency <= 1024:
            raise InputError("concurrency must be between 1 and 1024", field="concurrency")
        if not 1 <= self.batch_rows <= 100_000:
            raise InputError("batch_rows must be between 1 and 100000", field="batch_rows")
        if not 1 <= self.delete_batch <= 1000:
            raise InputError("delete_batch must be between 1 and 1000", field="delete_batch")

    @property
    def rates(self) -> Rates:
        """The wave-wide caps, for the store registry."""
        return Rates(self.requests_per_second, self.bytes_per_second, where="transfer")

    def for_stores(self) -> StoreTransfer:
        """The part every store adapter receives."""
        return StoreTransfer(part_size=self.part_size, multipart_threshold=self.multipart_threshold,
                             parts_in_flight=self.parts_in_flight, max_pool_connections=self.max_pool_connections)


VERSIONS_POLICIES = ("all", "current")
SOFT_DELETE_POLICIES = ("require-off", "attest-pending")
OTHER_RESIDENCY_POLICIES = ("refuse", "out-of-scope")
# Policy members added with residency: a policy that leaves them at their defaults records none of them, so
# that a state folder started before they existed resumes with the same policy record.
_RESIDENCY_FIELDS = ("residency", "allowed_regions", "require_residency", "other_residency")


@dataclass(frozen=True)
class WavePolicy:
    """What a wave may do: exactly what the attestation's predicate names. Every choice that weakens a default
    is named there, and a state folder keeps the policy of its first run (a resume with another is refused)."""

    versions: str = "all"                    # "all": migrate every version; "current": dispose of noncurrent
    second_read: bool = True                 # evidence tier 4 allowed when nothing else proves the bytes
    soft_delete: str = "require-off"         # GCS: hold buckets with soft delete on, or delete and attest pending
    require_destination_protection: bool = True  # delete sources only into a versioned/retained destination
    bypass_governance: bool = False          # S3 Object Lock GOVERNANCE: bypass (logged) instead of hold
    residency: str | None = None             # the one residency tag this wave moves ("US"); None: no rule
    allowed_regions: tuple[str, ...] = ()    # destination regions allowed for it (required with residency)
    require_residency: bool = True           # with residency: a row without a tag is refused
    other_residency: str = "refuse"          # rows of another residency: "refuse" the wave, or "out-of-scope"

    def __post_init__(self) -> None:
        if self.versions not in VERSIONS_POLICIES:
            raise InputError(f"versions must be one of {', '.join(VERSIONS_POLICIES)}", field="versions")
        if self.soft_delete not in SOFT_DELETE_POLICIES:
            raise InputError(f"soft_delete must be one of {', '.join(SOFT_DELETE_POLICIES)}", field="soft_delete")
        if self.other_residency not in OTHER_RESIDENCY_POLICIES:
            raise InputError(f"other_residency must be one of {', '.join(OTHER_RESIDENCY_POLICIES)}",
                             field="other_residency")
        if self.residency is not None and not self.residency.strip():
            raise InputError("residency must be a non-empty tag, e.g. \"US\"", field="residency")
        if self.residency is not None and not self.allowed_regions:
            raise InputError("a wave that moves one residency names the destination regions allowed for it",
                             field="allowed_regions")
        if self.allowed_regions and self.residency is None:
            raise InputError("allowed_regions needs residency: the residency those regions are allowed for",
                             field="residency")
        if any(not isinstance(r, str) or not r for r in self.allowed_regions):
            raise InputError("want a list of region names", field="allowed_regions")

    def as_record(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["allowed_regions"] = list(self.allowed_regions)
        if self.residency is None:
            for name in _RESIDENCY_FIELDS:
                del record[name]
        return record


@dataclass(frozen=True)
class WaveSettings:
    """Everything an entry point resolved, once: what the wave may do, how bytes move, where the clouds are."""

    policy: WavePolicy = field(default_factory=WavePolicy)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    oci_kms_management_endpoint: str | None = None   # for an ocikms: signer; None = derived from its endpoint
    estate: Estate = field(default_factory=Estate)   # the wave file's [locations]; empty = the environment's

    @property
    def stores(self) -> StoreSettings:
        """For the store registry (``Stores``), with the one OCI config reader."""
        return StoreSettings(endpoints=self.endpoints, transfer=self.transfer.for_stores(),
                             load_oci_config=oci_config.load, locations=self.estate.locations,
                             rates=self.transfer.rates)

    def binding(self) -> dict[str, Any]:
        """What a state folder binds on its first run: the policy, and each location's identity when there are
        locations (kind, region, owner, buckets: a rotated credential, a renamed profile or another hostname
        for the same store is not a change). Not the transfer settings, caps included: they change how
        fast a wave goes, not what it does, so a resume may run with others."""
        bound = self.policy.as_record()
        if self.estate:
            bound["locations"] = self.estate.binding()
        return bound

    @property
    def signers(self) -> SignerSettings:
        """For ``load_signer_spec``: the same OCI config (and reader) and region as the stores."""
        e = self.endpoints
        return SignerSettings(oci_config=e.oci_config, oci_profile=e.oci_profile,
                              oci_kms_management_endpoint=self.oci_kms_management_endpoint, aws_region=e.aws_region,
                              load_oci_config=oci_config.load)


def endpoints_from_env(env: Mapping[str, str]) -> EndpointSettings:
    mock = env.get("MIGRATOR_S3_INPROCESS_MOCK") or None
    if mock is not None and mock not in INPROCESS_MOCKS:
        raise InputError(f"want {' or '.join(INPROCESS_MOCKS)} (or unset), got {mock!r}",
                         field="MIGRATOR_S3_INPROCESS_MOCK")
    return EndpointSettings(
        s3_endpoint=env.get("AWS_ENDPOINT_URL") or None,
        gcs_endpoint=env.get("STORAGE_EMULATOR_HOST") or None,
        oci_endpoint=env.get("MIGRATOR_OCI_ENDPOINT") or None,
        oci_config=env.get("MIGRATOR_OCI_CONFIG") or None,
        oci_profile=env.get("MIGRATOR_OCI_PROFILE") or "DEFAULT",
        aws_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
        # An in-process mock is a sandbox too: GCS and OCI must then be on loopback.
        sandbox=bool(env.get("MIGRATOR_SANDBOX")) or mock is not None,
        s3_inprocess_mock=mock,
    )


def _index() -> tuple[dict[str, tuple[type, type]], dict[str, list[str]]]:
    """Each key's dataclass and type, and each table's keys in field order, from the dataclass fields."""
    keys: dict[str, tuple[type, type]] = {}
    tables: dict[str, list[str]] = {"policy": [], "transfer": []}
    for cls in (WavePolicy, TransferSettings):
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            keys[f.name] = (cls, hints[f.name])
            tables["policy" if cls is WavePolicy else f.metadata.get("table", "transfer")].append(f.name)
    return keys, tables


_FIELDS, _TABLES = _index()
# Overrides whose command-line flag is not the key's own name (rclone's names for the caps).
FLAG_NAMES = {"requests_per_second": "--tps-limit", "bytes_per_second": "--bw-limit"}
# An int in [transfer] is a size in bytes or a count; the hint makes the type error say so.
_TYPE_HINT = {"policy": "", "transfer": " (bytes or a count)"}


def load_wave(path: Path | None, flags: Mapping[str, Any], env: Mapping[str, str]) -> WaveSettings:
    """The wave file (read once; None = no file) with flag overrides (None = not given) and the environment."""
    values: dict[str, Any] = {}
    estate = Estate()
    if path is not None:
        doc = _read(path)
        try:
            for table in _TABLES:
                values.update(_table(path, doc, table))
            if "locations" in doc:
                estate = parse_locations(doc["locations"], file=str(path))
        except InputError as exc:
            raise located(exc, path) from None
    for key, value in flags.items():
        if key not in _FIELDS:
            raise InputError(f"unknown setting (known: {', '.join(sorted(_FIELDS))})", field=key)
        if value is not None:
            values[key] = value
    flagged = {k for k, v in flags.items() if v is not None}
    try:
        policy = WavePolicy(**{k: v for k, v in values.items() if _FIELDS[k][0] is WavePolicy})
        transfer = TransferSettings(**{k: v for k, v in values.items() if _FIELDS[k][0] is TransferSettings})
    except InputError as exc:
        key = exc.field or ""
        if path is None or key in flagged:   # the flag's value, not the file's
            flag = FLAG_NAMES.get(key, f"--{key.replace('_', '-')}")
            raise InputError(str(exc.args[0]), field=flag if key else None) from None
        table = next((name for name, known in _TABLES.items() if key in known), "policy")
        raise located(InputError(str(exc.args[0]), file=str(path), field=f"{table}.{key}"), path) from None
    return WaveSettings(policy=policy, transfer=transfer, endpoints=endpoints_from_env(env),
                        oci_kms_management_endpoint=env.get("MIGRATOR_OCI_KMS_MANAGEMENT_ENDPOINT") or None,
                        estate=estate)


def _wanted(hint: Any) -> tuple[type, ...]:
    """The TOML types a field takes: its type without None, and an int where a float is wanted."""
    types = tuple(t for t in typing.get_args(hint) if t is not type(None)) or (hint,)
    return (*types, int) if float in types else types


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read wave file: {exc.strerror}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the file); TOML is UTF-8",
                         file=str(path)) from None
    unknown_tables = set(doc) - {*_TABLES, "locations"}
    if unknown_tables:
        raise InputError(f"unknown table(s) {sorted(unknown_tables)}; want [policy], [transfer] or "
                         "[locations.NAME]", file=str(path))
    return doc


def _table(path: Path, doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One table of the wave file (empty when absent), each key known to it and of its field's type."""
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"want a [{name}] table", file=str(path), field=name)
    known = _TABLES[name]
    for key, value in table.items():
        if key not in known:
            listed = sorted(known) if name == "policy" else known
            raise InputError(f"unknown {name} key (known: {', '.join(listed)})", file=str(path),
                             field=f"{name}.{key}")
        hint = _FIELDS[key][1]
        if typing.get_origin(hint) is tuple:   # a list of strings in TOML
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"want a list of strings, got {value!r}", file=str(path), field=f"{name}.{key}")
            table = {**table, key: tuple(value)}
            continue
        want = _wanted(hint)
        if type(value) not in want:   # exact: a TOML bool is not an int here
            what = "a number" if float in want else f"{'an' if want[0].__name__[0] in 'aeiou' else 'a'} " \
                f"{want[0].__name__}{_TYPE_HINT[name]}"
            raise InputError(f"want {what}, got {value!r}", file=str(path), field=f"{name}.{key}")
    return dict(table)
