"""The OCI emulator's stored state: buckets, object versions, multipart uploads, retention rules and
replication policies. Plain data, no HTTP and no rules beyond what a value says about itself (a rule's
duration, whether it is locked or still retains an object; a bucket's live object).

A bucket's ``objects`` maps each name to its versions, oldest first; the last is the live object unless it
is a delete marker. ``versioning`` is ``Disabled`` (never enabled), ``Enabled`` or ``Suspended``; an entry
written while Suspended is marked ``suspended`` so the next write replaces it. A replication source holds its
``replication`` policy; its destination is ``read_only`` and names its source in ``replication_source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

TIME_UNITS = {"DAYS": 86400, "YEARS": 365 * 86400}   # retention durations; a year counts 365 days here


@dataclass
class ObjectVersion:
    version_id: str
    etag: str
    created: datetime
    data: bytes = b""
    is_delete_marker: bool = False
    md5_b64: str | None = None            # None for multipart objects (OCI has no whole-object MD5)
    multipart_md5: str | None = None      # "b64-N"
    checksum_algorithm: str | None = None
    crc32c_b64: str | None = None         # whole object, when the algorithm was CRC32C
    sha256_b64: str | None = None         # whole object, single puts only
    sha384_b64: str | None = None
    multipart_sha: str | None = None      # "b64-N" for SHA256/SHA384 multipart uploads
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    content_language: str | None = None
    content_disposition: str | None = None
    cache_control: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    storage_tier: str = "Standard"
    suspended: bool = False               # written while versioning was Suspended: the next write replaces it

    @property
    def archival_state(self) -> str | None:
        return "Archived" if self.storage_tier == "Archive" else None

    @property
    def list_md5(self) -> str | None:
        return self.md5_b64 if self.md5_b64 is not None else self.multipart_md5


@dataclass
class Part:
    data: bytes
    etag: str
    md5: bytes
    sha: bytes | None
    crc32c_b64: str


@dataclass
class Upload:
    upload_id: str
    name: str
    created: datetime
    checksum_algorithm: str | None
    content_type: str
    content_encoding: str | None
    content_language: str | None
    content_disposition: str | None
    cache_control: str | None
    metadata: dict[str, str]
    storage_tier: str
    if_match: str | None
    if_none_match: str | None
    parts: dict[int, Part] = field(default_factory=dict)


@dataclass
class RetentionRule:
    rule_id: str
    display_name: str
    amount: int | None                    # None: an indefinite rule
    unit: str | None                      # "DAYS" or "YEARS"
    time_rule_locked: datetime | None
    created: datetime
    modified: datetime
    etag: str

    @property
    def seconds(self) -> int | None:
        return None if self.amount is None or self.unit is None else self.amount * TIME_UNITS[self.unit]

    def locked(self, now: datetime) -> bool:
        return self.time_rule_locked is not None and now >= self.time_rule_locked

    def retains(self, last_modified: datetime, now: datetime) -> bool:
        """Whether an object last modified at ``last_modified`` is still protected by this rule."""
        seconds = self.seconds
        return seconds is None or now < last_modified + timedelta(seconds=seconds)


@dataclass
class ReplicationPolicy:
    policy_id: str
    name: str
    destination_region: str
    destination_bucket: str
    created: datetime
    last_sync: datetime
    status: str = "ACTIVE"                # or CLIENT_ERROR once replication into the destination failed
    status_message: str = "Replication is active"


@dataclass
class Bucket:
    name: str
    compartment_id: str
    created: datetime
    etag: str
    versioning: str = "Disabled"
    storage_tier: str = "Standard"
    metadata: dict[str, str] = field(default_factory=dict)
    objects: dict[str, list[ObjectVersion]] = field(default_factory=dict)  # oldest first
    uploads: dict[str, Upload] = field(default_factory=dict)
    retention_rules: dict[str, RetentionRule] = field(default_factory=dict)
    replication: ReplicationPolicy | None = None       # this bucket is a replication source
    read_only: bool = False                           # this bucket is a replication destination
    replication_source: tuple[str, str] | None = None  # (policy name, source bucket) while a destination

    def latest(self, name: str) -> ObjectVersion | None:
        """The live object: the newest entry unless it is a delete marker."""
        versions = self.objects.get(name)
        if not versions or versions[-1].is_delete_marker:
            return None
        return versions[-1]
