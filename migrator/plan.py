"""What a wave would do, without copying, deleting or journaling anything.

The manifest is validated (every row rule), then read again in batches: the bucket-level checks the wave
applies (bucket_checks) are asked once per bucket, and, unless ``list_objects`` is off, each batch's
sources, replicas and destinations are listed the way the wave lists them (one prefix listing per bucket
and batch). The result counts what was found; rows that the wave would hold for a bucket's settings are
counted by reason with a few example rows, so an operator can fix the buckets before the wave.
Memory is one batch of rows plus counters, whatever the manifest's size.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.bucket_checks import BucketChecks
from migrator.config import WaveSettings
from migrator.errors import NotFound, StoreError
from migrator.listing import list_uploads_many, list_versions_many
from migrator.manifest import ManifestRow, ManifestSummary, batched, iter_rows, validate
from migrator.preflight import RowCheck, check_buckets, residency_of
from migrator.removal import is_archived
from migrator.stores.registry import Stores
from migrator.uri import Location, ObjectURI

EXAMPLES = 5


@dataclass
class WavePlan:
    manifest: ManifestSummary
    listed: bool
    rows_held: Counter[str] = field(default_factory=Counter)             # reason -> rows
    rows_failing: Counter[str] = field(default_factory=Counter)          # reason -> rows the wave would fail
    needs: list[str] = field(default_factory=list)                       # what `run` will need besides
    examples: dict[str, list[str]] = field(default_factory=dict)         # reason -> "row N: detail"
    found: Counter[str] = field(default_factory=Counter)                 # what the listings saw
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)   # location's text -> role, rows, settings
    samples: dict[str, ObjectURI] = field(default_factory=dict, repr=False)  # location's text -> a URI in it
    refusals: list[str] = field(default_factory=list)   # why `run` would refuse the wave before any write
    out_of_scope: int = 0                                # rows of another residency the wave leaves untouched
    residency: dict[str, Any] | None = None              # the policy's residency rule, as `run` applies it
    estate: list[dict[str, Any]] | None = None           # the named locations' identities, as attested

    @property
    def ready(self) -> bool:
        """Not refused, no row would be held for a bucket's settings, and (when listed) every source exists."""
        return not self.refusals and not self.rows_held and not self.rows_failing

    def as_record(self) -> dict[str, Any]:
        return {
            "manifest": {"path": str(self.manifest.path), "sha256": self.manifest.sha256, "rows": self.manifest.rows,
                         "declared_bytes": self.manifest.declared_bytes, "format": self.manifest.format},
            "listed": self.listed,
            "ready": self.ready,
            "rows_held_by_reason": dict(sorted(self.rows_held.items())),
            "rows_failing_by_reason": dict(sorted(self.rows_failing.items())),
            "run_needs": list(self.needs),
            "examples": {k: v for k, v in sorted(self.examples.items())},
            "found": dict(sorted(self.found.items())),
            "locations": {k: self.locations[k] for k in sorted(self.locations)},
            "refused": bool(self.refusals),
            "refusals": list(self.refusals),
            "rows_out_of_scope": self.out_of_scope,
            "residency": self.residency,
            "estate": self.estate,
        }


def plan_wave(manifest: Path, settings: WaveSettings, *, list_objects: bool = True) -> WavePlan:
    """``settings``: as ``run`` would resolve them (the policy decides the bucket holds, the transfer settings
    the batches, the endpoints the stores: with ``sandbox`` set a non-loopback one is refused first)."""
    stores = Stores(settings.stores)
    estate, policy = settings.estate, settings.policy
    row_check = RowCheck(settings, str(manifest))         # residency, and the buckets named: on the same pass
    summary = validate(manifest, estate=estate, visit=row_check)   # every row checked before a request is made
    plan = WavePlan(manifest=summary, listed=list_objects)
    pre = row_check.pre
    check_buckets(pre, settings, stores)     # the same refusals `run` makes before any write
    pre.name_rows(iter_rows(manifest, estate=estate), str(manifest))
    plan.refusals, plan.out_of_scope = list(pre.refusals), pre.out_of_scope
    plan.estate = pre.identities(estate)
    if policy.residency is not None:
        plan.residency = {"moves": policy.residency, "allowed_regions": list(policy.allowed_regions),
                          "require_residency": policy.require_residency, "other_residency": policy.other_residency}
    if summary.subjects:
        plan.needs.append(f"--subject-hashes FILE from the custodian (rows name {summary.subjects} data subjects)")
    checks = BucketChecks(stores, settings.policy)
    unreadable: dict[Location, tuple[str, str]] = {}   # why a bucket's settings could not be read
    held: set[int] = set()                         # rows of this batch already held for a bucket
    for rows in batched(iter_rows(manifest, estate=estate), settings.transfer.batch_rows):
        # Rows refused (for their residency or a refused bucket) and rows left untouched are not planned.
        batch = [r for r in rows if residency_of(policy, r) is None and not pre.uses_refused(r)]
        for row in batch:
            _count_locations(plan, row)
            reason = _unreadable(checks, stores, row, unreadable) or _bucket_hold(checks, stores, row)
            if reason is not None:
                _held(plan, row, *reason, failing=reason[0] == "source not found")
                held.add(row.row)
        if list_objects:
            _list_batch(plan, stores, batch, held)
        held.clear()
    for location, entry in plan.locations.items():
        entry["settings"] = _settings(checks, stores, plan.samples[location])
    return plan


def _count_locations(plan: WavePlan, row: ManifestRow) -> None:
    for role, uri in (("source", row.source), ("destination", row.destination),
                      *(("replica", r) for r in row.replicas)):
        where = str(uri.location)   # the report's key, as the JSON output names it
        plan.samples.setdefault(where, uri)
        entry = plan.locations.setdefault(where, {"roles": {}})
        entry["roles"][role] = entry["roles"].get(role, 0) + 1


def _held(plan: WavePlan, row: ManifestRow, reason: str, detail: str, *, failing: bool = False) -> None:
    (plan.rows_failing if failing else plan.rows_held)[reason] += 1
    examples = plan.examples.setdefault(reason, [])
    if len(examples) < EXAMPLES:
        examples.append(f"row {row.row} (line {row.line}): {detail}")


def _unreadable(checks: BucketChecks, stores: Stores, row: ManifestRow,
                unreadable: dict[Location, tuple[str, str]]) -> tuple[str, str] | None:
    """A missing or unreadable bucket among the row's locations, asked once per bucket."""
    for uri in (row.destination, row.source, *row.replicas):
        if uri.location not in unreadable:
            try:
                checks.facts(stores.for_uri(uri), uri)   # cached after the first success
            except NotFound as exc:
                # One answer in plan and run: a missing source bucket fails its rows (the wave finds no
                # source); a missing destination is refused before any write (preflight).
                failing = uri == row.source
                unreadable[uri.location] = ("source not found" if failing else "bucket not found", str(exc))
            except StoreError as exc:
                unreadable[uri.location] = ("bucket settings unreadable", f"{type(exc).__name__}: {exc}")
        if uri.location in unreadable:
            return unreadable[uri.location]
    return None


def _bucket_hold(checks: BucketChecks, stores: Stores, row: ManifestRow) -> tuple[str, str] | None:
    """The first bucket-level reason the wave would hold this row (the wave asks the same checks)."""
    try:
        return checks.row_hold(row)
    except NotFound as exc:
        return "bucket not found", str(exc)
    except StoreError as exc:
        return "bucket settings unreadable", f"{type(exc).__name__}: {exc}"


def _list_batch(plan: WavePlan, stores: Stores, batch: list[ManifestRow], held: set[int]) -> None:
    found = plan.found
    sources = [r.source for r in batch]
    others = [u for r in batch for u in (*r.replicas, r.destination)]
    try:
        versions = list_versions_many(stores.for_uri, [*sources, *others])
        uploads = list_uploads_many(stores.for_uri, [*sources, *(u for r in batch for u in r.replicas)])
    except StoreError as exc:
        for row in batch:
            if row.row not in held:   # a row is counted under one reason
                _held(plan, row, "listing failed", f"{type(exc).__name__}: {exc}")
        return
    for row in batch:
        entries = versions.get(row.source, [])
        live = [e for e in entries if not e.is_delete_marker]
        found["sources found" if live else "sources missing"] += 1
        if not live and row.row not in held:   # a row is counted under one reason
            _held(plan, row, "source not found", str(row.source), failing=True)
        found["source versions"] += len(live)
        found["source delete markers"] += len(entries) - len(live)
        found["source bytes"] += sum(e.size for e in live)
        found["source versions archived"] += sum(1 for e in live if is_archived(e.storage_class))
        found["replica versions"] += sum(len(versions.get(r, [])) for r in row.replicas)
        found["incomplete uploads"] += sum(len(uploads.get(u, [])) for u in (row.source, *row.replicas))
        if versions.get(row.destination):
            found["destinations already holding an object"] += 1


def _settings(checks: BucketChecks, stores: Stores, uri: ObjectURI) -> dict[str, Any]:
    """The bucket's settings as the wave sees them (from the checks' cache: no new request for most)."""
    store = stores.for_uri(uri)
    try:
        facts = checks.facts(store, uri)
    except StoreError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"versioning": facts.versioning, "retention": facts.retention,
            "soft_delete_seconds": facts.soft_delete_seconds,
            "conditional_write": store.features.conditional_write, "batch_delete": store.features.batch_delete_max > 1}
