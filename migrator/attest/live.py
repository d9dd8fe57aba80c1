"""Live spot checks: does what a verified attestation claims still hold in the clouds today?

``check_live`` verifies the attestation (with its records) first, draws a reproducible sample of records,
and checks each one with read calls only: ``stat``, ``open_read``, ``list_versions`` and, where a store has
them, its uploads and soft-deleted listings. It never calls put, delete, abort, restore or bucket_facts,
so read-only credentials suffice (docs/auditor.md says how to make them).

Sampling (docs/auditor.md): row r of N is keyed by SHA-256 of the ASCII text
``migrator-live-sample/v1\\n<seed>\\n<merkle root hex>\\n<r>`` and the ``sample`` rows with the smallest keys
(compared as bytes) are checked, in row order.

Imports nothing from the pipeline, the journal or the store registry: records are read as the attestation
documents them, and the caller hands in ``store_for``, which gives the store that reaches a URI (the
protocol types come from ``stores.base``; the CLI builds the stores). A record's URIs may name their
location (``s3://dc@users/key``, record schema 2): they reach ``store_for`` as parsed, location and all, so
each is read through its own location's store.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from migrator.attest.policy import AllOf, Inputs, Policy, RequireRecords
from migrator.attest.verify import verify_attestation
from migrator.checksum import Algorithm, Checksum, Provenance
from migrator.errors import InputError, MigratorError, NotFound
from migrator.records import Deletion, Record, RecordError, State, VersionCopy, checksums_of
from migrator.stores.base import ObjectStore, UploadInfo, VersionEntry
from migrator.uri import ObjectURI, parse_uri

StoreFor = Callable[[ObjectURI], ObjectStore]
SAMPLE_DOMAIN = "migrator-live-sample/v1"
READ_CHUNK = 1024 * 1024


# ---- results ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One thing checked for one object: ``ok`` False is a claim that does not hold (or could not be
    checked)."""

    ok: bool
    check: str   # destination | destination-current | download | source | replica | deletion | held | untouched | n/a
    uri: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "check": self.check, "uri": self.uri, "detail": self.detail}


@dataclass(frozen=True)
class ObjectResult:
    row: int
    state: str
    source: str
    destination: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.ok)

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "state": self.state, "source": self.source, "destination": self.destination,
                "ok": self.ok, "findings": [f.as_dict() for f in self.findings]}


@dataclass(frozen=True)
class LiveReport:
    wave_id: str
    tree_size: int
    merkle_root: str
    seed: int
    sample: int                 # as asked; len(results) is min(sample, tree_size)
    download: bool
    signed_by: tuple[str, ...]
    results: tuple[ObjectResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(r.row for r in self.results)

    def summary(self) -> dict[str, int]:
        by_state: dict[str, int] = {}
        for r in self.results:
            by_state[r.state] = by_state.get(r.state, 0) + 1
        return {"sampled": len(self.results), "passed": sum(r.ok for r in self.results),
                "failed": sum(not r.ok for r in self.results), "rows": self.tree_size,
                **{f"state_{k.lower()}": v for k, v in sorted(by_state.items())}}

    def as_dict(self) -> dict[str, Any]:
        return {"wave_id": self.wave_id, "tree_size": self.tree_size, "merkle_root": self.merkle_root,
                "seed": self.seed, "sample": self.sample, "download": self.download,
                "signed_by": list(self.signed_by), "ok": self.ok, "summary": self.summary(),
                "results": [r.as_dict() for r in self.results]}


# ---- sampling --------------------------------------------------------------------------------------------

def sample_key(seed: int, merkle_root_hex: str, row: int) -> bytes:
    return hashlib.sha256(f"{SAMPLE_DOMAIN}\n{seed}\n{merkle_root_hex}\n{row}".encode("ascii")).digest()


def sample_rows(tree_size: int, merkle_root_hex: str, seed: int, sample: int) -> list[int]:
    """The rows (1-based) to check: the ``sample`` smallest keys, returned in row order."""
    if sample < 1:
        raise InputError("the sample size must be at least 1", field="sample")
    if seed < 0:
        raise InputError("the seed must be a non-negative integer", field="seed")
    if sample >= tree_size:
        return list(range(1, tree_size + 1))
    chosen = heapq.nsmallest(sample, range(1, tree_size + 1),
                             key=lambda r: sample_key(seed, merkle_root_hex, r))
    return sorted(chosen)


# ---- reading records -------------------------------------------------------------------------------------

def _recorded_digests(version: VersionCopy) -> list[Checksum]:
    return checksums_of(version.digests)  # a digest this checker does not know is no evidence either way


def _strip_quotes(etag: str | None) -> str | None:
    return etag.strip('"') if etag is not None else None


# ---- the checks ------------------------------------------------------------------------------------------

class _Checker:
    def __init__(self, store_for: StoreFor, download: bool) -> None:
        self.store_for = store_for
        self.download = download

    def store(self, uri: ObjectURI) -> ObjectStore:
        return self.store_for(uri)

    # destination ------------------------------------------------------------------------------------------

    def destination(self, dest: ObjectURI, versions: Sequence[VersionCopy]) -> list[Finding]:
        store = self.store(dest)
        out: list[Finding] = []
        last = len(versions) - 1
        for i, v in enumerate(versions):
            dv = v.destination_version
            if dv is None and i != last:
                out.append(Finding(False, "destination", str(dest),
                                   f"copy {i + 1} of {len(versions)} has no destination version id and is not "
                                   "the latest: it cannot be there any more"))
                continue
            out.extend(self._one_version(store, dest, v, dv))
        if versions:
            out.append(self._current(store, dest, versions[-1]))
        return out

    def _one_version(self, store: ObjectStore, dest: ObjectURI, v: VersionCopy,
                     dv: str | None) -> list[Finding]:
        where = f"{dest} version {dv}" if dv is not None else str(dest)
        try:
            info = store.stat(dest, dv)
        except NotFound:
            return [Finding(False, "destination", where, "not found: the recorded copy is gone")]
        except MigratorError as exc:
            return [Finding(False, "destination", where, f"could not stat: {type(exc).__name__}: {exc}")]
        problems: list[str] = []
        matched: list[str] = []
        size = v.size
        if info.size != size:
            problems.append(f"size is {info.size}, the record says {size}")
        else:
            matched.append("size")
        if dv is not None and info.version not in (None, dv):
            problems.append(f"the store answered version {info.version}")
        etag = v.destination_etag
        if isinstance(etag, str) and _strip_quotes(info.etag) != _strip_quotes(etag):
            problems.append(f"ETag is {info.etag}, the record says {etag}")
        elif isinstance(etag, str):
            matched.append("ETag")
        recorded = _recorded_digests(v)
        digest_matches = 0
        for c in info.checksums:
            same = [r for r in recorded if r.comparable(c)]
            if not same:
                continue
            wrong = [r for r in same if r.value != c.value]
            if wrong:
                problems.append(f"reports {c.describe()}, the record says {wrong[0].describe()}")
            else:
                digest_matches += 1
                matched.append(c.algorithm.value)
        if digest_matches == 0 and not self.download and not problems:
            problems.append("reports no digest comparable with the record; check with --download")
        out: list[Finding] = []
        if problems:
            out.append(Finding(False, "destination", where, "; ".join(problems)))
        else:
            out.append(Finding(True, "destination", where, "holds the recorded copy: " + ", ".join(matched)
                               + " match"))
        if self.download:
            out.append(self._download(store, dest, dv, v, where))
        return out

    def _download(self, store: ObjectStore, dest: ObjectURI, dv: str | None, v: VersionCopy,
                  where: str) -> Finding:
        wanted = [c for c in _recorded_digests(v) if c.algorithm == Algorithm.SHA256 and c.is_whole_object]
        computed = [c for c in wanted if c.provenance == Provenance.COMPUTED] or wanted
        if not computed:
            return Finding(False, "download", where, "the record holds no SHA-256 to compare the bytes with")
        sha = hashlib.sha256()
        size = 0
        try:
            stream = store.open_read(dest, dv)
            try:
                while chunk := stream.read(READ_CHUNK):
                    sha.update(chunk)
                    size += len(chunk)
            finally:
                stream.close()
        except MigratorError as exc:
            return Finding(False, "download", where, f"could not read: {type(exc).__name__}: {exc}")
        if sha.digest() != computed[0].value:
            return Finding(False, "download", where, f"the bytes read ({size}) have SHA-256 {sha.hexdigest()}, "
                                                     f"the record says {computed[0].hex}: different bytes")
        return Finding(True, "download", where, f"read {size} bytes: SHA-256 matches the record")

    def _current(self, store: ObjectStore, dest: ObjectURI, last: VersionCopy) -> Finding:
        """The destination's current object is still the wave's last copy (not overwritten since)."""
        try:
            info = store.stat(dest)
        except NotFound:
            return Finding(False, "destination-current", str(dest), "no current object: deleted after the wave")
        except MigratorError as exc:
            return Finding(False, "destination-current", str(dest), f"could not stat: {type(exc).__name__}: {exc}")
        dv = last.destination_version
        if dv is not None and info.version is not None:
            if info.version != dv:
                return Finding(False, "destination-current", str(dest),
                               f"the current version is {info.version}, the wave's last copy is {dv}: "
                               "the object was replaced after the wave")
            return Finding(True, "destination-current", str(dest), f"the current version is the wave's ({dv})")
        etag = last.destination_etag
        if isinstance(etag, str) and _strip_quotes(info.etag) != _strip_quotes(etag):
            return Finding(False, "destination-current", str(dest),
                           f"the current ETag is {info.etag}, the wave's last copy had {etag}: replaced after the wave")
        return Finding(True, "destination-current", str(dest), "the current object is the wave's last copy")

    # source locations --------------------------------------------------------------------------------------

    def _listing(self, uri: ObjectURI) -> tuple[list[VersionEntry], list[UploadInfo], list[VersionEntry]]:
        store = self.store(uri)
        versions = [e for e in store.list_versions(uri.location, uri.key) if e.key == uri.key]
        features = store.features
        uploads = [u for u in features.uploads.list(uri.location, uri.key) if u.key == uri.key] \
            if features.uploads is not None else []
        soft = [e for e in features.soft_deleted(uri.location, uri.key) if e.key == uri.key] \
            if features.soft_deleted is not None else []
        return versions, uploads, soft

    def nothing_left(self, uri: ObjectURI, role: str, *, allow_soft: bool = False) -> Finding:
        """No version, delete marker, upload or soft-deleted copy at ``uri`` (soft-deleted ones allowed when
        the record itself says they are pending hard deletion)."""
        try:
            versions, uploads, soft = self._listing(uri)
        except NotFound:
            if uri.scheme == "oci":  # OCI answers 404 for a missing bucket and for a missing permission alike
                return Finding(False, role, str(uri), "the bucket answers 404: missing, or not readable by you")
            return Finding(True, role, str(uri), "the bucket no longer exists: nothing remains")
        except MigratorError as exc:
            return Finding(False, role, str(uri), f"could not list: {type(exc).__name__}: {exc}")
        left = [f"delete marker {e.version}" if e.is_delete_marker else f"version {e.version}" for e in versions]
        left += [f"incomplete upload {u.upload_id}" for u in uploads]
        if not allow_soft:
            left += [f"soft-deleted generation {e.version} (restorable)" for e in soft]
        if left:
            return Finding(False, role, str(uri), "still holds " + ", ".join(left))
        if soft:
            return Finding(True, role, str(uri), "no live version, delete marker or incomplete upload; soft-deleted "
                           f"generation(s) {', '.join(str(e.version) for e in soft)} pending hard deletion, "
                           "as the record says")
        return Finding(True, role, str(uri), "no version, delete marker, incomplete upload or soft-deleted copy")

    def deletions_hold(self, deletions: Sequence[Deletion]) -> list[Finding]:
        """For HELD/FAILED records: every version and upload the record says was deleted is still gone."""
        by_uri: dict[str, list[Deletion]] = {}
        for d in deletions:
            by_uri.setdefault(d.uri, []).append(d)
        out: list[Finding] = []
        for text, items in by_uri.items():
            try:
                uri = parse_uri(text)
                versions, uploads, soft = self._listing(uri)
            except NotFound:
                out.append(Finding(True, "deletion", text, "the bucket no longer exists"))
                continue
            except MigratorError as exc:
                out.append(Finding(False, "deletion", text, f"could not list: {type(exc).__name__}: {exc}"))
                continue
            live = {e.version for e in versions}
            soft_deleted = {e.version for e in soft}
            upload_ids = {u.upload_id for u in uploads}
            back, restorable = [], []
            for d in items:
                version = d.pin
                if d.upload_id is not None:
                    if d.upload_id in upload_ids:
                        back.append(f"upload {d.upload_id}")
                elif version is not None and version in live:
                    back.append(f"version {version}")
                elif version is not None and version in soft_deleted:
                    restorable.append(version)
            if back:
                out.append(Finding(False, "deletion", text, "recorded as deleted but present: " + ", ".join(back)))
            else:
                note = (f"; soft-deleted, restorable until hard deletion: {', '.join(restorable)}"
                        if restorable else "")
                out.append(Finding(True, "deletion", text,
                                   f"the {len(items)} recorded deletion(s) still hold{note}"))
        return out

    def copy_remains(self, locations: Sequence[ObjectURI], reason: str, pending_soft: bool) -> Finding:
        """A HELD record says data was kept at the source (or a replica): some copy must still be there.

        Soft-deleted generations count as kept. When the record itself lists soft-deleted copies pending
        hard deletion, their disappearance is what the record expected.
        """
        for uri in locations:
            try:
                versions, _, soft = self._listing(uri)
            except NotFound:
                continue
            except MigratorError as exc:
                return Finding(False, "held", str(uri), f"could not list: {type(exc).__name__}: {exc}")
            live = [e for e in versions if not e.is_delete_marker]
            if live or soft:
                kept = f"{len(live)} version(s)" + (f" and {len(soft)} soft-deleted generation(s)" if soft else "")
                return Finding(True, "held", str(uri), f"held ({reason}): {kept} remain, as the record says")
        where = ", ".join(str(u) for u in locations)
        if pending_soft:
            return Finding(True, "held", where, f"held ({reason}): the soft-deleted copies are gone since, as the "
                                                "record expected; a later run of the wave attests the removal")
        return Finding(False, "held", where,
                       f"the record says HELD ({reason}) but no copy remains at any recorded location: removed "
                       "after the wave without this attestation's evidence (look for a superseding attestation)")

    # one record ------------------------------------------------------------------------------------------

    def record(self, obj: Mapping[str, Any]) -> ObjectResult:
        row = obj.get("row")
        row = row if isinstance(row, int) else 0
        state = str(obj.get("state"))
        try:
            rec = Record.from_json(obj)
        except RecordError as exc:   # verified bytes, but not a record this checker can read
            return ObjectResult(row, state, "", "", (Finding(False, "record", "", f"cannot be checked: {exc}"),))
        findings: list[Finding] = []
        try:
            findings = self._record(rec)
        except MigratorError as exc:  # a malformed URI in the record, an unknown scheme
            findings.append(Finding(False, "record", rec.source, f"cannot be checked: {exc}"))
        if not findings:
            findings.append(Finding(True, "n/a", rec.source,
                                    f"{rec.state}: nothing this record claims can be checked live"))
        return ObjectResult(rec.row, str(rec.state), rec.source, rec.destination, tuple(findings))

    def untouched(self, uri: ObjectURI) -> Finding:
        """An OUT_OF_SCOPE record says the wave left the source alone: it must still be there."""
        try:
            info = self.store(uri).stat(uri)
        except NotFound:
            return Finding(False, "untouched", str(uri), "the record says OUT_OF_SCOPE (left untouched), but the "
                                                         "source has no current object: removed or deleted since")
        except MigratorError as exc:
            return Finding(False, "untouched", str(uri), f"could not stat: {type(exc).__name__}: {exc}")
        return Finding(True, "untouched", str(uri), f"out of scope: the source is still there ({info.size} bytes)")

    def _record(self, rec: Record) -> list[Finding]:
        state, source = rec.state, rec.source
        findings: list[Finding] = []
        if state == State.OUT_OF_SCOPE:   # never copied, never deleted: no destination to demand
            if rec.deletions:
                findings.append(Finding(False, "untouched", source, "an OUT_OF_SCOPE record names deletions"))
            return [*findings, self.untouched(parse_uri(source))]
        if rec.versions:
            findings += self.destination(parse_uri(rec.destination), rec.versions)
        elif state == State.REMOVED:
            findings.append(Finding(False, "destination", rec.destination, "a REMOVED record names no verified copy"))
        proof = rec.proof
        # HELD only because deleted copies stay soft-deleted (attest-pending): the final listing found
        # nothing live, so nothing live may be there now either.
        pending_soft = (state == State.HELD and proof is not None and bool(proof.soft_deleted)
                        and not proof.leftovers)
        if state == State.REMOVED or pending_soft:
            seen: list[str] = []
            for text in [source, *rec.replicas, *(proof.locations if proof else ())]:
                if text and text not in seen:
                    seen.append(text)
            for text in seen:
                findings.append(self.nothing_left(parse_uri(text), "source" if text == source else "replica",
                                                  allow_soft=pending_soft))
            if state == State.REMOVED:
                return findings
        findings += self.deletions_hold(rec.deletions)
        if state == State.HELD:
            locations = [parse_uri(u) for u in [source, *rec.replicas] if u]
            findings.append(self.copy_remains(locations, str(rec.reason), pending_soft))
        return findings


# ---- entry point -----------------------------------------------------------------------------------------

def check_live(attestation_bytes: bytes, records_bytes: bytes, policy: Policy, store_for: StoreFor, *,
               sample: int, seed: int, download: bool, workers: int = 8) -> LiveReport:
    """Verify the attestation under ``policy`` and RequireRecords offline, then spot-check ``sample`` records
    live through ``store_for``.

    Raises VerificationError when the attestation or the records do not verify (nothing is then checked
    live) and InputError for a bad policy, sample size or seed. Per-object failures, including a cloud call
    that fails, are findings in the report: ``report.ok`` is True only if every sampled object holds.
    """
    verified = verify_attestation(attestation_bytes, Inputs(records=records_bytes), AllOf(policy, RequireRecords()))
    root_hex = verified.merkle_root.hex()
    rows = sample_rows(verified.tree_size, root_hex, seed, sample)
    lines = records_bytes.split(b"\n")
    records: list[dict[str, Any]] = []
    for r in rows:
        rec = json.loads(lines[r - 1])  # verified canonical JSON objects, row i on line i
        records.append(rec)
    checker = _Checker(store_for, download)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(records) or 1)),
                            thread_name_prefix="live-check") as pool:
        results = tuple(pool.map(checker.record, records))
    return LiveReport(wave_id=str(verified.predicate.get("wave_id")), tree_size=verified.tree_size,
                      merkle_root=root_hex, seed=seed, sample=sample, download=download,
                      signed_by=verified.signed_by, results=results)
