"""Seed the sandbox from a manifest: create every bucket its rows name and write every source object, then
write the manifest again with the seeded content's own sizes and digests, so a wave over it verifies.

The rows are read as ``migrator run`` reads them (``iter_rows`` with the wave file's estate), so a qualified
URI (``s3://dc@users/k``) or one that a location serves is placed on that location's server and region.
Bodies are deterministic pseudo-random bytes (from ``seed``, the row number, the version and the chunk),
generated chunk by chunk: no body is ever held whole, and the manifest is read as a stream (two or three
passes: the row count when sampling, the buckets, then the objects).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.checksum import Algorithm, Checksum, MultiHasher
from migrator.errors import InputError, SandboxError
from migrator.estate import Estate
from migrator.manifest import ManifestRow, iter_rows
from migrator.sandbox.buckets import create_bucket, endpoint, gcs_client, oci_client, s3_client
from migrator.sandbox.control import SandboxState
from migrator.sandbox.estate import LOCATIONS
from migrator.uri import ObjectURI

DEFAULT_SIZE = 1024           # the size of a row that declares none
CHUNK = 1 << 20               # bodies are generated, hashed and read in chunks of this size
_DEFAULT_SERVER = {"s3": "s3", "gs": "gcs", "oci": "oci"}
_DIGESTS = (("md5", Algorithm.MD5), ("sha256", Algorithm.SHA256), ("crc32c", Algorithm.CRC32C))


@dataclass(frozen=True)
class BucketPlace:
    server: str            # a SandboxState endpoint field: "s3", "s3dc", "gcs", "oci", "oci_eu"
    region: str | None     # S3 LocationConstraint / GCS location for bucket creation; None: default / OCI


Placer = Callable[[ObjectURI], BucketPlace]


def sandbox_placer(state: SandboxState, estate: Estate | None = None) -> Placer:
    """Where a URI's bucket lives in the sandbox. ``uri.at`` names a location: a location of ``estate`` (the
    wave file's) is found by its endpoint among the state's, with its declared region; otherwise it must be a
    :data:`migrator.sandbox.estate.LOCATIONS` name (its server and region). An unqualified URI is on its
    scheme's default server (s3, gcs, oci), default region. Anything else is a SandboxError."""
    by_url = {endpoint(state, ep_name).url.rstrip("/"): ep_name for ep_name in _present_servers(state)}
    sandbox = {loc.name: loc for loc in LOCATIONS}

    def place(uri: ObjectURI) -> BucketPlace:
        if not uri.at:
            return BucketPlace(_DEFAULT_SERVER[uri.scheme], None)
        spec = next((s for s in estate.locations if s.name == uri.at), None) if estate else None
        if spec is not None and spec.endpoint is not None:
            server = by_url.get(spec.endpoint.rstrip("/"))
            if server is None:
                raise SandboxError(f"{uri}: location {spec.name!r} has endpoint {spec.endpoint}, not one of "
                                   f"the sandbox's in {state.directory}")
            return BucketPlace(server, None if spec.kind == "oci" else spec.region)
        loc = sandbox.get(uri.at)
        if loc is None or loc.kind != uri.scheme:
            raise SandboxError(f"{uri}: {uri.at!r} is not a sandbox location of kind {uri.scheme} (known: "
                               f"{', '.join(lo.name for lo in LOCATIONS if lo.kind == uri.scheme)})")
        return BucketPlace(loc.server, None if loc.kind == "oci" else loc.region)

    return place


def _present_servers(state: SandboxState) -> list[str]:
    return [name for name in ("s3", "s3dc", "gcs", "oci", "oci_eu") if getattr(state, name) is not None]


@dataclass(frozen=True)
class SeededManifest:
    """What was seeded. ``objects`` counts object versions written (every version of every source and
    replica), ``bytes`` their bytes; ``declared_bytes`` is the sum of the sizes the seeded rows declared;
    ``buckets`` every bucket the seeded rows name (``str(location)``, first seen first), whether made here
    or already there; ``capped`` the rows whose scaled size was cut to ``max_object_bytes``."""

    manifest: Path
    rows: int
    objects: int
    bytes: int
    declared_bytes: int
    buckets: tuple[str, ...]
    capped: int
    source_rows: tuple[int, ...] = ()   # each seeded row's number in the input manifest, in order


@dataclass
class _Need:
    uri: ObjectURI           # any object of the bucket (its location and placement)
    place: BucketPlace
    versioned: bool = False
    object_lock: bool = False


@dataclass
class _Tally:
    objects: int = 0
    bytes: int = 0
    declared: int = 0
    capped: int = 0
    rows: int = 0
    source_rows: list[int] = field(default_factory=list)
    buckets: dict[tuple[str, str, str, str], _Need] = field(default_factory=dict)


def seed_manifest(state: SandboxState, manifest: Path, out: Path, *, estate: Estate | None = None,
                  place: Placer | None = None, scale: float = 1.0, sample: int | None = None,
                  versions: int = 1, holds: Collection[int] = (), seed: int = 0,
                  max_object_bytes: int = 64 * 2**20) -> SeededManifest:
    """Create the buckets the manifest's rows name and write their objects, then write ``out`` (JSONL).

    ``estate``: the wave file's locations (``load_wave(...).estate``), so URIs resolve as ``migrator run``
    resolves them; None: no wave file (a qualified URI is then refused, as by ``run``). ``place``: where a
    bucket is made (default :func:`sandbox_placer` over ``estate``). Destination buckets are versioned;
    source and replica buckets when ``versions`` > 1; a source bucket of a row in ``holds`` (row numbers,
    1-based) has S3 Object Lock, and that row's object a legal hold (GCS: a temporary hold). Buckets that
    exist are left as they are.

    Each object is ``size * scale`` bytes (``size`` as declared; 1 KiB when none is, unscaled), at most
    ``max_object_bytes``; ``versions - 1`` older versions with other bytes are written first, and every
    replica gets the same versions. ``sample=N`` seeds only N rows, ``random.Random(seed).sample`` of the row
    numbers (every row when N >= rows). ``out`` has the seeded rows in input order with the URIs as written,
    ``size`` and the declared digest kinds replaced by the content's own (sha256 added when none was).
    """
    if versions < 1:
        raise InputError(f"versions must be at least 1, got {versions}")
    if scale < 0 or max_object_bytes < 0:
        raise InputError("scale and max_object_bytes must not be negative")
    if sample is not None and sample < 0:
        raise InputError(f"sample must not be negative, got {sample}")
    resolving = Estate() if estate is None else estate
    place = place or sandbox_placer(state, estate)
    held = frozenset(holds)
    chosen = _choose(manifest, resolving, sample, seed)
    tally = _Tally()
    _plan_buckets(manifest, resolving, chosen, held, versions, place, tally)
    _create_buckets(state, tally)
    writer = _Writer(state)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row, written in _pairs(manifest, resolving):
            if chosen is not None and row.row not in chosen:
                continue
            record = _seed_row(writer, row, written, tally, place=place, scale=scale, versions=versions,
                               hold=row.row in held, seed=seed, cap=max_object_bytes)
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            tally.rows += 1
            tally.source_rows.append(row.row)
    tmp.replace(out)
    return SeededManifest(manifest=out, rows=tally.rows, objects=tally.objects, bytes=tally.bytes,
                          declared_bytes=tally.declared, buckets=tuple(str(n.uri.location) for n in
                                                                       tally.buckets.values()),
                          capped=tally.capped, source_rows=tuple(tally.source_rows))


# --- the passes -----------------------------------------------------------------------------------------

def _pairs(manifest: Path, estate: Estate) -> Iterator[tuple[ManifestRow, ManifestRow]]:
    """Each row resolved (where its objects live) and as written (what ``out`` repeats), side by side."""
    yield from zip(iter_rows(manifest, estate=estate), iter_rows(manifest, estate=None), strict=True)


def _choose(manifest: Path, estate: Estate, sample: int | None, seed: int) -> frozenset[int] | None:
    if sample is None:
        return None
    count = sum(1 for _ in iter_rows(manifest, estate=estate))
    if sample >= count:
        return None
    return frozenset(random.Random(seed).sample(range(1, count + 1), sample))


def _bucket_key(uri: ObjectURI, where: BucketPlace) -> tuple[str, str, str, str]:
    return (where.server, uri.scheme, uri.namespace, uri.bucket)


def _plan_buckets(manifest: Path, estate: Estate, chosen: frozenset[int] | None, held: frozenset[int],
                  versions: int, place: Placer, tally: _Tally) -> None:
    seen_rows = 0
    for row in iter_rows(manifest, estate=estate):
        seen_rows = row.row
        if chosen is not None and row.row not in chosen:
            continue
        roles = [(row.source, "source"), (row.destination, "destination"), *((r, "replica") for r in row.replicas)]
        for uri, role in roles:
            where = place(uri)
            need = tally.buckets.setdefault(_bucket_key(uri, where), _Need(uri, where))
            need.versioned |= role == "destination" or versions > 1
            if role == "source" and row.row in held:
                if uri.scheme == "oci":
                    raise InputError(f"row {row.row}: a hold on an OCI source ({row.source}) is not supported; "
                                     "holds are S3 legal holds or GCS temporary holds", line=row.line)
                need.object_lock |= uri.scheme == "s3"
    beyond = sorted(r for r in held if not 1 <= r <= seen_rows)
    if beyond:
        raise InputError(f"holds name rows the manifest does not have: {', '.join(map(str, beyond))} "
                         f"(it has {seen_rows})", file=str(manifest))


def _create_buckets(state: SandboxState, tally: _Tally) -> None:
    for need in tally.buckets.values():
        uri, where = need.uri, need.place
        if uri.scheme == "oci" and uri.namespace != state.oci_namespace:
            raise SandboxError(f"{uri.location}: the sandbox's OCI namespace is {state.oci_namespace!r}")
        if _exists(state, uri, where):
            continue
        create_bucket(state, uri.scheme, uri.bucket, versioned=need.versioned, object_lock=need.object_lock,
                      server=where.server, region=where.region)


def _exists(state: SandboxState, uri: ObjectURI, where: BucketPlace) -> bool:
    if uri.scheme == "s3":
        from botocore.exceptions import ClientError

        try:
            s3_client(state, where.server).head_bucket(Bucket=uri.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True
    if uri.scheme == "gs":
        return gcs_client(state).lookup_bucket(uri.bucket) is not None
    import oci

    client, _ = oci_client(state, where.server)
    try:
        client.get_bucket(uri.namespace, uri.bucket)
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _seed_row(writer: _Writer, row: ManifestRow, written: ManifestRow, tally: _Tally, *, place: Placer,
              scale: float, versions: int, hold: bool, seed: int, cap: int) -> dict[str, Any]:
    size = DEFAULT_SIZE if row.size is None else int(row.size * scale)
    if size > cap:
        size = cap
        tally.capped += 1
    tally.declared += row.size or 0
    for version in range(versions):
        body = _Body(f"{seed}:{row.row}:{version}", size)
        latest = version == versions - 1
        for uri in (row.source, *row.replicas):
            writer.put(uri, place(uri), body, hold=hold and latest and uri == row.source)
            tally.objects += 1
            tally.bytes += size
    digests = {c.algorithm: c for c in _Body(f"{seed}:{row.row}:{versions - 1}", size).digests()}
    record: dict[str, Any] = {"source": str(written.source), "destination": str(written.destination)}
    if written.replicas:
        record["replicas"] = [str(r) for r in written.replicas]
    record["size"] = size
    kinds = {c.algorithm for c in row.declared} or {Algorithm.SHA256}
    for name, algorithm in _DIGESTS:
        if algorithm in kinds:
            checksum = digests[algorithm]
            record[name] = checksum.b64 if algorithm is Algorithm.CRC32C else checksum.hex
    if written.subject is not None:
        record["subject"] = written.subject
    if written.residency is not None:
        record["residency"] = written.residency
    return record


# --- bodies and writes ----------------------------------------------------------------------------------

class _Body(io.RawIOBase):
    """``size`` deterministic bytes from ``label``, generated a chunk at a time; seekable (a chunk is made
    again from its index), so clients that read a body twice (to sign it, then to send it) can."""

    def __init__(self, label: str, size: int) -> None:
        super().__init__()
        self.label, self.size, self._pos = label, size, 0
        self._chunk: tuple[int, bytes] | None = None

    def _chunk_at(self, index: int) -> bytes:
        if self._chunk is None or self._chunk[0] != index:
            length = min(CHUNK, self.size - index * CHUNK)
            self._chunk = (index, random.Random(f"{self.label}:{index}").randbytes(length))
        return self._chunk[1]

    def chunks(self) -> Iterator[bytes]:
        for index in range((self.size + CHUNK - 1) // CHUNK):
            yield self._chunk_at(index)

    def digests(self) -> list[Checksum]:
        hasher = MultiHasher()
        for chunk in self.chunks():
            hasher.update(chunk)
        return hasher.digests()

    def fresh(self) -> _Body:
        return _Body(self.label, self.size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            index, offset = divmod(self._pos, CHUNK)
            chunk = self._chunk_at(index)
            take = min(len(view) - done, len(chunk) - offset)
            view[done:done + take] = chunk[offset:offset + take]
            done += take
            self._pos += take
        return done

    def __len__(self) -> int:
        return self.size


class _Writer:
    """One client per server, made when first needed."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._clients: dict[str, Any] = {}

    def _client(self, server: str) -> Any:
        if server not in self._clients:
            if server in ("s3", "s3dc"):
                self._clients[server] = s3_client(self.state, server)
            elif server == "gcs":
                self._clients[server] = gcs_client(self.state)
            else:
                self._clients[server] = oci_client(self.state, server)[0]
        return self._clients[server]

    def put(self, uri: ObjectURI, where: BucketPlace, body: _Body, *, hold: bool) -> None:
        data = body.fresh()
        client = self._client(where.server)
        if uri.scheme == "s3":
            extra = {"ObjectLockLegalHoldStatus": "ON"} if hold else {}
            client.put_object(Bucket=uri.bucket, Key=uri.key, Body=data, ContentLength=body.size, **extra)
        elif uri.scheme == "gs":
            blob = client.bucket(uri.bucket).blob(uri.key, chunk_size=8 * CHUNK)
            blob.upload_from_file(data, size=body.size)
            if hold:
                blob.temporary_hold = True
                blob.patch()
        else:
            client.put_object(uri.namespace, uri.bucket, uri.key, data, content_length=body.size)


__all__ = ["BucketPlace", "Placer", "SeededManifest", "sandbox_placer", "seed_manifest"]
