"""The OCI emulator's operations over its model (:mod:`migrator.sandbox.oci.model`), with OCI's rules and errors.

Every state change happens here, under the service's lock; the HTTP side parses requests, reads the model to
render answers, and changes nothing. The rules, as OCI documents them:

- conditions: ``if-match`` against the live object's (or the named version's, or the bucket's) ETag;
  ``if-none-match`` may only be ``*`` (no live object);
- checksums: ``Content-MD5`` and ``opc-content-crc32c``/``-sha256``/``-sha384`` are checked against the body
  (400 ``UnmatchedContent...``); a commit reports the multipart MD5, and the whole object's CRC32C or a
  multipart SHA as the upload's algorithm says;
- versioning: ``Disabled`` replaces, ``Enabled`` keeps every version and deletes make markers, ``Suspended``
  replaces what was written during the suspension and keeps what came before;
- retention rules: nothing a rule retains is deleted or overwritten (409 ``Conflict``), a locked rule is
  not deleted and only its duration grows, no rules while versioning is ``Enabled`` nor the reverse;
- replication: a destination is read-only (403 ``BucketIsReadonly``); ``replicate_put`` and
  ``replicate_delete`` say exactly what propagates; paused replication queues its work in order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import google_crc32c

from migrator.sandbox.base import ApiError, EmulatorService, b64, iso_millis
from migrator.sandbox.oci.kms import KmsVault
from migrator.sandbox.oci.model import TIME_UNITS, Bucket, ObjectVersion, Part, ReplicationPolicy, RetentionRule, Upload

CHECKSUM_ALGORITHMS = ("CRC32C", "SHA256", "SHA384")
TIERS = ("Standard", "InfrequentAccess", "Archive")
MAX_RETENTION_RULES = 100                 # documented per bucket
MIN_LOCK_DELAY = timedelta(days=14)       # documented: a rule locks no sooner than 14 days after it is set


@dataclass(frozen=True)
class Declared:
    """The checksums a request declares for its body (``Content-MD5``, ``opc-content-*``), as sent."""

    content_md5: str | None = None
    crc32c: str | None = None
    sha256: str | None = None
    sha384: str | None = None


@dataclass(frozen=True)
class ObjectFields:
    """What a put says about the object besides its bytes."""

    content_type: str
    content_encoding: str | None
    content_language: str | None
    content_disposition: str | None
    cache_control: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class Digests:
    md5: bytes
    crc32c_b64: str | None
    sha: bytes | None   # SHA-256 or SHA-384 per algorithm


def _crc32c_b64(data: bytes) -> str:
    return b64(int(google_crc32c.value(data)).to_bytes(4, "big"))


def _decode_b64(text: str, length: int, header: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "InvalidParameter", f"{header} is not valid base64") from None
    if len(raw) != length:
        raise ApiError(400, "InvalidParameter", f"{header} has {len(raw)} bytes, want {length}")
    return raw


def checksum_algorithm(value: str | None) -> str | None:
    """``opc-checksum-algorithm`` upper-cased: one of ``CHECKSUM_ALGORITHMS``, or None when not given.
    Empty is not given: the OCI Go SDK sends the header empty for an unset enum, and OCI accepts that."""
    if value is None or not value.strip():
        return None
    upper = str(value).upper()
    if upper not in CHECKSUM_ALGORITHMS:
        raise ApiError(400, "InvalidParameter", f"unsupported opc-checksum-algorithm {value!r}")
    return upper


def check_body(declared: Declared, body: bytes, algorithm: str | None) -> Digests:
    """Validate Content-MD5 and the opc-content-* checksums; a mismatch is a 400 as OCI documents."""
    md5 = hashlib.md5(body).digest()
    if declared.content_md5 is not None and _decode_b64(declared.content_md5, 16, "Content-MD5") != md5:
        raise ApiError(400, "UnmatchedContentMD5",
                       f"The computed MD5 of the request body ({b64(md5)}) does not match the "
                       f"Content-MD5 header ({declared.content_md5})")
    crc: str | None = None
    if algorithm == "CRC32C" or declared.crc32c is not None:
        crc = _crc32c_b64(body)
        if declared.crc32c is not None and \
                _decode_b64(declared.crc32c, 4, "opc-content-crc32c") != base64.b64decode(crc):
            raise ApiError(400, "UnmatchedContentCRC32C",
                           f"The computed CRC32C of the request body ({crc}) does not match the "
                           f"opc-content-crc32c header ({declared.crc32c})")
    sha: bytes | None = None
    for name, alg, size, value in (("SHA256", hashlib.sha256, 32, declared.sha256),
                                   ("SHA384", hashlib.sha384, 48, declared.sha384)):
        header = f"opc-content-{name.lower()}"
        if algorithm == name or value is not None:
            digest = alg(body).digest()
            if algorithm == name:
                sha = digest
            if value is not None and _decode_b64(value, size, header) != digest:
                raise ApiError(400, f"UnmatchedContent{name}",
                               f"The computed {name} of the request body ({b64(digest)}) does not match "
                               f"the {header} header ({value})")
    return Digests(md5=md5, crc32c_b64=crc, sha=sha)


class OciService(EmulatorService):
    """The buckets and the operations on them; every state change happens here, under ``lock``."""

    def __init__(self, namespace: str, min_part_size: int, region: str = "us-ashburn-1") -> None:
        super().__init__("oci")
        self.namespace = namespace
        self.region = region
        self.min_part_size = min_part_size
        self.buckets: dict[str, Bucket] = {}
        self.vault = KmsVault(self.now)
        self.replication_paused = False
        self._pending: list[Callable[[], None]] = []   # replication work held while paused, in order

    def reset(self) -> None:
        """Buckets, the replication queue, the vault's keys, counts and the fault plan (the clock keeps its
        offset, as every emulator's does: it never goes back)."""
        with self.lock:
            self.buckets.clear()
            self._pending.clear()
            self.replication_paused = False
        self.vault.reset()
        super().reset()

    # -- buckets

    def bucket(self, namespace: str, name: str) -> Bucket:
        if namespace != self.namespace:
            raise ApiError(404, "NamespaceNotFound", f"Namespace '{namespace}' does not exist")
        b = self.buckets.get(name)
        if b is None:
            raise ApiError(404, "BucketNotFound",
                           f"Either the bucket named '{name}' does not exist in the namespace "
                           f"'{namespace}' or you are not authorized to access it")
        return b

    def create_bucket(self, namespace: str, details: dict[str, Any]) -> Bucket:
        if namespace != self.namespace:
            raise ApiError(404, "NamespaceNotFound", f"Namespace '{namespace}' does not exist")
        name = details.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._\-]{1,256}", name):
            raise ApiError(400, "InvalidBucketName", f"invalid bucket name {name!r}")
        if not isinstance(details.get("compartmentId"), str):
            raise ApiError(400, "InvalidParameter", "compartmentId is required")
        versioning = details.get("versioning") or "Disabled"
        if versioning not in ("Enabled", "Disabled"):
            raise ApiError(400, "InvalidParameter",
                           f"versioning must be Enabled or Disabled, not {versioning}")
        tier = details.get("storageTier") or "Standard"
        if tier not in ("Standard", "Archive"):
            raise ApiError(400, "InvalidParameter", f"invalid storageTier {tier}")
        with self.lock:
            if name in self.buckets:
                raise ApiError(409, "BucketAlreadyExists", f"Either the bucket '{name}' in namespace "
                               f"'{namespace}' already exists or you are not authorized to create it")
            b = Bucket(name=name, compartment_id=details["compartmentId"], created=self.now(),
                       etag=str(uuid.uuid4()), versioning=versioning, storage_tier=tier,
                       metadata=dict(details.get("metadata") or {}))
            self.buckets[name] = b
            return b

    @staticmethod
    def check_bucket_etag(b: Bucket, if_match: str | None) -> None:
        if if_match is not None and if_match != b.etag:
            raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the bucket's ETag")

    def check_writable(self, b: Bucket) -> None:
        """A replication destination takes writes from replication only (the message is OCI's)."""
        if b.read_only:
            raise ApiError(403, "BucketIsReadonly",
                           f"Bucket '{b.name}' in namespace '{self.namespace}' is in read-only state")

    def update_bucket(self, b: Bucket, details: dict[str, Any], if_match: str | None) -> None:
        with self.lock:
            self.check_bucket_etag(b, if_match)
            versioning = details.get("versioning")
            if versioning is not None:
                if versioning not in ("Enabled", "Suspended"):
                    raise ApiError(400, "InvalidParameter",
                                   f"versioning can be changed to Enabled or Suspended, not {versioning}")
                if versioning != b.versioning:
                    # Documented: no versioning on a replication destination, none while retention rules
                    # exist, and Disabled means "never enabled".
                    self.check_writable(b)
                    if versioning == "Suspended" and b.versioning == "Disabled":
                        raise ApiError(400, "InvalidParameter", "versioning was never enabled on this bucket")
                    if versioning == "Enabled" and b.retention_rules:
                        raise ApiError(409, "Conflict",
                                       f"Versioning cannot be enabled on bucket '{b.name}' while it has "
                                       "retention rules")
                    b.versioning = versioning
            if isinstance(details.get("metadata"), dict):
                b.metadata = dict(details["metadata"])
            b.etag = str(uuid.uuid4())

    def delete_bucket(self, b: Bucket, if_match: str | None) -> None:
        with self.lock:
            self.check_bucket_etag(b, if_match)
            self.check_writable(b)
            if b.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{b.name}' has a replication policy: delete the policy first")
            if any(b.objects.values()) or b.uploads:
                raise ApiError(409, "BucketNotEmpty", f"Bucket named '{b.name}' is not empty")
            del self.buckets[b.name]

    # -- retention rules

    def _rule_fields(self, details: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The fields present in a create or update body, validated; absent fields are left out."""
        out: dict[str, Any] = {}
        if details.get("displayName") is not None:
            name = details["displayName"]
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._\-]{1,256}", name):
                raise ApiError(400, "InvalidParameter", f"invalid displayName {name!r}")
            out["display_name"] = name
        if details.get("duration") is not None:
            d = details["duration"]
            amount = d.get("timeAmount") if isinstance(d, dict) else None
            unit = d.get("timeUnit") if isinstance(d, dict) else None
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise ApiError(400, "InvalidParameter", "duration.timeAmount must be a positive integer")
            if unit not in TIME_UNITS:
                raise ApiError(400, "InvalidParameter", f"duration.timeUnit must be DAYS or YEARS, not {unit!r}")
            out["amount"], out["unit"] = amount, unit
        if details.get("timeRuleLocked") is not None:
            try:
                lock = datetime.fromisoformat(str(details["timeRuleLocked"]).replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(400, "InvalidParameter", "timeRuleLocked is not an RFC 3339 time") from None
            if lock.tzinfo is None:
                lock = lock.replace(tzinfo=UTC)
            if lock < now + MIN_LOCK_DELAY:
                raise ApiError(400, "InvalidParameter",
                               "timeRuleLocked must be at least 14 days after the rule is set")
            out["time_rule_locked"] = lock
        return out

    def create_retention_rule(self, b: Bucket, details: dict[str, Any]) -> RetentionRule:
        now = self.now()
        fields = self._rule_fields(details, now)
        if "time_rule_locked" in fields and "amount" not in fields:
            raise ApiError(400, "InvalidParameter", "a rule without a duration cannot be locked")
        with self.lock:
            if b.versioning == "Enabled":
                raise ApiError(409, "Conflict",
                               f"Retention rules cannot be added to bucket '{b.name}': versioning is enabled")
            if len(b.retention_rules) >= MAX_RETENTION_RULES:
                raise ApiError(400, "LimitExceeded", f"a bucket has at most {MAX_RETENTION_RULES} retention rules")
            rule_id = str(uuid.uuid4())
            rule = RetentionRule(
                rule_id=rule_id,
                display_name=fields.get("display_name") or f"retention-rule-{now.strftime('%Y%m%d-%H%M%S')}",
                amount=fields.get("amount"), unit=fields.get("unit"),
                time_rule_locked=fields.get("time_rule_locked"), created=now, modified=now,
                etag=str(uuid.uuid4()))
            b.retention_rules[rule_id] = rule
            return rule

    def retention_rule(self, b: Bucket, rule_id: str) -> RetentionRule:
        rule = b.retention_rules.get(rule_id)
        if rule is None:
            raise ApiError(404, "NotFound", f"Retention rule '{rule_id}' was not found in bucket '{b.name}'")
        return rule

    def update_retention_rule(self, b: Bucket, rule_id: str, details: dict[str, Any],
                              if_match: str | None) -> RetentionRule:
        now = self.now()
        fields = self._rule_fields(details, now)
        with self.lock:
            rule = self.retention_rule(b, rule_id)
            if if_match is not None and if_match != rule.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the rule's ETag")
            if rule.locked(now):
                # Documented: once locked, only increases in the duration are allowed.
                old, new = rule.seconds, (fields["amount"] * TIME_UNITS[fields["unit"]]
                                          if "amount" in fields else rule.seconds)
                if (set(fields) - {"amount", "unit", "display_name"}
                        or fields.get("display_name", rule.display_name) != rule.display_name
                        or old is None or new is None or new < old):
                    raise ApiError(409, "Conflict",
                                   f"Retention rule '{rule.display_name}' is locked: only its duration can grow")
            amount = fields.get("amount", rule.amount)
            if fields.get("time_rule_locked") is not None and amount is None:
                raise ApiError(400, "InvalidParameter", "a rule without a duration cannot be locked")
            rule.display_name = fields.get("display_name", rule.display_name)
            rule.amount, rule.unit = amount, fields.get("unit", rule.unit)
            rule.time_rule_locked = fields.get("time_rule_locked", rule.time_rule_locked)
            rule.modified, rule.etag = now, str(uuid.uuid4())
            return rule

    def delete_retention_rule(self, b: Bucket, rule_id: str, if_match: str | None) -> None:
        with self.lock:
            rule = self.retention_rule(b, rule_id)
            if if_match is not None and if_match != rule.etag:
                raise ApiError(412, "IfMatchFailed", "The If-Match header does not match the rule's ETag")
            if rule.locked(self.now()):
                raise ApiError(409, "Conflict", f"Retention rule '{rule.display_name}' is locked: it can only "
                               "be removed by deleting the bucket")
            del b.retention_rules[rule_id]

    def check_retention(self, b: Bucket, name: str, v: ObjectVersion | None, what: str) -> None:
        """Refuse to delete or overwrite ``v`` while any rule retains it (duration from its last modified)."""
        if v is None or v.is_delete_marker or not b.retention_rules:
            return
        now = self.now()
        for rule in sorted(b.retention_rules.values(), key=lambda r: r.created):
            if rule.retains(v.created, now):
                seconds = rule.seconds
                until = ("indefinitely" if seconds is None
                         else f"until {iso_millis(v.created + timedelta(seconds=seconds))}")
                raise ApiError(409, "Conflict",
                               f"Cannot {what} object '{name}' (version '{v.version_id}') in bucket '{b.name}': "
                               f"retention rule '{rule.display_name}' retains it {until}")

    # -- replication

    def create_replication_policy(self, b: Bucket, details: dict[str, Any]) -> ReplicationPolicy:
        given: dict[str, str] = {}
        for key in ("name", "destinationRegionName", "destinationBucketName"):
            value = details.get(key)
            if not isinstance(value, str) or not value:
                raise ApiError(400, "InvalidParameter", f"{key} is required")
            given[key] = value
        name, region, dest_name = given["name"], given["destinationRegionName"], given["destinationBucketName"]
        with self.lock:
            dest = self.buckets.get(dest_name)
            if dest is None:
                raise ApiError(400, "RelatedResourceNotAuthorizedOrNotFound",
                               f"The destination bucket '{dest_name}' was not found: create it first")
            # Documented constraints: one policy per source, one source per destination, no chains, and
            # no versioning on a destination.
            if dest is b:
                raise ApiError(400, "InvalidParameter", "a bucket cannot replicate to itself")
            if b.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict", f"Bucket '{b.name}' already has a policy")
            if b.read_only:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{b.name}' is a replication destination: chained replication is not "
                               "supported")
            # A destination left read-only by a deleted policy may take a new one (documented).
            if dest.replication_source is not None or dest.replication is not None:
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{dest_name}' is already part of a replication")
            if dest.versioning == "Enabled":
                raise ApiError(409, "ReplicationPolicyConflict",
                               f"Bucket '{dest_name}' has versioning enabled: a destination cannot be versioned")
            now = self.now()
            policy = ReplicationPolicy(policy_id=str(uuid.uuid4()), name=name, destination_region=region,
                                       destination_bucket=dest_name, created=now, last_sync=now)
            b.replication = policy
            dest.read_only = True
            dest.replication_source = (name, b.name)
            return policy

    def replication_policy(self, b: Bucket, policy_id: str) -> ReplicationPolicy:
        if b.replication is None or b.replication.policy_id != policy_id:
            raise ApiError(404, "NotFound", f"Replication policy '{policy_id}' was not found on '{b.name}'")
        return b.replication

    def delete_replication_policy(self, b: Bucket, policy_id: str) -> None:
        """Replication stops; the destination stays read-only until MakeBucketWritable is called on it
        (documented: a destination cannot be deleted until it is made writable again)."""
        with self.lock:
            policy = self.replication_policy(b, policy_id)
            b.replication = None
            dest = self.buckets.get(policy.destination_bucket)
            if dest is not None and dest.replication_source == (policy.name, b.name):
                dest.replication_source = None

    def make_bucket_writable(self, dest: Bucket) -> None:
        with self.lock:
            if not dest.read_only:
                raise ApiError(409, "BucketNotReadOnly", f"Bucket '{dest.name}' is not read-only")
            dest.read_only = False
            source = self.buckets.get(dest.replication_source[1]) if dest.replication_source else None
            dest.replication_source = None
            # Documented: the source's policy changes to a client error state.
            if source is not None and source.replication is not None \
                    and source.replication.destination_bucket == dest.name:
                source.replication.status = "CLIENT_ERROR"
                source.replication.status_message = (f"The destination bucket '{dest.name}' was made writable: "
                                                     "it no longer accepts replication")

    def replication_sources(self, dest: Bucket) -> list[dict[str, str]]:
        with self.lock:
            if dest.replication_source is None:
                return []
            return [{"policyName": dest.replication_source[0], "sourceRegionName": self.region,
                     "sourceBucketName": dest.replication_source[1]}]

    def _replicate(self, source: Bucket, work: Callable[[ReplicationPolicy, Bucket], None]) -> None:
        """Run ``work`` against the destination now, or queue it while replication is paused."""
        policy = source.replication
        if policy is None:
            return

        def run() -> None:
            if source.replication is not policy or policy.status != "ACTIVE":
                return   # the policy went away or broke meanwhile: replication stopped
            dest = self.buckets.get(policy.destination_bucket)
            if dest is None or not dest.read_only:
                policy.status = "CLIENT_ERROR"
                policy.status_message = f"The destination bucket '{policy.destination_bucket}' is not available"
                return
            try:
                work(policy, dest)
            except ApiError as err:   # e.g. a retention rule on the destination: the policy reports it
                policy.status, policy.status_message = "CLIENT_ERROR", err.message
                return
            policy.last_sync = self.now()

        if self.replication_paused:
            self._pending.append(run)
        else:
            run()

    def replicate_put(self, source: Bucket, name: str, v: ObjectVersion) -> None:
        """A new object in the source is copied to the destination: same name, bytes, metadata, ETag, MD5
        and checksums; the destination gives it its own version id and timestamps (as OCI documents)."""
        def work(policy: ReplicationPolicy, dest: Bucket) -> None:
            self.check_retention(dest, name, dest.latest(name), "overwrite")
            copy = replace(v, version_id=str(uuid.uuid4()), created=self.now(), metadata=dict(v.metadata),
                           suspended=False)
            self.store_version(dest, name, copy)
        self._replicate(source, work)

    def replicate_delete(self, source: Bucket, name: str) -> None:
        """The source's live object went away (a delete, a delete marker, or a version-pinned delete of the
        latest version): the destination's object of that name is deleted. Previous versions never
        replicate, so deleting one changes nothing in the destination."""
        def work(policy: ReplicationPolicy, dest: Bucket) -> None:
            live = dest.latest(name)
            if live is None:
                return
            self.check_retention(dest, name, live, "delete")
            self._delete_live(dest, name)
        self._replicate(source, work)

    def set_replication_paused(self, paused: bool) -> None:
        """Pause: replication work queues up (a lagging destination). Resume: the queue runs in order."""
        with self.lock:
            self.replication_paused = paused
            if not paused:
                pending, self._pending = self._pending, []
                for run in pending:
                    run()

    def replication_state(self) -> tuple[bool, int]:
        """Whether replication is paused, and how much work waits."""
        with self.lock:
            return self.replication_paused, len(self._pending)

    # -- objects

    def find_version(self, b: Bucket, name: str, version_id: str | None) -> ObjectVersion:
        if version_id is None:
            v = b.latest(name)
        else:
            v = next((x for x in b.objects.get(name, ()) if x.version_id == version_id), None)
            if v is not None and v.is_delete_marker:
                v = None
        if v is None:
            suffix = f" with version '{version_id}'" if version_id else ""
            raise ApiError(404, "ObjectNotFound",
                           f"The object '{name}'{suffix} was not found in the bucket '{b.name}'")
        return v

    def read_version(self, b: Bucket, name: str, version_id: str | None, if_match: str | None) -> ObjectVersion:
        """The version a GET or HEAD names, if its ETag matches ``if_match``."""
        with self.lock:
            v = self.find_version(b, name, version_id)
        if if_match is not None and if_match != v.etag:
            raise ApiError(412, "IfMatchFailed", f"The If-Match header ({if_match}) does not match the "
                           "object's ETag")
        return v

    @staticmethod
    def check_readable(v: ObjectVersion) -> None:
        if v.storage_tier == "Archive":
            raise ApiError(409, "NotRestored", "The object is archived; restore it before reading")

    @staticmethod
    def check_write_conditions(b: Bucket, name: str, if_match: str | None, if_none_match: str | None) -> None:
        live = b.latest(name)
        if if_none_match is not None:
            if if_none_match != "*":
                raise ApiError(400, "InvalidParameter", "The only valid value of if-none-match is '*'")
            if live is not None:
                raise ApiError(412, "IfNoneMatchFailed",
                               f"The object '{name}' already exists and if-none-match is '*'")
        if if_match is not None and (live is None or live.etag != if_match):
            raise ApiError(412, "IfMatchFailed",
                           f"The If-Match header ({if_match}) does not match the object's ETag")

    @staticmethod
    def store_version(b: Bucket, name: str, v: ObjectVersion) -> None:
        versions = b.objects.setdefault(name, [])
        if b.versioning == "Enabled":
            versions.append(v)
        elif b.versioning == "Suspended":
            # Documented: uploads behave as with versioning disabled, and versions made while it was enabled
            # are retained. So a write replaces the entry written during the suspension, if any, and
            # otherwise goes on top of the retained versions.
            v.suspended = True
            if versions and versions[-1].suspended:
                versions[-1] = v
            else:
                versions.append(v)
        else:
            versions[:] = [v]

    def put_object(self, b: Bucket, name: str, body: bytes, algorithm: str | None, declared: Declared,
                   fields: ObjectFields, tier: str | None, if_match: str | None,
                   if_none_match: str | None) -> ObjectVersion:
        """PutObject: the body's declared checksums, the storage tier, then ``write_object``."""
        digests = check_body(declared, body, algorithm)
        tier = tier or b.storage_tier
        if tier not in TIERS:
            raise ApiError(400, "InvalidParameter", f"invalid storage-tier {tier}")
        v = ObjectVersion(
            version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(), data=body,
            md5_b64=b64(digests.md5), checksum_algorithm=algorithm, crc32c_b64=digests.crc32c_b64,
            sha256_b64=b64(digests.sha) if algorithm == "SHA256" and digests.sha else None,
            sha384_b64=b64(digests.sha) if algorithm == "SHA384" and digests.sha else None,
            content_type=fields.content_type, content_encoding=fields.content_encoding,
            content_language=fields.content_language, content_disposition=fields.content_disposition,
            cache_control=fields.cache_control, metadata=fields.metadata, storage_tier=tier)
        self.write_object(b, name, v, if_match, if_none_match)
        return v

    def write_object(self, b: Bucket, name: str, v: ObjectVersion, if_match: str | None,
                     if_none_match: str | None) -> None:
        """Store ``v`` as the live object (put and commit): conditions, retention, then replication."""
        with self.lock:
            self.check_writable(b)
            self.check_write_conditions(b, name, if_match, if_none_match)
            self.check_retention(b, name, b.latest(name), "overwrite")
            self.store_version(b, name, v)
            self.replicate_put(b, name, v)

    def _delete_live(self, b: Bucket, name: str) -> ObjectVersion | None:
        """Delete the live object as the bucket's versioning state says; returns the marker made, if any."""
        versions = b.objects.get(name, [])
        marker: ObjectVersion | None = None
        if b.versioning == "Disabled":
            b.objects.pop(name, None)
            return None
        if b.versioning == "Suspended":
            # As with versioning disabled, the deletion is permanent for what was written while suspended;
            # retained older versions stay, hidden behind a delete marker so that the object is gone.
            if versions and versions[-1].suspended:
                versions.pop()
            if versions and not versions[-1].is_delete_marker:
                marker = ObjectVersion(version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(),
                                       is_delete_marker=True, suspended=True)
                versions.append(marker)
            if not versions:
                b.objects.pop(name, None)
            return marker
        marker = ObjectVersion(version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(),
                               is_delete_marker=True)
        versions.append(marker)
        return marker

    def delete_object(self, b: Bucket, name: str, version_id: str | None,
                      if_match: str | None) -> ObjectVersion | None:
        """Returns the delete marker it created, if any."""
        with self.lock:
            self.check_writable(b)
            versions = b.objects.get(name, [])
            if version_id is not None:
                idx = next((i for i, x in enumerate(versions) if x.version_id == version_id), None)
                if idx is None:
                    raise ApiError(404, "ObjectNotFound", f"The object '{name}' with version "
                                   f"'{version_id}' was not found in the bucket '{b.name}'")
                target = versions[idx]
                if if_match is not None and target.etag != if_match:
                    raise ApiError(412, "IfMatchFailed",
                                   f"The If-Match header ({if_match}) does not match the version's ETag")
                self.check_retention(b, name, target, "delete")
                was_live = idx == len(versions) - 1 and not target.is_delete_marker
                del versions[idx]
                if not versions:
                    b.objects.pop(name, None)
                if was_live:
                    self.replicate_delete(b, name)
                return None
            live = self.find_version(b, name, None)
            if if_match is not None and live.etag != if_match:
                raise ApiError(412, "IfMatchFailed",
                               f"The If-Match header ({if_match}) does not match the object's ETag")
            self.check_retention(b, name, live, "delete")
            marker = self._delete_live(b, name)
            self.replicate_delete(b, name)
            return marker

    def create_upload(self, b: Bucket, details: dict[str, Any], algorithm: str | None,
                      if_match: str | None, if_none_match: str | None) -> Upload:
        name = details.get("object")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "InvalidParameter", "object is required")
        metadata: dict[str, str] = {}
        for k, v in (details.get("metadata") or {}).items():
            if not str(k).lower().startswith("opc-meta-"):
                raise ApiError(400, "InvalidParameter", f"metadata key {k!r} must start with opc-meta-")
            metadata[str(k)[len("opc-meta-"):].lower()] = str(v)
        tier = details.get("storageTier") or b.storage_tier
        if tier not in TIERS:
            raise ApiError(400, "InvalidParameter", f"invalid storageTier {tier}")
        with self.lock:
            self.check_writable(b)
            self.check_write_conditions(b, name, if_match, if_none_match)
            up = Upload(upload_id=str(uuid.uuid4()), name=name, created=self.now(),
                        checksum_algorithm=algorithm,
                        content_type=details.get("contentType") or "application/octet-stream",
                        content_encoding=details.get("contentEncoding"),
                        content_language=details.get("contentLanguage"),
                        content_disposition=details.get("contentDisposition"),
                        cache_control=details.get("cacheControl"), metadata=metadata, storage_tier=tier,
                        if_match=if_match, if_none_match=if_none_match)
            b.uploads[up.upload_id] = up
            return up

    @staticmethod
    def upload(b: Bucket, name: str, upload_id: str | None) -> Upload:
        up = b.uploads.get(upload_id or "")
        if up is None or up.name != name:
            raise ApiError(404, "NoSuchUpload", f"The upload '{upload_id}' for object '{name}' was not found "
                           f"in the bucket '{b.name}'")
        return up

    def upload_part(self, b: Bucket, name: str, upload_id: str | None, part_num: int, body: bytes,
                    algorithm_header: str | None, declared: Declared, if_match: str | None,
                    if_none_match: str | None) -> tuple[Part, str | None]:
        """UploadPart: the part stored, and the checksum algorithm it was checked with. The body is hashed
        outside the lock, so everything checked before is checked again, under it, as the part is stored."""
        with self.lock:
            self.check_writable(b)
            up = self.upload(b, name, upload_id)
        algorithm = checksum_algorithm(algorithm_header) or up.checksum_algorithm
        if up.checksum_algorithm and algorithm != up.checksum_algorithm:
            raise ApiError(400, "InvalidParameter", "opc-checksum-algorithm differs from the upload's")
        digests = check_body(declared, body, algorithm)
        part = Part(data=body, etag=str(uuid.uuid4()), md5=digests.md5, sha=digests.sha,
                    crc32c_b64=digests.crc32c_b64 or _crc32c_b64(body))
        with self.lock:
            self.check_writable(b)
            self.check_write_conditions(b, name, if_match, if_none_match)
            if b.uploads.get(up.upload_id) is not up:
                raise ApiError(404, "NoSuchUpload", f"The upload '{up.upload_id}' was not found")
            up.parts[part_num] = part
        return part, algorithm

    def abort_upload(self, b: Bucket, name: str, upload_id: str | None) -> None:
        with self.lock:
            self.check_writable(b)
            up = self.upload(b, name, upload_id)
            del b.uploads[up.upload_id]

    def commit(self, b: Bucket, up: Upload, details: dict[str, Any], if_match: str | None,
               if_none_match: str | None) -> ObjectVersion:
        to_commit = details.get("partsToCommit")
        if not isinstance(to_commit, list) or not to_commit:
            raise ApiError(400, "InvalidParameter", "partsToCommit is required")
        exclude = {int(p.get("partNum", -1)) for p in details.get("partsToExclude") or []}
        with self.lock:
            self.check_writable(b)
            if b.uploads.get(up.upload_id) is not up:
                raise ApiError(404, "NoSuchUpload", f"The upload '{up.upload_id}' was not found")
            chosen: dict[int, Part] = {}
            for item in to_commit:
                num, etag = item.get("partNum"), item.get("etag")
                if not isinstance(num, int) or num in exclude:
                    raise ApiError(400, "InvalidParameter", f"invalid part number {num!r}")
                part = up.parts.get(num)
                if part is None or part.etag != etag:
                    raise ApiError(400, "InvalidUploadPart",
                                   f"Part {num} with etag {etag!r} was not uploaded for this upload")
                chosen[num] = part
            ordered = [chosen[n] for n in sorted(chosen)]
            if self.min_part_size and any(len(p.data) < self.min_part_size for p in ordered[:-1]):
                raise ApiError(400, "InvalidParameter",
                               f"every part but the last must be at least {self.min_part_size} bytes")
            self.check_write_conditions(b, up.name, if_match or up.if_match,
                                        if_none_match or up.if_none_match)
            self.check_retention(b, up.name, b.latest(up.name), "overwrite")
            del b.uploads[up.upload_id]
        data = b"".join(p.data for p in ordered)
        count = len(ordered)
        v = ObjectVersion(
            version_id=str(uuid.uuid4()), etag=str(uuid.uuid4()), created=self.now(), data=data,
            multipart_md5=f"{b64(hashlib.md5(b''.join(p.md5 for p in ordered)).digest())}-{count}",
            checksum_algorithm=up.checksum_algorithm, content_type=up.content_type,
            content_encoding=up.content_encoding, content_language=up.content_language,
            content_disposition=up.content_disposition, cache_control=up.cache_control,
            metadata=up.metadata, storage_tier=up.storage_tier)
        if up.checksum_algorithm == "CRC32C":
            v.crc32c_b64 = _crc32c_b64(data)
        elif up.checksum_algorithm in ("SHA256", "SHA384"):
            alg = hashlib.sha256 if up.checksum_algorithm == "SHA256" else hashlib.sha384
            v.multipart_sha = f"{b64(alg(b''.join(p.sha or b'' for p in ordered)).digest())}-{count}"
        # A concurrent put may have landed while the data was joined: the checks run again as it is stored.
        self.write_object(b, up.name, v, if_match or up.if_match, if_none_match or up.if_none_match)
        return v
