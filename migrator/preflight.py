"""What a wave checks before its first write: residency, destination buckets and regions, and each bucket's
identity. ``plan`` reports the same checks; ``run`` refuses (exit 2, nothing written or deleted) when any
fails.

- **Residency** (per row, no request): with ``policy.residency`` set, a row tagged with another residency is
  refused, or, with ``other_residency = "out-of-scope"``, left untouched and recorded OUT_OF_SCOPE; a row
  without a tag is refused when ``require_residency`` holds.
- **Destinations**: every destination bucket must exist; with a residency policy, its region must be one
  of ``allowed_regions``.
- **Regions**, per cloud's source of truth: S3's GetBucketLocation (or ``x-amz-bucket-region``), the GCS
  bucket's location, the OCI endpoint's hostname (``objectstorage.<region>.oraclecloud.com``). A region only
  declared (a custom endpoint, the sandbox) counts as declared but unverified, and the attestation says so;
  a declared region that the cloud contradicts is refused.
- **Source buckets** that do not exist are not a refusal: their rows fail (FAILED), in ``plan`` and ``run``.

Memory: the offending rows (up to ``MAX_NAMED``) and one entry per bucket, whatever the manifest's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.config import WavePolicy, WaveSettings
from migrator.errors import AccessDenied, InputError, NotFound, StoreError
from migrator.estate import Estate
from migrator.manifest import ManifestRow, ManifestSummary, iter_rows, validate
from migrator.stores.registry import Stores
from migrator.uri import Location

MAX_NAMED = 10_000   # offending rows named one by one; past that they are counted


def region_allowed(policy: WavePolicy, region: str) -> bool:
    """Region names compare without case (GCS reports ``US-EAST1``)."""
    return region.lower() in {r.lower() for r in policy.allowed_regions}


def residency_of(policy: WavePolicy, row: ManifestRow) -> str | None:
    """None when the wave may move the row; "out-of-scope" when policy leaves it untouched; otherwise the
    refusal, in words."""
    if policy.residency is None:
        return None
    if row.residency is None:
        if policy.require_residency:
            return f"no residency tag; the wave moves {policy.residency} rows only"
        return None
    if row.residency == policy.residency:
        return None
    if policy.other_residency == "out-of-scope":
        return "out-of-scope"
    return f"residency {row.residency!r}; the wave moves {policy.residency} rows only"


@dataclass
class BucketFacts:
    """One bucket the wave names, as preflight found it."""

    location: Location
    roles: set[str] = field(default_factory=set)
    rows: int = 0
    region: str | None = None
    region_verified: bool = False
    region_source: str = "none"
    owner: str | None = None
    owner_source: str = "none"
    missing: bool = False
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        return {"bucket": str(self.location), "roles": sorted(self.roles), "rows": self.rows,
                "region": self.region, "region_verified": self.region_verified,
                "region_source": self.region_source, "owner": self.owner, "owner_source": self.owner_source,
                **({"missing": True} if self.missing else {}), **({"error": self.error} if self.error else {})}


@dataclass
class Preflight:
    refusals: list[str] = field(default_factory=list)   # "file:line: field: why", or a bucket's refusal
    refused_rows: int = 0
    out_of_scope: int = 0
    buckets: dict[Location, BucketFacts] = field(default_factory=dict)
    refused_buckets: dict[Location, str] = field(default_factory=dict)   # bucket -> why, for naming its rows
    bucket_rows: int = 0   # rows named for a refused bucket
    policy: WavePolicy = field(default_factory=WavePolicy)

    @property
    def ok(self) -> bool:
        return not self.refusals

    def refuse(self, text: str) -> None:
        if len(self.refusals) < MAX_NAMED:
            self.refusals.append(text)

    def refuse_bucket(self, location: Location, text: str, short: str) -> None:
        """A bucket's refusal (``text``); ``short`` is what each of its rows is told (``name_rows``)."""
        self.refuse(f"{location}: {text}")
        self.refused_buckets.setdefault(location, short)

    def uses_refused(self, row: ManifestRow) -> bool:
        """The row names a refused bucket (it is named among the refusals, not planned)."""
        return bool(self.refused_buckets) and any(
            u.location in self.refused_buckets for u in (row.source, row.destination, *row.replicas))

    def name_rows(self, rows: Iterable[ManifestRow], file: str) -> None:
        """Name each in-scope row that uses a refused bucket, with its file and line: a second pass over
        the manifest, made only when a bucket was refused (rare), so nothing per row is held in memory."""
        if not self.refused_buckets:
            return
        for row in rows:
            if residency_of(self.policy, row) is not None:
                continue   # refused for its residency (named already) or left untouched
            for role, uri in (("destination", row.destination), ("source", row.source),
                              *(("replica", r) for r in row.replicas)):
                why = self.refused_buckets.get(uri.location)
                if why is not None:
                    self.bucket_rows += 1
                    self.refuse(f"{file}:{row.line}: {role}: row {row.row} ({uri}): {why}")
                    break

    def raise_if_refused(self, file: str) -> None:
        if self.refusals:
            more = len(self.refusals) >= MAX_NAMED
            lines = "\n".join(f"  {r}" for r in self.refusals)
            counts = [f"{self.refused_rows} row(s) outside its residency" if self.refused_rows else "",
                      f"{len(self.refused_buckets)} bucket(s) refused, used by {self.bucket_rows} row(s)"
                      if self.refused_buckets else ""]
            raise InputError(f"the wave is refused before any write ({'; '.join(c for c in counts if c)}); "
                             f"this run wrote and deleted nothing:\n{lines}"
                             + ("\n  ... (more rows not named)" if more else ""), file=file)

    def identities(self, estate: Estate) -> list[dict[str, Any]] | None:
        """The statement's ``locations``: each named location's identity and the buckets the wave used
        there, with the region each bucket's cloud reports and whether that was verified."""
        if not estate:
            return None
        out = []
        for ident in estate.identities():
            buckets = [b.as_record() for loc, b in sorted(self.buckets.items(), key=lambda kv: str(kv[0]))
                       if loc.at == ident["name"]]
            out.append({**ident, "used": buckets})
        return out


class RowCheck:
    """The per-row half: residency, and which buckets the wave names (no request is made). Called once per
    row, so it rides on the validation pass (``validate(..., visit=check)``) instead of reading again."""

    def __init__(self, settings: WaveSettings, file: str) -> None:
        self.pre = Preflight(policy=settings.policy)
        self.file = file

    def __call__(self, row: ManifestRow) -> None:
        pre = self.pre
        verdict = residency_of(pre.policy, row)
        if verdict == "out-of-scope":
            pre.out_of_scope += 1
            return   # untouched: its buckets are not the wave's to check or write
        if verdict is not None:
            pre.refused_rows += 1
            pre.refuse(f"{self.file}:{row.line}: residency: row {row.row} ({row.source}): {verdict}")
            return
        for role, uri in (("source", row.source), ("destination", row.destination),
                          *(("replica", r) for r in row.replicas)):
            b = pre.buckets.setdefault(uri.location, BucketFacts(uri.location))
            b.roles.add(role)
            b.rows += 1


def check_rows(rows: Iterable[ManifestRow], settings: WaveSettings, file: str) -> Preflight:
    """``RowCheck`` over rows already read."""
    check = RowCheck(settings, file)
    for row in rows:
        check(row)
    return check.pre


def check_offline(manifest: Path, settings: WaveSettings) -> tuple[ManifestSummary, Preflight]:
    """What can be checked without a cloud (`manifest validate --wave`, `rehearse`): every row rule, the
    residency row by row and the declared destination regions, each refused row named by file and line."""
    check = RowCheck(settings, str(manifest))
    summary = validate(manifest, estate=settings.estate, visit=check)
    pre = check.pre
    check_declared_regions(pre, settings)
    pre.name_rows(iter_rows(manifest, estate=settings.estate), str(manifest))
    return summary, pre


def check_declared_regions(pre: Preflight, settings: WaveSettings) -> None:
    """Offline (``manifest validate --wave``): a destination whose location declares a region the policy
    does not allow is refused, as ``check_buckets`` would refuse it with the cloud's word."""
    policy = settings.policy
    if policy.residency is None:
        return
    for location, b in sorted(pre.buckets.items(), key=lambda kv: str(kv[0])):
        if "destination" not in b.roles or not location.at:
            continue
        region = settings.estate.get(location.at).region
        if region is not None and not region_allowed(policy, region):
            shown = ", ".join(policy.allowed_regions)
            pre.refuse_bucket(location, f"location {location.at!r} declares region {region}, which is not allowed "
                              f"for {policy.residency} rows (allowed: {shown}; {b.rows} row(s) write there)",
                              f"destination region {region} is not allowed (allowed: {shown})")


def check_buckets(pre: Preflight, settings: WaveSettings, stores: Stores) -> None:
    """The per-bucket half: each bucket's identity (one request per bucket), then the destinations' refusals."""
    estate, policy = settings.estate, settings.policy
    for location, b in sorted(pre.buckets.items(), key=lambda kv: str(kv[0])):
        spec = estate.get(location.at) if location.at else None
        try:
            ident = stores.for_location(location).identify(location)
        except NotFound:
            b.missing = True
        except AccessDenied as exc:
            # Wrong credentials, or an owner that is not the expected one: a setting to fix, in any role.
            b.error = f"{type(exc).__name__}: {exc}"
            pre.refuse_bucket(location, f"access denied ({exc}); check the location's credentials and owner",
                              f"its bucket {location} refuses access")
            continue
        except StoreError as exc:
            b.error = f"{type(exc).__name__}: {exc}"
        else:
            b.owner, b.owner_source = ident.owner, ident.owner_source
            b.region_source = ident.region_source
            declared = spec.region if spec is not None else None
            reported = ident.region.lower() if ident.region else None
            if reported and declared and reported != declared.lower():
                pre.refuse_bucket(location, f"location {spec.name if spec else ''!r} declares region {declared}, "
                                  f"the cloud says {reported} ({ident.region_source})",
                                  f"its bucket {location} is not in the declared region {declared}")
            b.region = reported or declared
            b.region_verified = bool(reported) and ident.official_endpoint
            if reported and not b.region_verified:
                b.region_source = f"{ident.region_source} of a custom endpoint"   # the store's word only
            elif not reported:
                b.region_source = "declared" if declared else "none"
            if spec is not None and spec.owner and ident.owner and ident.owner != spec.owner:
                pre.refuse_bucket(location, f"location {spec.name!r} names owner {spec.owner}, "
                                  f"the cloud says {ident.owner} ({ident.owner_source})",
                                  f"its bucket {location} is not owned by {spec.owner}")
        if "destination" not in b.roles:
            continue
        if b.missing:
            pre.refuse_bucket(location, f"destination bucket not found ({b.rows} row(s) write there)",
                              "the destination bucket does not exist")
        elif b.error is not None:
            pre.refuse_bucket(location, f"destination bucket cannot be checked: {b.error}",
                              "the destination bucket cannot be checked")
        elif policy.residency is not None:
            allowed = ", ".join(policy.allowed_regions)
            if b.region is None:
                pre.refuse_bucket(location, "the destination's region is unknown; declare it in the location "
                                  f"(the wave moves {policy.residency} rows into {allowed})",
                                  "the destination's region is unknown")
            elif not region_allowed(policy, b.region):
                pre.refuse_bucket(location, f"destination region {b.region} is not allowed for "
                                  f"{policy.residency} rows (allowed: {allowed}; {b.rows} row(s) write there)",
                                  f"destination region {b.region} is not allowed (allowed: {allowed})")
