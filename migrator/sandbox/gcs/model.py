"""The GCS emulator's stored state: buckets, object generations and resumable upload sessions. Plain data,
no HTTP; the one rule here is what a request's generation preconditions (:class:`Conditions`) say about a
target, since sessions keep them until the upload completes.

A bucket keeps each name's ``live`` generation, its ``noncurrent`` ones (a versioned bucket's displaced
generations, ascending) and its ``soft``-deleted ones (ascending), plus a heap of hard-delete times. A
generation (:class:`Gen`) is the same value in every state; ``time_deleted``, ``soft_delete_time`` and
``hard_delete_time`` say where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from migrator.sandbox.base import ApiError

DEFAULT_SOFT_DELETE_SECONDS = 7 * 24 * 3600


def precondition_failed() -> ApiError:
    return ApiError(412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold.")


@dataclass
class Gen:
    """One generation of one object, whatever its state (live, noncurrent or soft-deleted)."""

    name: str
    generation: int
    data: bytes
    crc32c: bytes
    md5: bytes | None                 # None for composite objects
    created: datetime
    updated: datetime
    metageneration: int = 1
    content_type: str = "application/octet-stream"
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    metadata: dict[str, str] | None = None
    temporary_hold: bool = False
    event_based_hold: bool = False
    retention_base: datetime | None = None   # where the bucket retention period starts counting
    component_count: int | None = None
    storage_class: str = "STANDARD"
    time_deleted: datetime | None = None     # when it stopped being live
    soft_delete_time: datetime | None = None
    hard_delete_time: datetime | None = None

    @property
    def held(self) -> bool:
        return self.temporary_hold or self.event_based_hold


@dataclass
class Bucket:
    name: str
    created: datetime
    updated: datetime
    metageneration: int = 1
    versioning: bool = False
    soft_delete_seconds: int = DEFAULT_SOFT_DELETE_SECONDS
    soft_delete_effective: datetime | None = None
    retention_period: int | None = None
    retention_effective: datetime | None = None
    retention_locked: bool = False
    default_event_based_hold: bool = False
    storage_class: str = "STANDARD"
    location: str = "US"
    labels: dict[str, str] = field(default_factory=dict)
    live: dict[str, Gen] = field(default_factory=dict)
    noncurrent: dict[str, list[Gen]] = field(default_factory=dict)   # ascending generation
    soft: dict[str, list[Gen]] = field(default_factory=dict)         # ascending generation
    hard_delete_queue: list[tuple[datetime, int, str]] = field(default_factory=list)

    def retention_expiry(self, g: Gen) -> datetime | None:
        if self.retention_period is None or g.retention_base is None:
            return None
        return g.retention_base + timedelta(seconds=self.retention_period)


@dataclass
class Session:
    """A resumable upload in progress."""

    upload_id: str
    bucket: str
    name: str
    resource: dict[str, Any]
    conditions: Conditions
    content_type: str
    total: int | None = None
    buffer: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Conditions:
    generation_match: int | None = None
    generation_not_match: int | None = None
    metageneration_match: int | None = None
    metageneration_not_match: int | None = None

    def check(self, target: Gen | None) -> None:
        """412 unless every given precondition holds for ``target`` (None: no such object)."""
        if self.generation_match is not None:
            if target is None:
                if self.generation_match != 0:
                    raise precondition_failed()
            elif target.generation != self.generation_match:
                raise precondition_failed()
        if self.generation_not_match is not None:
            if target is None or target.generation == self.generation_not_match:
                raise precondition_failed()
        if self.metageneration_match is not None:
            if target is None or target.metageneration != self.metageneration_match:
                raise precondition_failed()
        if self.metageneration_not_match is not None:
            if target is None or target.metageneration == self.metageneration_not_match:
                raise precondition_failed()
