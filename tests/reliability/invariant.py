"""The invariant the reliability suite defends, checked against the sandbox's clouds at any instant.

Before a wave, :func:`snapshot` records every version of every manifest object at every source location
(the source and its replicas), with the SHA-256 of its bytes. :func:`check` then says, at any later
instant (after a kill, mid-fault, at the end), whether each of those versions is still

* present at its source location (same version id and ETag), or
* present at the row's destination with the same SHA-256, or
* recorded in the journal as disposed of by an explicit policy (``versions = "current"``);

and whether the journal and the records claim no more than the clouds show: a REMOVED row has nothing
left at its source locations, every verified version is at the destination with the digest recorded,
and every delete recorded as done is gone.

It talks to the clouds through the sandbox's own SDK clients (``migrator.sandbox.buckets``), never
through migrator's adapters, so a bug in an adapter cannot hide itself. Objects are small in tests:
every version is read whole to hash it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrator.manifest import iter_rows
from migrator.sandbox.buckets import gcs_client, oci_client, s3_client
from migrator.sandbox.control import SandboxState
from migrator.uri import ObjectURI, parse_uri

if TYPE_CHECKING:
    from google.cloud import storage
    from mypy_boto3_s3 import S3Client
    from oci.object_storage import ObjectStorageClient

# ------------------------------------------------------------------------------------------------ clouds


@dataclass(frozen=True)
class Listed:
    """One row of a version listing of exactly one key."""

    version: str
    etag: str | None
    size: int
    marker: bool = False


class Clouds:
    """Read-only views of the sandbox's three clouds: exact-key version listings and whole reads."""

    def __init__(self, sandbox: SandboxState) -> None:
        self.sandbox = sandbox
        self._s3: S3Client | None = None
        self._gcs: storage.Client | None = None
        self._oci: ObjectStorageClient | None = None
        self._sha: dict[tuple[str, str, str | None], str] = {}

    @property
    def s3(self) -> S3Client:
        if self._s3 is None:
            self._s3 = s3_client(self.sandbox)
        return self._s3

    @property
    def gcs(self) -> storage.Client:
        if self._gcs is None:
            self._gcs = gcs_client(self.sandbox)
        return self._gcs

    @property
    def oci(self) -> ObjectStorageClient:
        if self._oci is None:
            self._oci = oci_client(self.sandbox)[0]
        return self._oci

    def versions(self, uri: ObjectURI) -> list[Listed]:
        """Every version and delete marker of exactly ``uri.key`` (a missing bucket lists nothing)."""
        return self.bucket(uri, prefix=uri.key).get(uri.key, [])

    def listing(self, uris: Iterable[ObjectURI]) -> dict[str, list[Listed]]:
        """str(uri) -> its versions and markers, listing each bucket once (cheap enough to run after every kill)."""
        by_bucket: dict[str, list[ObjectURI]] = {}
        for uri in uris:
            by_bucket.setdefault(uri.location, []).append(uri)
        out: dict[str, list[Listed]] = {}
        for members in by_bucket.values():
            keys = self.bucket(members[0], prefix="")
            for uri in members:
                out[str(uri)] = keys.get(uri.key, [])
        return out

    def bucket(self, uri: ObjectURI, *, prefix: str) -> dict[str, list[Listed]]:
        """key -> versions and delete markers, for every key under ``prefix`` in ``uri``'s bucket."""
        out: dict[str, list[Listed]] = {}
        if uri.scheme == "s3":
            entries = self._s3_versions(uri.bucket, prefix)
        elif uri.scheme == "gs":
            entries = self._gcs_versions(uri.bucket, prefix)
        elif uri.scheme == "oci":
            entries = self._oci_versions(uri.namespace, uri.bucket, prefix)
        else:
            raise ValueError(f"no cloud for {uri}")
        for key, entry in entries:
            out.setdefault(key, []).append(entry)
        return out

    def _s3_versions(self, bucket: str, prefix: str) -> Iterator[tuple[str, Listed]]:
        pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for v in page.get("Versions", []) or []:
                yield v["Key"], Listed(str(v.get("VersionId") or "null"), v.get("ETag"), int(v.get("Size", 0)))
            for m in page.get("DeleteMarkers", []) or []:
                yield m["Key"], Listed(str(m.get("VersionId") or "null"), None, 0, marker=True)

    def _gcs_versions(self, bucket: str, prefix: str) -> Iterator[tuple[str, Listed]]:
        for blob in self.gcs.list_blobs(bucket, prefix=prefix or None, versions=True):
            yield blob.name, Listed(str(blob.generation), blob.etag, int(blob.size or 0))

    def _oci_versions(self, ns: str, bucket: str, prefix: str) -> Iterator[tuple[str, Listed]]:
        page: str | None = None
        while True:
            kwargs: dict[str, Any] = {"fields": "name,size,etag"}
            if prefix:
                kwargs["prefix"] = prefix
            if page:
                kwargs["page"] = page
            resp = self.oci.list_object_versions(ns, bucket, **kwargs)
            for item in resp.data.items or []:
                yield item.name, Listed(str(item.version_id), item.etag, int(item.size or 0),
                                        marker=bool(item.is_delete_marker))
            page = resp.headers.get("opc-next-page")
            if not page:
                return

    def read(self, uri: ObjectURI, entry: Listed) -> bytes:
        if uri.scheme == "s3":
            kwargs: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
            if entry.version != "null":
                kwargs["VersionId"] = entry.version
            else:
                kwargs["IfMatch"] = entry.etag  # unversioned: only the bytes this listing saw
            return bytes(self.s3.get_object(**kwargs)["Body"].read())
        if uri.scheme == "gs":
            blob = self.gcs.bucket(uri.bucket).blob(uri.key, generation=int(entry.version))
            return bytes(blob.download_as_bytes(raw_download=True, checksum=None))
        if uri.scheme == "oci":
            resp = self.oci.get_object(uri.namespace, uri.bucket, uri.key, version_id=entry.version)
            return bytes(resp.data.content)
        raise ValueError(f"no cloud for {uri}")

    def sha256(self, uri: ObjectURI, entry: Listed) -> str:
        """SHA-256 of one version's bytes; cached by (uri, version, etag), which never changes its bytes."""
        key = (str(uri), entry.version, entry.etag)
        if key not in self._sha:
            self._sha[key] = hashlib.sha256(self.read(uri, entry)).hexdigest()
        return self._sha[key]

    def destination_digests(self, uri: ObjectURI) -> dict[str, str]:
        """version id -> SHA-256 of every (non-marker) version at a destination key."""
        return {e.version: self.sha256(uri, e) for e in self.versions(uri) if not e.marker}


# ----------------------------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class Row:
    row: int
    source: ObjectURI
    destination: ObjectURI
    replicas: tuple[ObjectURI, ...]

    @property
    def locations(self) -> tuple[ObjectURI, ...]:
        return (self.source, *self.replicas)


@dataclass(frozen=True)
class Version:
    """One version that existed at a source location before the wave."""

    row: int
    location: ObjectURI
    version: str
    etag: str | None
    size: int
    sha256: str


@dataclass
class Snapshot:
    rows: dict[int, Row]
    versions: list[Version]

    @property
    def objects(self) -> int:
        return len(self.rows)


def manifest_rows(manifest: Path) -> dict[int, Row]:
    return {r.row: Row(r.row, r.source, r.destination, tuple(r.replicas)) for r in iter_rows(manifest)}


def snapshot(clouds: Clouds, manifest: Path) -> Snapshot:
    rows = manifest_rows(manifest)
    listed = clouds.listing(loc for row in rows.values() for loc in row.locations)
    versions = []
    for row in rows.values():
        for loc in row.locations:
            for e in listed[str(loc)]:
                if not e.marker:
                    versions.append(Version(row.row, loc, e.version, e.etag, e.size, clouds.sha256(loc, e)))
    return Snapshot(rows, versions)


# -------------------------------------------------------------------------------------- journal and records


@dataclass(frozen=True)
class Claim:
    """What the wave's state says about one row (from the journal, or from records.jsonl)."""

    source: str          # "journal" or "records"
    row: int
    state: str
    data: dict[str, Any]


def journal_claims(state_dir: Path) -> list[Claim]:
    """The journal's rows, read without writing (a killed run's WAL is read, not checkpointed)."""
    path = state_dir / "journal.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT row, state, data FROM objects ORDER BY row").fetchall()
    except sqlite3.OperationalError:
        return []  # killed before the schema was committed
    finally:
        conn.close()
    return [Claim("journal", int(r), str(s), json.loads(d)) for r, s, d in rows]


def record_claims(state_dir: Path) -> list[Claim]:
    path = state_dir / "records.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out.append(Claim("records", int(rec["row"]), str(rec["state"]), rec))
    return out


def _sha256_of(record: dict[str, Any]) -> str | None:
    for d in record.get("digests", []):
        if d.get("algorithm") == "sha256" and d.get("provenance") == "computed":
            return str(d["hex"])
    return None


# ---------------------------------------------------------------------------------------------------- check


@dataclass
class Report:
    objects: int = 0
    versions: int = 0
    lost: list[str] = field(default_factory=list)                # gone from the source, not at the destination
    unverified_deletes: list[str] = field(default_factory=list)  # gone from the source, never verified
    false_claims: list[str] = field(default_factory=list)        # the journal/records claim more than the clouds
    at_source: int = 0
    at_destination: int = 0
    disposed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unverified_deletes or self.false_claims)

    def problems(self) -> list[str]:
        return ([f"LOST {p}" for p in self.lost] + [f"UNVERIFIED DELETE {p}" for p in self.unverified_deletes]
                + [f"FALSE CLAIM {p}" for p in self.false_claims])

    def assert_ok(self, when: str = "") -> None:
        if not self.ok:
            raise AssertionError(f"invariant broken{' ' + when if when else ''}:\n  " + "\n  ".join(self.problems()))


def check(snap: Snapshot, clouds: Clouds, state_dir: Path | None, *,
          claims: Iterable[Claim] | None = None) -> Report:
    """Check every snapshot version and every claim of the journal and records against the clouds now."""
    if claims is None:
        claims = [*journal_claims(state_dir), *record_claims(state_dir)] if state_dir is not None else []
    claims = list(claims)
    journal = {c.row: c for c in claims if c.source == "journal"}
    report = Report(objects=snap.objects, versions=len(snap.versions))
    # One listing per bucket, taken now: every question below is answered from it.
    wanted = [loc for row in snap.rows.values() for loc in (*row.locations, row.destination)]
    listed = clouds.listing(wanted)

    def versions_at(uri: ObjectURI) -> list[Listed]:
        if str(uri) not in listed:
            listed[str(uri)] = clouds.versions(uri)
        return listed[str(uri)]

    dest_sha: dict[str, dict[str, str]] = {}

    def dest_digests(uri: ObjectURI) -> dict[str, str]:
        if str(uri) not in dest_sha:
            dest_sha[str(uri)] = {e.version: clouds.sha256(uri, e) for e in versions_at(uri) if not e.marker}
        return dest_sha[str(uri)]

    # 1. Nothing lost: every version that existed is at its source, at the destination, or disposed by policy.
    for v in snap.versions:
        row = snap.rows[v.row]
        if any(e.version == v.version and e.etag == v.etag and not e.marker for e in versions_at(v.location)):
            report.at_source += 1
            continue
        claim = journal.get(v.row)
        data = claim.data if claim else {}
        disposed = any(d.get("uri") == str(v.location) and d.get("version") == v.version
                       for d in data.get("disposed", []))
        at_dest = v.sha256 in dest_digests(row.destination).values()
        what = f"row {v.row} {v.location} version {v.version} ({v.size} bytes, sha256 {v.sha256[:12]})"
        if disposed:
            report.disposed += 1
        elif at_dest:
            report.at_destination += 1
        else:
            report.lost.append(what)
        # The delete must have been earned: a verified record of these bytes, or a disposal by policy.
        verified = {_sha256_of(rec) for rec in data.get("versions", [])}
        if not disposed and v.sha256 not in verified:
            report.unverified_deletes.append(what)

    # 2. The journal and the records claim no more than the clouds show.
    original = {(v.row, str(v.location), v.version): v.sha256 for v in snap.versions}
    for c in claims:
        claimed = snap.rows.get(c.row)
        if claimed is None:
            report.false_claims.append(f"{c.source}: row {c.row} is not in the manifest")
            continue
        row = claimed
        for rec in c.data.get("versions", []):
            sha = _sha256_of(rec)
            digests = dest_digests(row.destination)
            want = rec.get("destination_version")
            where = f"{c.source}: row {c.row} verified version {rec.get('version')}"
            # Records name an unversioned S3 object's version None; this oracle lists it as S3 does, "null".
            true_sha = original.get((c.row, str(row.source), str(rec.get("version") or "null")))
            if sha is None:
                report.false_claims.append(f"{where} has no computed sha256")
            elif true_sha is not None and sha != true_sha:
                report.false_claims.append(f"{where} has sha256 {sha[:12]}, the source's bytes {true_sha[:12]}")
            elif want is not None and digests.get(str(want)) != sha:
                report.false_claims.append(f"{where} not at {row.destination} version {want} with sha256 {sha[:12]}")
            elif want is None and sha not in digests.values():
                report.false_claims.append(f"{where} not at {row.destination} with sha256 {sha[:12]}")
        for d in c.data.get("deletions", []):
            if d.get("result") != "deleted" or d.get("version") in (None, "null"):
                continue
            uri = parse_uri(str(d["uri"]))
            if any(e.version == d["version"] for e in versions_at(uri)):
                report.false_claims.append(f"{c.source}: row {c.row} says {uri} version {d['version']} deleted; "
                                           "it is still listed")
        if c.state == "REMOVED":
            for loc in row.locations:
                left = versions_at(loc)
                if left:
                    report.false_claims.append(f"{c.source}: row {c.row} REMOVED but {loc} still lists "
                                               f"{[e.version for e in left]}")
    return report


# ----------------------------------------------------------------------------------------- wave scaffolding


def cli(*args: str) -> list[str]:
    """The command a user types, as argv."""
    return [sys.executable, "-m", "migrator", *args]


def run_command(manifest: Path, state: Path, key: Path, *extra: str) -> list[str]:
    return cli("run", str(manifest), "--state", str(state), "--signing-key", str(key), *extra)


def child_env(**extra: str) -> dict[str, str]:
    """The test process's environment (the sandbox's endpoints and credentials) for a CLI child:
    retries without back-off, no crash point unless given."""
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_CRASH_AT"}
    env["MIGRATOR_NO_BACKOFF"] = "1"
    env.update(extra)
    return env


def write_manifest(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """A JSONL manifest (keys with any character survive JSON untouched)."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    return path


@dataclass
class KillRun:
    """What one wave went through under random kills."""

    kills: int = 0
    resumes: int = 0
    checks: int = 0
    problems: list[str] = field(default_factory=list)   # invariant breaks seen after any kill
    lost: int = 0
    unverified_deletes: int = 0
    false_claims: int = 0
    exit_code: int | None = None
    output: str = ""


def _wait_started(proc: subprocess.Popen[bytes], state: Path, limit: float) -> None:
    """Until this run holds the state folder's lock (it writes its pid there: the wave starts), or exits."""
    lock = state / "lock"
    want = str(proc.pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if lock.read_text().strip() == want:
                return
        except OSError:
            pass
        try:
            proc.wait(timeout=0.01)
            return
        except subprocess.TimeoutExpired:
            continue


def run_with_random_kills(cmd: list[str], env: dict[str, str], state: Path, snap: Snapshot, clouds: Clouds,
                          rng: random.Random, *, max_kills: int, min_delay: float = 0.05,
                          max_delay: float = 1.5, log: Path | None = None) -> KillRun:
    """Run ``cmd`` and SIGKILL it a random 0.05-1.5 s after it takes the state folder's lock (startup, imports
    and manifest validation come before), check the invariant, run the same command again, ... until a run
    completes; after ``max_kills`` kills the last run is left alone."""
    out = KillRun()
    log = log or state.with_name(state.name + ".log")
    while True:
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
            try:
                if out.kills < max_kills:
                    _wait_started(proc, state, 60.0)
                    try:
                        proc.wait(timeout=rng.uniform(min_delay, max_delay))
                    except subprocess.TimeoutExpired:
                        proc.kill()
                code = proc.wait(timeout=600)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if code != -signal.SIGKILL:
            out.exit_code = code
            out.output = log.read_text(errors="replace")[-4000:]
            break
        out.kills += 1
        out.resumes += 1
        report = check(snap, clouds, state)
        out.checks += 1
        out.lost += len(report.lost)
        out.unverified_deletes += len(report.unverified_deletes)
        out.false_claims += len(report.false_claims)
        out.problems.extend(f"after kill {out.kills}: {p}" for p in report.problems())
    return out
