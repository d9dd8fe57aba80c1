"""`migrator rehearse`: a whole wave played on the sandbox, shaped like the real one, touching no real cloud.

1. The manifest and the wave file are checked offline exactly as `manifest validate --wave` checks them, so
   a refusal names the real file and line. A refused wave stops here (exit 2).
2. A sandbox starts in the rehearsal's folder, playing the manifest's OCI namespace and the declared OCI
   regions. Every location is pointed at it: its endpoint, CA, credentials, profile and owner are replaced by
   the sandbox's, so no credential file the wave file names is ever opened (the wave file is parsed; only
   building a store would open one). Anything not loopback after that is refused. The environment seen by
   the SDKs is the sandbox's alone (and HOME is the rehearsal's folder), so no real credential is found.
3. Objects shaped like the manifest are seeded (``migrator.sandbox.manifest_seed``): the same keys, the
   declared sizes times ``scale``, ``versions`` versions, the replicas. Declared digests cannot be reproduced:
   the rehearsed manifest carries the seeded content's, and the report says so.
4. The wave runs with the real policy (caps lifted: they are projected, not waited for), its attestation is
   verified, and the sandbox's request counters give requests per object.

What it cannot predict is listed in every report (:data:`CANNOT_PREDICT`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import (
    AllOf,
    Inputs,
    Policy,
    RequireManifest,
    RequireRecords,
    RequireSubjectIndex,
    Threshold,
)
from migrator.attest.subjects import generate_subject_key, load_subject_hashes, write_subject_hashes
from migrator.attest.verify import verify_attestation
from migrator.config import TransferSettings, WaveSettings, endpoints_from_env, load_wave
from migrator.endpoints import is_loopback_url
from migrator.errors import InputError, UnsafeEndpointError, VerificationError
from migrator.estate import Estate, LocationSpec
from migrator.manifest import iter_rows
from migrator.preflight import check_offline, residency_of
from migrator.runner import RunControls, WaveResult, run_wave
from migrator.sandbox import control
from migrator.sandbox.control import (
    AWS_OWNER,
    AWS_PROFILE_AWS,
    AWS_PROFILE_DC,
    DC_OWNER,
    NAMESPACE,
    OCI_EU_REGION,
    OCI_REGION,
    SandboxState,
)
from migrator.sandbox.faults import get_faults
from migrator.sandbox.gcs.service import PROJECT_NUMBER
from migrator.sandbox.manifest_seed import BucketPlace, SeededManifest, sandbox_placer, seed_manifest
from migrator.uri import ObjectURI

CANNOT_PREDICT = (
    "holds and retention at the real sources: Object Lock legal holds and retention, GCS holds (none are seeded)",
    "soft-delete and versioning settings of the real buckets (the sandbox's buckets are made as the wave needs)",
    "permissions: what the real credentials may do (the sandbox grants every request)",
    "owners: each location's account, project or namespace is the sandbox's, so owner checks pass",
    "regions as the clouds report them: the sandbox answers with the declared regions",
    "versions, delete markers and incomplete uploads already at the sources (seeded: the --versions given)",
    "replication rules and backups that the manifest does not list",
    "the clouds' own speed, throttling and errors: the projection counts requests and bytes at the caps only",
)
# A sandbox server for an S3 location: the data centre's (path-style, its own account) or the AWS-like one.
_S3_SERVERS = {"s3": (AWS_PROFILE_AWS, AWS_OWNER), "s3dc": (AWS_PROFILE_DC, DC_OWNER)}
_SERVERS = ("s3", "s3dc", "gcs", "oci", "oci_eu")
# What the rehearsal's SDKs may still read from the caller's environment: nothing that names a credential.
_KEPT_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "TZ", "MIGRATOR_NO_BACKOFF", "PYTHONPATH")


@dataclass(frozen=True)
class Projection:
    """The rehearsed figures scaled to the whole manifest, and the time the wave's caps alone would take."""

    rows: int                      # the manifest's rows
    in_scope_rows: int             # rows the wave would move (not out of scope)
    rehearsed_rows: int            # in-scope rows the rehearsal moved
    requests: int                  # requests the rehearsal's wave sent, every endpoint together
    requests_per_object: float
    projected_requests: int
    declared_bytes: int            # in-scope rows' declared sizes (rows without one count 0)
    rows_without_size: int
    bounds: tuple[tuple[str, float], ...]   # (which cap, seconds it alone needs), longest first
    caps: tuple[str, ...]          # the caps, in words

    @property
    def seconds(self) -> float | None:
        """The longest bound: the wave cannot finish sooner at its caps (None: no cap, not predicted)."""
        return self.bounds[0][1] if self.bounds else None

    def as_record(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "bounds": [{"cap": c, "seconds": s} for c, s in self.bounds],
                "caps": list(self.caps), "seconds": self.seconds}


@dataclass(frozen=True)
class Rehearsal:
    manifest: Path
    rehearsed_manifest: Path
    directory: Path
    seeded: SeededManifest
    wave: WaveResult
    verified: bool
    verify_error: str | None
    placement: tuple[str, ...]                 # each location -> its sandbox endpoint, in words
    requests_by_endpoint: Mapping[str, int]
    projection: Projection
    not_removed: tuple[tuple[int, int, str, str], ...]   # (manifest row, line, state, reason)
    cannot_predict: tuple[str, ...] = CANNOT_PREDICT
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Every in-scope row removed and the attestation verified."""
        return self.verified and self.wave.complete and not self.not_removed

    def as_record(self) -> dict[str, Any]:
        return {"manifest": str(self.manifest), "rehearsed_manifest": str(self.rehearsed_manifest),
                "ok": self.ok, "verified": self.verified, "verify_error": self.verify_error,
                "wave": self.wave.as_record(), "placement": list(self.placement),
                "seeded": {"rows": self.seeded.rows, "objects": self.seeded.objects, "bytes": self.seeded.bytes,
                           "declared_bytes": self.seeded.declared_bytes, "capped": self.seeded.capped},
                "requests_by_endpoint": dict(self.requests_by_endpoint),
                "projection": self.projection.as_record(),
                "not_removed": [{"row": r, "line": ln, "state": st, "reason": why}
                                for r, ln, st, why in self.not_removed],
                "cannot_predict": list(self.cannot_predict), "notes": list(self.notes)}


@dataclass(frozen=True)
class RehearsalOptions:
    scale: float = 1.0
    sample: int | None = None
    versions: int = 1
    seed: int = 0
    max_object_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1000:
            raise InputError("want a factor above 0 and at most 1000", field="--scale")
        if self.sample is not None and self.sample < 1:
            raise InputError("want at least 1 row", field="--sample")
        if not 1 <= self.versions <= 100:
            raise InputError("want 1 to 100 versions per object", field="--versions")


def rehearse(manifest: Path, wave_file: Path | None, directory: Path, options: RehearsalOptions, *,
             controls: RunControls | None = None) -> Rehearsal:
    """Check, seed, run and verify; the sandbox is stopped at the end, the folder kept (the caller may
    remove it). InputError (exit 2) for bad input or a refused wave, before the sandbox starts."""
    # The wave file as `run` reads it, but with no environment: nothing of the caller's clouds applies.
    settings = load_wave(wave_file, {}, {})
    summary, pre = check_offline(manifest, settings)
    pre.raise_if_refused(str(manifest))
    namespace = _namespace(manifest, settings.estate)
    regions = _oci_regions(settings.estate)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    sandbox_dir = directory / "sandbox"
    control.down(sandbox_dir, missing_ok=True)
    state = control.up(sandbox_dir, namespace=namespace, oci_regions=regions)
    try:
        estate, places, placement = sandbox_estate(settings.estate, state, regions)
        _refuse_shared_buckets(manifest, estate, places)
        env = _sandbox_env(state, directory)
        with _environment(env):
            rehearsed = directory / "rehearsal.jsonl"
            placer = _placer(state, places)
            seeded = seed_manifest(state, manifest, rehearsed, estate=estate, place=placer, scale=options.scale,
                                   sample=options.sample, versions=options.versions, seed=options.seed,
                                   max_object_bytes=options.max_object_bytes)
            run_settings = WaveSettings(policy=settings.policy, transfer=_uncapped(settings.transfer),
                                        endpoints=endpoints_from_env(env), estate=estate)
            before = _requests(state)
            wave, verified, error = _run(rehearsed, directory, run_settings, controls)
            after = _requests(state)
    finally:
        control.down(sandbox_dir, missing_ok=True)
    spent = {name: after.get(name, 0) - before.get(name, 0) for name in _SERVERS if name in after}
    original_rows = _original_rows(manifest, settings.estate, seeded)
    not_removed = tuple((original_rows[r - 1][0], original_rows[r - 1][1], st, why)
                        for r, st, why in wave.held_rows if st != "OUT_OF_SCOPE")
    projection = _project(manifest, settings, summary.rows, wave, spent, places)
    notes = [f"declared digests replaced by the seeded content's ({rehearsed.name}); sizes x {options.scale:g}"]
    if seeded.capped:
        notes.append(f"{seeded.capped} object(s) seeded at {options.max_object_bytes} bytes, not their full size")
    if options.sample is not None and options.sample < summary.rows:
        notes.append(f"a sample of {seeded.rows} of {summary.rows} rows (seed {options.seed}); the rest projected")
    return Rehearsal(manifest=manifest, rehearsed_manifest=rehearsed, directory=directory, seeded=seeded, wave=wave,
                     verified=verified, verify_error=error, placement=tuple(placement), requests_by_endpoint=spent,
                     projection=projection, not_removed=not_removed, notes=tuple(notes))


# --- the sandbox in place of every location --------------------------------------------------------------

def _namespace(manifest: Path, estate: Estate) -> str:
    """The one OCI namespace the manifest and the locations name (the emulator plays one tenancy)."""
    found = {s.owner for s in estate.locations if s.kind == "oci" and s.owner}
    for row in iter_rows(manifest, estate=estate):
        found.update(u.namespace for u in (row.source, row.destination, *row.replicas) if u.scheme == "oci")
    if len(found) > 1:
        raise InputError(f"the rehearsal plays one OCI tenancy; the wave names namespaces {', '.join(sorted(found))}",
                         file=str(manifest))
    return found.pop() if found else NAMESPACE


def _oci_regions(estate: Estate) -> tuple[str, str]:
    declared = list(dict.fromkeys(s.region for s in estate.locations if s.kind == "oci" and s.region))
    if len(declared) > 2:
        raise InputError(f"the rehearsal plays two OCI regions; the wave file declares {', '.join(declared)}")
    defaults = [r for r in (OCI_REGION, OCI_EU_REGION) if r not in declared]
    first, second = (declared + defaults)[:2]
    return first, second


def _s3_server(spec: LocationSpec) -> str:
    # A store addressed by path or on its own endpoint plays the data centre's; AWS's own endpoint, AWS.
    if spec.addressing_style == "path" or (spec.endpoint and "amazonaws.com" not in spec.endpoint):
        return "s3dc"
    return "s3"


def sandbox_estate(estate: Estate, state: SandboxState,
                   regions: tuple[str, str]) -> tuple[Estate, dict[str, BucketPlace], list[str]]:
    """Each location pointed at a sandbox endpoint, with the sandbox's credentials and owner; where its
    buckets are made; and the replacement in words. Refused when an endpoint is not loopback after it."""
    specs: list[LocationSpec] = []
    places: dict[str, BucketPlace] = {}
    words: list[str] = []
    for spec in estate.locations:
        common: dict[str, Any] = {"ca_bundle": state.ca_file, "credentials_file": None, "config_file": None}
        if spec.kind == "s3":
            server = _s3_server(spec)
            profile, owner = _S3_SERVERS[server]
            new = dataclasses.replace(spec, **common, endpoint=_url(state, server), profile=profile, owner=owner,
                                      addressing_style="path" if server == "s3dc" else spec.addressing_style)
            places[spec.name] = BucketPlace(server, spec.region)
        elif spec.kind == "gs":
            server = "gcs"
            new = dataclasses.replace(spec, **common, endpoint=_url(state, server), profile=None,
                                      owner=PROJECT_NUMBER)
            places[spec.name] = BucketPlace(server, spec.region)
        else:
            server = "oci" if (spec.region or regions[0]) == regions[0] else "oci_eu"
            new = dataclasses.replace(spec, **{**common, "config_file": state.oci_config},
                                      endpoint=_url(state, server), profile="DEFAULT", owner=state.oci_namespace)
            places[spec.name] = BucketPlace(server, None)
        if new.endpoint is None or not is_loopback_url(new.endpoint):
            raise UnsafeEndpointError(f"location {spec.name!r}: not loopback after replacement ({new.endpoint!r})")
        specs.append(new)
        words.append(f"{spec.name} ({spec.kind}, region {spec.region or '-'}) -> sandbox {server} {new.endpoint}")
    return Estate(tuple(specs)), places, words


def _refuse_shared_buckets(manifest: Path, estate: Estate, places: Mapping[str, BucketPlace]) -> None:
    """Two locations whose buckets of one name would land on one sandbox endpoint cannot be told apart."""
    owner: dict[tuple[str, str], str] = {}
    for row in iter_rows(manifest, estate=estate):
        for uri in (row.source, row.destination, *row.replicas):
            if not uri.at:
                continue
            key = (places[uri.at].server, f"{uri.namespace}/{uri.bucket}")
            first = owner.setdefault(key, uri.at)
            if first != uri.at:
                raise InputError(f"locations {first!r} and {uri.at!r} both have bucket {uri.bucket!r}, which the "
                                 f"rehearsal would put on one sandbox endpoint ({key[0]})", file=str(manifest),
                                 line=row.line)


def _url(state: SandboxState, server: str) -> str:
    endpoint: control.Endpoint | None = getattr(state, server)
    if endpoint is None:
        raise UnsafeEndpointError(f"the sandbox has no {server} endpoint")
    return endpoint.url


def _placer(state: SandboxState, places: Mapping[str, BucketPlace]) -> Any:
    default = sandbox_placer(state)

    def place(uri: ObjectURI) -> BucketPlace:
        return places[uri.at] if uri.at else default(uri)

    return place


def _sandbox_env(state: SandboxState, directory: Path) -> dict[str, str]:
    """The sandbox's endpoints and fake credentials, and nothing of the caller's that names a credential:
    HOME is the rehearsal's folder, so ~/.aws, ~/.oci and gcloud's files are not found either."""
    kept = {k: v for k, v in os.environ.items() if k in _KEPT_ENV}
    home = directory / "home"
    home.mkdir(exist_ok=True, mode=0o700)
    return {**kept, **state.env(), "HOME": str(home)}


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    # The SDKs read their CA bundle, profiles and credentials from the process environment.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _uncapped(transfer: TransferSettings) -> TransferSettings:
    return dataclasses.replace(transfer, requests_per_second=None, bytes_per_second=None)


def _requests(state: SandboxState) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in _SERVERS:
        endpoint: control.Endpoint | None = getattr(state, name)
        if endpoint is not None:
            counts[name] = sum(get_faults(endpoint.url, ca_file=state.ca_file).get("requests", {}).values())
    return counts


# --- the wave, verified ----------------------------------------------------------------------------------

def _run(manifest: Path, directory: Path, settings: WaveSettings,
         controls: RunControls | None) -> tuple[WaveResult, bool, str | None]:
    keys = directory / "keys"
    shutil.rmtree(keys, ignore_errors=True)
    private, public = generate_keypair(keys)
    state_dir = directory / "state"
    shutil.rmtree(state_dir, ignore_errors=True)   # a rehearsal starts over: its sandbox is new
    subjects = [r.subject for r in iter_rows(manifest, estate=settings.estate) if r.subject]
    hasher = None
    checks: list[Policy] = [Threshold([load_public_key(public)]), RequireRecords(), RequireManifest()]
    if subjects:   # the rehearsal plays the custodian too, as the demo does
        subject_key = generate_subject_key(keys / "subject.key")
        hashes = keys / "subject-hashes.jsonl"
        write_subject_hashes(subject_key, subjects, hashes)
        hasher = load_subject_hashes(hashes)
        checks.append(RequireSubjectIndex(subject_key))
    wave = run_wave(manifest, state_dir, load_signer(private), settings, subject_hasher=hasher, controls=controls)
    try:
        verify_attestation(wave.attestation.read_bytes(),
                           Inputs(records=wave.records, manifest=manifest,
                                  subjects=state_dir / "subjects.jsonl" if subjects else None),
                           AllOf(*checks))
    except VerificationError as exc:
        return wave, False, str(exc)
    return wave, True, None


def _original_rows(manifest: Path, estate: Estate, seeded: SeededManifest) -> list[tuple[int, int]]:
    """(row, line) in the real manifest of each rehearsed row, in order."""
    wanted = set(seeded.source_rows)
    return [(r.row, r.line) for r in iter_rows(manifest, estate=estate) if r.row in wanted]


# --- the projection --------------------------------------------------------------------------------------

def _project(manifest: Path, settings: WaveSettings, rows: int, wave: WaveResult, spent: Mapping[str, int],
             places: Mapping[str, BucketPlace]) -> Projection:
    policy = settings.policy
    in_scope = no_size = total = 0
    through: Counter[str] = Counter()   # declared bytes copied from or to each location
    for row in iter_rows(manifest, estate=settings.estate):
        if residency_of(policy, row) == "out-of-scope":
            continue
        in_scope += 1
        size = row.size or 0
        no_size += row.size is None
        total += size
        for at in {row.source.at, row.destination.at} - {""}:
            through[at] += size
    moved = wave.rows - wave.out_of_scope
    factor = in_scope / moved if moved else 0.0   # rehearsed rows to the manifest's
    requests = sum(spent.values())
    projected = round(requests * factor)
    bounds: list[tuple[str, float]] = []
    caps: list[str] = []
    t = settings.transfer
    if t.requests_per_second:
        caps.append(f"wave: {t.requests_per_second:g} requests/s")
        bounds.append((f"wave requests: {projected} at {t.requests_per_second:g}/s", projected / t.requests_per_second))
    if t.bytes_per_second:
        caps.append(f"wave: {t.bytes_per_second} bytes/s")
        bounds.append((f"wave bytes: {total} at {t.bytes_per_second}/s", total / t.bytes_per_second))
    for spec in settings.estate.locations:
        if spec.bytes_per_second:
            caps.append(f"{spec.name}: {spec.bytes_per_second} bytes/s")
            bounds.append((f"{spec.name} bytes: {through[spec.name]} at {spec.bytes_per_second}/s",
                           through[spec.name] / spec.bytes_per_second))
        if spec.requests_per_second:
            # The sandbox counts requests by endpoint: a location alone on its endpoint gets its own count,
            # one sharing it gets the endpoint's, an upper bound.
            server = places[spec.name].server
            sharing = [n for n, p in places.items() if p.server == server and n != spec.name]
            n = round(spent.get(server, 0) * factor)
            caps.append(f"{spec.name}: {spec.requests_per_second:g} requests/s")
            bounds.append((f"{spec.name} requests: {'at most ' if sharing else ''}{n} at "
                           f"{spec.requests_per_second:g}/s", n / spec.requests_per_second))
    bounds.sort(key=lambda b: -b[1])
    return Projection(rows=rows, in_scope_rows=in_scope, rehearsed_rows=moved, requests=requests,
                      requests_per_object=round(requests / moved, 2) if moved else 0.0, projected_requests=projected,
                      declared_bytes=total, rows_without_size=no_size, bounds=tuple(bounds), caps=tuple(caps))
