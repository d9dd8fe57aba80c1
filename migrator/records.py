"""The per-object record: the product's contract with the auditor, and the one module that owns its schema.

A record says what became of one manifest row: which versions were copied and verified where, with which
digests and evidence, what was deleted when, and the listing that showed nothing left. The pipeline builds
it step by step (the journal holds it between steps), the attestation producer writes it as one canonical
JSON line of ``records.jsonl``, and the auditor's side (proofs, live checks, the scan, the tally) reads it
back. All of them use the values here; nobody else names a record member.

Reading and writing (docs/attestation.md §5 has the versioning rule in full):
- ``to_json()`` gives exactly the members the pipeline has always written, so a record read with
  ``from_json`` and written again is the same canonical line.
- Readers keep what they do not know: members not named here travel in ``unknown`` and are written back;
  a reason string that is not a ``Reason`` stays a plain string.
- ``schema`` decides which members are required (``REQUIRED``). Optional additive members need no new
  number; a change that makes a member required, or changes a member's meaning, takes the next number.
  Readers accept every number in ``SCHEMAS``. A record without ``schema`` is read as schema 1.
- S3 reported an unversioned object's version as the string ``"null"`` in records written before the
  store layer normalised it to JSON null; ``pinned_version`` reads both as "no version id".

This module imports nothing but the error types: the offline verifier depends on it. Turning digests into
Checksum values imports the checksum module (and its CRC32C extension) when first asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from migrator.errors import ChecksumError, InputError

if TYPE_CHECKING:
    from migrator.checksum import Checksum, Provenance

SCHEMA = 2
"""The schema number this version of migrator writes. Schema 2 = schema 1 plus the state OUT_OF_SCOPE and
URIs that may name their location (``s3://dc@users/key``)."""
SCHEMAS = frozenset({1, 2})
"""Every schema number a reader accepts."""

JSON = dict[str, Any]
_EMPTY: Mapping[str, Any] = MappingProxyType({})   # the unknown members of most values: none, shared


class RecordError(InputError):
    """A record (or a journal payload) that does not follow its schema."""


class State(StrEnum):
    """A row's place in the per-object state machine; a record holds one of the final three."""

    PENDING = "PENDING"
    COPYING = "COPYING"
    VERIFIED = "VERIFIED"
    DELETING = "DELETING"
    REMOVED = "REMOVED"
    HELD = "HELD"
    FAILED = "FAILED"
    OUT_OF_SCOPE = "OUT_OF_SCOPE"   # another residency, left untouched by policy: never copied, never deleted


FINAL_STATES = (State.REMOVED, State.HELD, State.FAILED, State.OUT_OF_SCOPE)
"""The states a record in records.jsonl may have, in the order the predicate counts them."""
TERMINAL = frozenset(FINAL_STATES)
STATES_OF_SCHEMA: Mapping[int, frozenset[State]] = {
    1: frozenset({State.REMOVED, State.HELD, State.FAILED}),
    2: TERMINAL,
}
"""The final states each schema allows."""


class Reason(StrEnum):
    """Why a row is HELD or FAILED: the category counted in the predicate. Specifics go in ``detail``.

    Adding a value is additive (readers keep reason strings they do not know); renaming one is a change of
    meaning and takes a new schema number.
    """

    # copy and verify
    SOURCE_NOT_FOUND = "source not found"
    ARCHIVED = "archived"
    CHANGED_AT_SOURCE = "changed at source"
    CHECKSUM_NOT_PROVEN = "checksum not proven"
    SOURCE_UNREADABLE = "source unreadable"
    SOURCE_EVIDENCE_FAILED = "source evidence failed"
    DESTINATION_EVIDENCE_FAILED = "destination evidence failed"
    DESTINATION_REFUSED = "destination refused the bytes"
    DESTINATION_HOLDS_OTHER = "destination holds a different object"
    CLOUD_ERROR = "cloud error"
    # checks before deletes
    DESTINATION_UNPROTECTED = "destination unprotected"
    DIVERGENT_REPLICA = "divergent replica"
    UNLISTED_REPLICATION = "unlisted replication target"
    GCS_SOFT_DELETE_UNKNOWN = "GCS soft delete unknown"
    GCS_SOFT_DELETE_ON = "GCS soft delete on"
    OCI_RETENTION_RULE = "OCI retention rule"
    S3_LEGAL_HOLD = "S3 Object Lock legal hold"
    S3_GOVERNANCE_RETENTION = "S3 Object Lock governance retention"
    S3_COMPLIANCE_RETENTION = "S3 Object Lock compliance retention"
    S3_REPLICATION_PENDING = "S3 replication PENDING"
    GCS_TEMPORARY_HOLD = "GCS temporary hold"
    GCS_EVENT_BASED_HOLD = "GCS event-based hold"
    GCS_BUCKET_RETENTION = "GCS bucket retention"
    GCS_OBJECT_RETENTION = "GCS object retention"
    # deletes and the proof
    DELETE_REFUSED = "delete refused"
    SOFT_DELETED_PENDING = "soft-deleted, pending hard deletion"
    LEFT_AFTER_DELETE = "left after delete"
    # residency (OUT_OF_SCOPE records)
    OTHER_RESIDENCY = "other residency"


REQUIRED: Mapping[int, tuple[str, ...]] = {
    1: ("row", "state", "reason"),
    2: ("row", "state", "reason"),
}
"""The members each schema requires of every record (a HELD or FAILED one also needs a non-empty reason)."""

LISTED = ("versions", "delete markers", "incomplete uploads", "soft-deleted (where the cloud has it)")
"""What the removal proof's final listing covers, as each proof states it."""


def pinned_version(version: str | None) -> str | None:
    """The version id a record pins, None for an object without one (S3's ``"null"`` in older records).

    No cloud uses ``"null"`` as a real id: GCS generations are integers, OCI version ids are UUIDs."""
    return None if version in (None, "null") else version


# ---- reading helpers ---------------------------------------------------------------------------------------

def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where} is not a JSON object")
    return value


def _str(obj: Mapping[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = obj.get(name, default)
    if not isinstance(value, str):
        raise RecordError(f"{where}: member {name!r} is not a string")
    return value


def _opt_str(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"{where}: member {name!r} is neither a string nor null")
    return value


def _int(obj: Mapping[str, Any], name: str, where: str, default: int | None = None) -> int:
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{where}: member {name!r} is not an integer")
    return value


def _list(obj: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"{where}: member {name!r} is not an array")
    return value


def _strs(obj: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    items = _list(obj, name, where)
    if not all(isinstance(x, str) for x in items):
        raise RecordError(f"{where}: member {name!r} is not an array of strings")
    return tuple(items)


def _uri_text(value: Any, where: str) -> str:
    """A place named as a URI string (or, in hand-written records, as an object with ``uri``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("uri"), str):
        return str(value["uri"])
    raise RecordError(f"{where} names no URI")


def _unknown(obj: Mapping[str, Any], known: Iterable[str]) -> Mapping[str, Any]:
    names = set(known)
    extra = {k: v for k, v in obj.items() if k not in names}
    return extra or _EMPTY


def _with_unknown(out: JSON, unknown: Mapping[str, Any]) -> JSON:
    for k, v in unknown.items():
        out.setdefault(k, v)
    return out


# ---- values ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Digest:
    """One digest as recorded: ``algorithm``, ``hex``, ``provenance`` and, for composite ones, ``parts``."""

    algorithm: str
    hex: str
    provenance: str
    parts: int | None = None
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    _MEMBERS = ("algorithm", "hex", "provenance", "parts")

    @classmethod
    def of(cls, checksum: Checksum) -> Digest:
        return cls(checksum.algorithm.value, checksum.hex, checksum.provenance.value, checksum.parts)

    @classmethod
    def from_json(cls, value: Any, where: str = "digest") -> Digest:
        obj = _obj(value, where)
        parts = obj.get("parts")
        if parts is not None and (not isinstance(parts, int) or isinstance(parts, bool)):
            raise RecordError(f"{where}: member 'parts' is not an integer")
        return cls(_str(obj, "algorithm", where), _str(obj, "hex", where), _str(obj, "provenance", where), parts,
                   _unknown(obj, cls._MEMBERS))

    def to_json(self) -> JSON:
        out: JSON = {"algorithm": self.algorithm, "hex": self.hex, "provenance": self.provenance}
        if self.parts is not None:
            out["parts"] = self.parts
        return _with_unknown(out, self.unknown)

    def checksum(self) -> Checksum:
        """As a Checksum value; raises ChecksumError for an algorithm or provenance this version does not know."""
        from migrator.checksum import Algorithm, Provenance, from_hex

        try:
            return from_hex(Algorithm(self.algorithm), self.hex, Provenance(self.provenance), self.parts)
        except ValueError as exc:
            raise ChecksumError(f"recorded digest {self.algorithm} ({self.provenance}) is not known: {exc}") from None


def digests_of(checksums: Iterable[Checksum]) -> tuple[Digest, ...]:
    return tuple(Digest.of(c) for c in checksums)


def checksums_of(digests: Iterable[Digest], provenance: Provenance | None = None) -> list[Checksum]:
    """The digests this version knows as Checksums (optionally of one provenance); others are skipped,
    since a digest a reader does not know is no evidence either way."""
    out: list[Checksum] = []
    for d in digests:
        if provenance is not None and d.provenance != provenance.value:
            continue
        try:
            out.append(d.checksum())
        except ChecksumError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """Which evidence proved a copy: the source tier, and the values compared at the source and destination."""

    source_tier: str
    source: tuple[str, ...]
    destination: tuple[str, ...]
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    @classmethod
    def from_json(cls, value: Any, where: str = "evidence") -> Evidence:
        obj = _obj(value, where)

        def names(name: str) -> tuple[str, ...]:
            v = obj.get(name)
            return (v,) if isinstance(v, str) else _strs(obj, name, where)

        return cls(_str(obj, "source_tier", where, ""), names("source"), names("destination"),
                   _unknown(obj, ("source_tier", "source", "destination")))

    def to_json(self) -> JSON:
        return _with_unknown({"source_tier": self.source_tier, "source": list(self.source),
                              "destination": list(self.destination)}, self.unknown)


@dataclass(frozen=True, slots=True)
class VersionCopy:
    """One source version copied and verified: what was read, what the destination stored, and the proof."""

    version: str | None
    etag: str | None
    size: int
    destination_version: str | None
    destination_etag: str | None
    digests: tuple[Digest, ...]
    evidence: Evidence | None
    storage_class: str | None
    encryption: str | None
    extra: Mapping[str, str]
    verified_at: str
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    _MEMBERS = ("version", "etag", "size", "destination_version", "destination_etag", "digests", "evidence",
                "storage_class", "encryption", "extra", "verified_at")

    @property
    def pin(self) -> str | None:
        return pinned_version(self.version)

    def computed(self) -> list[Checksum]:
        """The digests computed over the bytes as they streamed."""
        from migrator.checksum import Provenance

        return checksums_of(self.digests, Provenance.COMPUTED)

    @classmethod
    def from_json(cls, value: Any, where: str = "version") -> VersionCopy:
        obj = _obj(value, where)
        extra = obj.get("extra") or {}
        if not isinstance(extra, Mapping):
            raise RecordError(f"{where}: member 'extra' is not an object")
        ev = obj.get("evidence")
        return cls(
            version=_opt_str(obj, "version", where), etag=_opt_str(obj, "etag", where),
            size=_int(obj, "size", where, 0),
            destination_version=_opt_str(obj, "destination_version", where),
            destination_etag=_opt_str(obj, "destination_etag", where),
            digests=tuple(Digest.from_json(d, f"{where} digest") for d in _list(obj, "digests", where)),
            evidence=None if ev is None else Evidence.from_json(ev, f"{where} evidence"),
            storage_class=_opt_str(obj, "storage_class", where), encryption=_opt_str(obj, "encryption", where),
            extra={str(k): str(v) for k, v in extra.items()}, verified_at=_str(obj, "verified_at", where, ""),
            unknown=_unknown(obj, cls._MEMBERS))

    def to_json(self) -> JSON:
        return _with_unknown({
            "version": self.version, "etag": self.etag, "size": self.size,
            "destination_version": self.destination_version, "destination_etag": self.destination_etag,
            "digests": [d.to_json() for d in self.digests],
            "evidence": None if self.evidence is None else self.evidence.to_json(),
            "storage_class": self.storage_class, "encryption": self.encryption, "extra": dict(self.extra),
            "verified_at": self.verified_at,
        }, self.unknown)


class DeletionKind(StrEnum):
    VERSION = "version"
    DELETE_MARKER = "delete-marker"
    REPLICA_VERSION = "replica-version"
    NONCURRENT_DISPOSED = "noncurrent-disposed-by-policy"
    UPLOAD = "upload"


@dataclass(frozen=True, slots=True)
class Deletion:
    """One thing deleted (or confirmed gone), pinned: a version, a delete marker, or an incomplete upload."""

    uri: str
    kind: str
    at: str
    result: str
    version: str | None = None           # not a member for an upload
    if_match: str | None = None          # the ETag an unversioned object's delete was conditional on
    governance_bypassed: bool = False    # written only when true
    upload_id: str | None = None         # for an upload
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    _MEMBERS = ("uri", "kind", "at", "result", "version", "if_match", "governance_bypassed", "upload_id")

    @property
    def pin(self) -> str | None:
        return pinned_version(self.version)

    @classmethod
    def from_json(cls, value: Any, where: str = "deletion") -> Deletion:
        obj = _obj(value, where)
        bypassed = obj.get("governance_bypassed", False)
        if not isinstance(bypassed, bool):
            raise RecordError(f"{where}: member 'governance_bypassed' is not a boolean")
        return cls(uri=_uri_text(obj.get("uri"), where), kind=_str(obj, "kind", where, ""),
                   at=_str(obj, "at", where, ""), result=_str(obj, "result", where, ""),
                   version=_opt_str(obj, "version", where), if_match=_opt_str(obj, "if_match", where),
                   governance_bypassed=bypassed, upload_id=_opt_str(obj, "upload_id", where),
                   unknown=_unknown(obj, cls._MEMBERS))

    def to_json(self) -> JSON:
        out: JSON = {"uri": self.uri}
        if self.upload_id is not None:
            out["upload_id"] = self.upload_id
        else:
            out["version"] = self.version
        out.update({"kind": self.kind, "at": self.at, "result": self.result})
        if self.if_match:
            out["if_match"] = self.if_match
        if self.governance_bypassed:
            out["governance_bypassed"] = True
        return _with_unknown(out, self.unknown)


@dataclass(frozen=True, slots=True)
class ReplicaVersion:
    version: str | None
    etag: str | None
    matched: str                          # how it was shown to hold verified bytes
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    @classmethod
    def from_json(cls, value: Any, where: str = "replica version") -> ReplicaVersion:
        obj = _obj(value, where)
        return cls(_opt_str(obj, "version", where), _opt_str(obj, "etag", where), _str(obj, "matched", where, ""),
                   _unknown(obj, ("version", "etag", "matched")))

    def to_json(self) -> JSON:
        return _with_unknown({"version": self.version, "etag": self.etag, "matched": self.matched}, self.unknown)


@dataclass(frozen=True, slots=True)
class ReplicaResult:
    """What a replica held before the deletes: ``absent`` (with the listing that showed it) or ``matched``."""

    uri: str
    result: str
    versions: tuple[ReplicaVersion, ...] | None = None   # for "matched"
    listed_at: str | None = None                        # for "absent"
    listing: str | None = None
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    _MEMBERS = ("uri", "result", "versions", "listed_at", "listing")

    @classmethod
    def from_json(cls, value: Any, where: str = "replica result") -> ReplicaResult:
        obj = _obj(value, where)
        versions = obj.get("versions")
        return cls(_uri_text(obj.get("uri"), where), _str(obj, "result", where, ""),
                   None if versions is None else tuple(ReplicaVersion.from_json(v, where)
                                                       for v in _list(obj, "versions", where)),
                   _opt_str(obj, "listed_at", where), _opt_str(obj, "listing", where),
                   _unknown(obj, cls._MEMBERS))

    def to_json(self) -> JSON:
        out: JSON = {"uri": self.uri, "result": self.result}
        if self.versions is not None:
            out["versions"] = [v.to_json() for v in self.versions]
        if self.listed_at is not None:
            out["listed_at"] = self.listed_at
        if self.listing is not None:
            out["listing"] = self.listing
        return _with_unknown(out, self.unknown)


@dataclass(frozen=True, slots=True)
class RemovalProof:
    """The final listing of every location after the deletes: what, if anything, was left."""

    listed_at: str
    locations: tuple[str, ...]
    leftovers: tuple[str, ...]
    soft_deleted: tuple[str, ...] = ()   # restorable until their hard-deletion time: not removed yet
    listed: tuple[str, ...] = LISTED
    empty_member: bool | None = None     # as read; None means "as the lists say"
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    _MEMBERS = ("listed_at", "locations", "empty", "leftovers", "soft_deleted", "listed")

    @property
    def empty(self) -> bool:
        if self.empty_member is not None:
            return self.empty_member
        return not self.leftovers and not self.soft_deleted

    @classmethod
    def from_json(cls, value: Any, where: str = "proof") -> RemovalProof:
        obj = _obj(value, where)
        empty = obj.get("empty")
        if empty is not None and not isinstance(empty, bool):
            raise RecordError(f"{where}: member 'empty' is not a boolean")
        locations = tuple(_uri_text(u, f"{where} location") for u in _list(obj, "locations", where))
        return cls(_str(obj, "listed_at", where, ""), locations, _strs(obj, "leftovers", where),
                   _strs(obj, "soft_deleted", where), _strs(obj, "listed", where), empty,
                   _unknown(obj, cls._MEMBERS))

    def to_json(self) -> JSON:
        return _with_unknown({"listed_at": self.listed_at, "locations": list(self.locations), "empty": self.empty,
                              "leftovers": list(self.leftovers), "soft_deleted": list(self.soft_deleted),
                              "listed": list(self.listed)}, self.unknown)


@dataclass(frozen=True, slots=True)
class Disposal:
    """A noncurrent version disposed of by the wave's explicit policy (never copied), recorded one by one."""

    uri: str
    version: str | None
    size: int
    etag: str | None
    digests: tuple[Digest, ...]
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    @classmethod
    def from_json(cls, value: Any, where: str = "disposed") -> Disposal:
        obj = _obj(value, where)
        return cls(_uri_text(obj.get("uri"), where), _opt_str(obj, "version", where), _int(obj, "size", where, 0),
                   _opt_str(obj, "etag", where),
                   tuple(Digest.from_json(d, where) for d in _list(obj, "digests", where)),
                   _unknown(obj, ("uri", "version", "size", "etag", "digests")))

    def to_json(self) -> JSON:
        return _with_unknown({"uri": self.uri, "version": self.version, "size": self.size, "etag": self.etag,
                              "digests": [d.to_json() for d in self.digests]}, self.unknown)


@dataclass(frozen=True, slots=True)
class UploadAbort:
    """An incomplete upload this wave began at the destination and aborted on resume."""

    uri: str
    upload_id: str
    at: str
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    @classmethod
    def from_json(cls, value: Any, where: str = "aborted upload") -> UploadAbort:
        obj = _obj(value, where)
        return cls(_uri_text(obj.get("uri"), where), _str(obj, "upload_id", where), _str(obj, "at", where, ""),
                   _unknown(obj, ("uri", "upload_id", "at")))

    def to_json(self) -> JSON:
        return _with_unknown({"uri": self.uri, "upload_id": self.upload_id, "at": self.at}, self.unknown)


# ---- working members: in the journal, never in a record ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PendingCopy:
    version: str | None
    etag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class Copying:
    """Versions a copy was under way for: a resumed run cleans up what an interrupted copy left."""

    versions: tuple[PendingCopy, ...]
    at: str

    @classmethod
    def from_json(cls, value: Any) -> Copying:
        obj = _obj(value, "copying")
        return cls(tuple(PendingCopy(_opt_str(v, "version", "copying"), _opt_str(v, "etag", "copying"),
                                     _int(v, "size", "copying", 0))
                         for v in (_obj(x, "copying") for x in _list(obj, "versions", "copying"))),
                   _str(obj, "at", "copying", ""))

    def to_json(self) -> JSON:
        return {"versions": [{"version": v.version, "etag": v.etag, "size": v.size} for v in self.versions],
                "at": self.at}


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One pinned delete (or upload abort) a plan will make."""

    uri: str
    kind: str
    version: str | None = None
    if_match: str | None = None
    upload_id: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> PlannedStep:
        obj = _obj(value, "plan")
        return cls(_uri_text(obj.get("uri"), "plan"), _str(obj, "kind", "plan", ""), _opt_str(obj, "version", "plan"),
                   _opt_str(obj, "if_match", "plan"), _opt_str(obj, "upload_id", "plan"))

    def to_json(self) -> JSON:
        if self.upload_id is not None:
            return {"uri": self.uri, "upload_id": self.upload_id, "kind": self.kind}
        return {"uri": self.uri, "version": self.version, "if_match": self.if_match, "kind": self.kind}


# ---- the record ----------------------------------------------------------------------------------------------

_RECORD_MEMBERS = ("schema", "row", "state", "reason", "source", "destination", "replicas", "versions",
                   "deletions", "replica_results", "proof", "disposed", "detail", "subject", "residency",
                   "destination_uploads_aborted")
_WORKING_MEMBERS = ("copying", "plan")
_COLUMNS = ("schema", "row", "state", "reason")   # the journal keeps these outside the payload


@dataclass(frozen=True, slots=True)
class Record:
    """What became of one manifest row. Members that are None are absent from the JSON."""

    row: int
    state: str
    reason: str | None
    source: str
    destination: str
    replicas: tuple[str, ...] = ()
    versions: tuple[VersionCopy, ...] = ()
    deletions: tuple[Deletion, ...] = ()
    replica_results: tuple[ReplicaResult, ...] | None = None
    proof: RemovalProof | None = None
    disposed: tuple[Disposal, ...] | None = None
    detail: str | None = None
    subject: str | None = None
    residency: str | None = None
    destination_uploads_aborted: tuple[UploadAbort, ...] | None = None
    schema: int | None = SCHEMA          # None: a hand-written record without the member (read as 1)
    unknown: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)
    # Working members, kept in the journal between steps and never written to records.jsonl.
    copying: Copying | None = None
    plan: tuple[PlannedStep, ...] | None = None

    @property
    def final(self) -> bool:
        return self.state in TERMINAL

    @property
    def bytes(self) -> int:
        return sum(v.size for v in self.versions)

    @property
    def uris(self) -> list[str]:
        """Every place the record names: source, destination, then replicas (what proofs look records up by)."""
        return [self.source, self.destination, *self.replicas]

    @property
    def exception(self) -> str:
        """The reason and detail of a HELD or FAILED record, as reports show it."""
        if self.detail:
            return f"{self.reason}: {self.detail}"
        return str(self.reason)

    def verified(self, version: str | None, etag: str | None) -> VersionCopy | None:
        """The verified copy of this source version, if any (S3's old ``"null"`` reads as no version id)."""
        pin = pinned_version(version)
        for v in self.versions:
            if v.pin == pin and v.etag == etag:
                return v
        return None

    # -- JSON ------------------------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, value: Any, where: str = "record") -> Record:
        """A record as records.jsonl holds it. Raises RecordError when it breaks its schema."""
        obj = _obj(value, where)
        schema = obj.get("schema", 1)
        if schema not in SCHEMAS:
            raise RecordError(f"{where} has schema {schema!r}; this migrator reads schema "
                              f"{', '.join(str(s) for s in sorted(SCHEMAS))}")
        missing = [m for m in REQUIRED[schema] if m not in obj]
        if missing:
            raise RecordError(f"{where} lacks required member(s) {', '.join(missing)} of schema {schema}")
        rec = cls._read(obj, where, _int(obj, "row", where), _str(obj, "state", where),
                        _opt_str(obj, "reason", where), working=False)
        allowed = STATES_OF_SCHEMA[schema]
        if rec.state not in allowed:
            raise RecordError(f"{where}: state is not one of {', '.join(s for s in FINAL_STATES if s in allowed)}"
                              f" (schema {schema})")
        if rec.state != State.REMOVED and not rec.reason:
            raise RecordError(f"{where} is {rec.state} without a reason")
        return rec

    def to_json(self) -> JSON:
        """The record as records.jsonl holds it (canonical JSON of this is the signed line)."""
        out = self._members()
        out.update({"row": self.row, "state": str(self.state), "reason": self.reason})
        if self.schema is not None:
            out["schema"] = self.schema
        return _with_unknown(out, self.unknown)

    @classmethod
    def from_journal(cls, row: int, state: str, reason: str | None, data: Mapping[str, Any]) -> Record:
        """A row's record as the journal keeps it between steps (state and reason are its columns)."""
        return cls._read(_obj(data, f"journal row {row}"), f"journal row {row}", row, state, reason, working=True)

    def journal_data(self) -> JSON:
        """The journal's payload: the record's members but its columns, plus the working members."""
        out = _with_unknown(self._members(), self.unknown)
        if self.copying is not None:
            out["copying"] = self.copying.to_json()
        if self.plan is not None:
            out["plan"] = [p.to_json() for p in self.plan]
        return out

    @classmethod
    def _read(cls, obj: Mapping[str, Any], where: str, row: int, state: str, reason: str | None, *,
              working: bool) -> Record:
        def each(name: str, read: Any) -> tuple[Any, ...] | None:
            if obj.get(name) is None:
                return None
            return tuple(read(v, f"{where} {name}[{i}]") for i, v in enumerate(_list(obj, name, where)))

        proof = obj.get("proof")
        copying = obj.get("copying") if working else None
        plan = obj.get("plan") if working else None
        known = _RECORD_MEMBERS + (_WORKING_MEMBERS if working else ())
        return cls(
            row=row, state=state, reason=reason,
            source=_uri_text(obj.get("source"), f"{where} source") if "source" in obj else "",
            destination=_uri_text(obj.get("destination"), f"{where} destination") if "destination" in obj else "",
            replicas=tuple(_uri_text(r, f"{where} replica") for r in _list(obj, "replicas", where)),
            versions=each("versions", VersionCopy.from_json) or (),
            deletions=each("deletions", Deletion.from_json) or (),
            replica_results=each("replica_results", ReplicaResult.from_json),
            proof=None if proof is None else RemovalProof.from_json(proof, f"{where} proof"),
            disposed=each("disposed", Disposal.from_json),
            detail=_opt_str(obj, "detail", where), subject=_opt_str(obj, "subject", where),
            residency=_opt_str(obj, "residency", where),
            destination_uploads_aborted=each("destination_uploads_aborted", UploadAbort.from_json),
            schema=_int(obj, "schema", where) if "schema" in obj else (None if not working else SCHEMA),
            unknown=_unknown(obj, known),
            copying=None if not copying else Copying.from_json(copying),
            plan=None if plan is None else tuple(PlannedStep.from_json(p) for p in _list(obj, "plan", where)),
        )

    def _members(self) -> JSON:
        out: JSON = {"source": self.source, "destination": self.destination, "replicas": list(self.replicas),
                     "versions": [v.to_json() for v in self.versions],
                     "deletions": [d.to_json() for d in self.deletions]}
        if self.replica_results is not None:
            out["replica_results"] = [r.to_json() for r in self.replica_results]
        if self.proof is not None:
            out["proof"] = self.proof.to_json()
        if self.disposed is not None:
            out["disposed"] = [d.to_json() for d in self.disposed]
        if self.detail is not None:
            out["detail"] = self.detail
        if self.subject is not None:
            out["subject"] = self.subject
        if self.residency is not None:
            out["residency"] = self.residency
        if self.destination_uploads_aborted is not None:
            out["destination_uploads_aborted"] = [u.to_json() for u in self.destination_uploads_aborted]
        return out


@dataclass(frozen=True, slots=True)
class Transition:
    """One journal write: a row's new state, its record as it now stands, and what the event log notes."""

    record: Record
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def row(self) -> int:
        return self.record.row

    @property
    def state(self) -> str:
        return self.record.state

