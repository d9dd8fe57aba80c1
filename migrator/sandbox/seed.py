"""Seed the sandbox with synthetic users' data for the demo, and say what the wave should produce.

Deterministic (a fixed seed), so the demo manifest is the same on every machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrator.sandbox.buckets import gcs_client, s3_client
from migrator.sandbox.control import SandboxState
from migrator.sandbox.estate import create_location_bucket, estate_locations, location

# The estate (see migrator.sandbox.estate): the platform's own data centre (an S3-compatible store with its
# own account, credentials and path-style addressing), its Singapore backups on AWS S3, copies on Google
# Cloud, a replicated bucket on AWS in the US, and OCI in a US and an EU region.
PRIMARY = "demo-us-users"          # dc: versioned, the primary copies
MEDIA = "demo-us-media"            # dc: unversioned
LOCKED = "demo-us-locked"          # dc: Object Lock (a legal hold)
SG_BACKUP = "demo-sg-backups"      # aws-sg (ap-southeast-1): versioned backup replicas
BACKUP = "demo-gcp-copies"         # gcp: copies kept on Google Cloud
REPLICATED = "demo-us-replicated"  # aws-us: replicates to DR, a bucket the manifest does not list
DR = "demo-us-dr"
DEST = "us-users"                  # oci-us: the destination (versioned), us-ashburn-1
EU_DEST = "eu-users"               # oci-eu: named by EU rows, never written by a US wave
BUCKETS: dict[str, list[str]] = {
    "dc": [PRIMARY, MEDIA, LOCKED], "aws-us": [REPLICATED, DR], "aws-sg": [SG_BACKUP], "gcp": [BACKUP],
    "oci-us": [DEST], "oci-eu": [EU_DEST]}
BIG_SIZE = 24 * 1024 * 1024 + 4321


@dataclass
class Seeded:
    manifest: Path
    rows: int = 0
    bytes: int = 0
    expected: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (state, reason prefix)
    untouched: list[str] = field(default_factory=list)                  # non-US objects that must stay


def _body(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def seed(state: SandboxState, manifest_path: Path, *, users: int = 40, seed_value: int = 20261123) -> Seeded:
    rng = random.Random(seed_value)
    s3 = s3_client(state, location("dc").server)
    aws = s3_client(state, location("aws-us").server)
    gcs = gcs_client(state)
    create_location_bucket(state, "dc", PRIMARY, versioned=True)
    create_location_bucket(state, "dc", MEDIA)
    create_location_bucket(state, "dc", LOCKED, object_lock=True)
    create_location_bucket(state, "aws-sg", SG_BACKUP, versioned=True)
    create_location_bucket(state, "gcp", BACKUP)
    create_location_bucket(state, "oci-us", DEST, versioned=True)
    create_location_bucket(state, "oci-eu", EU_DEST, versioned=True)
    backup = gcs.bucket(BACKUP)
    ns = state.oci_namespace
    rows: list[dict[str, Any]] = []
    out = Seeded(manifest=manifest_path)

    def add(row: dict[str, Any], expect: tuple[str, str]) -> None:
        rows.append(row)
        out.expected[len(rows)] = expect

    for u in range(1, users + 1):
        us = u % 5 != 0  # every fifth user lives in the EU: in the manifest, left untouched by the US wave
        uid = f"{'us' if us else 'eu'}-{u:04d}"
        residency = "US" if us else "EU"
        for n in range(rng.randint(4, 9)):
            key = f"users/{uid}/photos/{n:03d}.jpg" if n % 2 else f"users/{uid}/posts/{n:03d}.json"
            size = rng.choice([0, 1, 700, 4096, 65536, 300_000, 1_500_000]) if n else 2048
            data = _body(rng, size)
            bucket = PRIMARY if n % 3 else MEDIA
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            out.bytes += size if us else 0
            if not us:
                out.untouched.append(f"s3://{bucket}/{key}")
                add({"source": f"s3://{bucket}/{key}", "destination": f"oci://{ns}/{EU_DEST}/{key}",
                     "subject": uid, "residency": residency}, ("OUT_OF_SCOPE", "other residency"))
                continue
            row: dict[str, Any] = {"source": f"s3://{bucket}/{key}",
                                   "destination": f"oci://{ns}/{DEST}/{key}",
                                   "subject": uid, "residency": residency}
            if bucket == PRIMARY and n % 4 == 1:
                # A second version: the wave migrates both, oldest first.
                newer = _body(rng, size + 10)
                s3.put_object(Bucket=bucket, Key=key, Body=newer)
                out.bytes += len(newer)
            if n % 5 == 2:   # backed up in Singapore
                aws.put_object(Bucket=SG_BACKUP, Key=key, Body=data)
                row["replicas"] = [f"s3://{SG_BACKUP}/{key}"]
            elif n % 5 == 4:   # copied to Google Cloud
                backup.blob(key).upload_from_file(io.BytesIO(data), size=len(data))
                row["replicas"] = [f"gs://{BACKUP}/{key}"]
            if n == 0:
                row["sha256"] = hashlib.sha256(data).hexdigest()
                row["size"] = size
            add(row, ("REMOVED", ""))
    # One large object uploaded in parts: its ETag is a multipart ETag, not an MD5.
    big_key = "users/us-0001/videos/holiday.mp4"
    big = _body(rng, BIG_SIZE)
    up = s3.create_multipart_upload(Bucket=PRIMARY, Key=big_key)
    part = 8 * 1024 * 1024
    parts = []
    for i, off in enumerate(range(0, len(big), part), start=1):
        r = s3.upload_part(Bucket=PRIMARY, Key=big_key, UploadId=up["UploadId"], PartNumber=i,
                           Body=big[off:off + part])
        parts.append({"PartNumber": i, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=PRIMARY, Key=big_key, UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    out.bytes += len(big)
    add({"source": f"s3://{PRIMARY}/{big_key}", "destination": f"oci://{ns}/{DEST}/{big_key}",
         "subject": "us-0001", "residency": "US"}, ("REMOVED", ""))
    # Held: a legal hold on the primary copy.
    held_key = "users/us-0002/legal/evidence.pdf"
    data = _body(rng, 5000)
    s3.put_object(Bucket=LOCKED, Key=held_key, Body=data, ObjectLockLegalHoldStatus="ON")
    add({"source": f"s3://{LOCKED}/{held_key}", "destination": f"oci://{ns}/{DEST}/{held_key}",
         "subject": "us-0002", "residency": "US"}, ("HELD", "S3 Object Lock legal hold"))
    # Held: a backup replica whose bytes differ from the primary's.
    div_key = "users/us-0003/posts/diverged.json"
    data = _body(rng, 3000)
    s3.put_object(Bucket=PRIMARY, Key=div_key, Body=data)
    backup.blob(div_key).upload_from_file(io.BytesIO(data[:-1] + b"!"), size=len(data))
    add({"source": f"s3://{PRIMARY}/{div_key}", "destination": f"oci://{ns}/{DEST}/{div_key}",
         "replicas": [f"gs://{BACKUP}/{div_key}"], "subject": "us-0003", "residency": "US"},
        ("HELD", "divergent replica"))
    # Removed after migrating both versions: the latest version is a delete marker.
    marker_key = "users/us-0004/posts/deleted-by-user.json"
    for body in (_body(rng, 900), _body(rng, 950)):
        s3.put_object(Bucket=PRIMARY, Key=marker_key, Body=body)
        out.bytes += len(body)
    s3.delete_object(Bucket=PRIMARY, Key=marker_key)
    add({"source": f"s3://{PRIMARY}/{marker_key}", "destination": f"oci://{ns}/{DEST}/{marker_key}",
         "subject": "us-0004", "residency": "US"}, ("REMOVED", ""))
    # Removed, with a leftover incomplete upload under its key aborted.
    upload_key = "users/us-0006/photos/upload-interrupted.jpg"
    data = _body(rng, 4000)
    s3.put_object(Bucket=PRIMARY, Key=upload_key, Body=data)
    up = s3.create_multipart_upload(Bucket=PRIMARY, Key=upload_key)
    s3.upload_part(Bucket=PRIMARY, Key=upload_key, UploadId=up["UploadId"], PartNumber=1, Body=_body(rng, 1000))
    add({"source": f"s3://{PRIMARY}/{upload_key}", "destination": f"oci://{ns}/{DEST}/{upload_key}",
         "subject": "us-0006", "residency": "US"}, ("REMOVED", ""))
    # Held: its bucket replicates to a DR bucket that the manifest does not list.
    create_location_bucket(state, "aws-us", REPLICATED, versioned=True)
    create_location_bucket(state, "aws-us", DR, versioned=True)
    aws.put_bucket_replication(Bucket=REPLICATED, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/demo-replication",
        "Rules": [{"ID": "dr", "Status": "Enabled", "Priority": 1, "Filter": {},
                   "DeleteMarkerReplication": {"Status": "Disabled"},
                   "Destination": {"Bucket": f"arn:aws:s3:::{DR}"}}]})
    repl_key = "users/us-0007/posts/replicated.json"
    aws.put_object(Bucket=REPLICATED, Key=repl_key, Body=_body(rng, 1200))
    add({"source": f"s3://{REPLICATED}/{repl_key}", "destination": f"oci://{ns}/{DEST}/{repl_key}",
         "subject": "us-0007", "residency": "US"}, ("HELD", "unlisted replication target"))
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest_path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    out.rows = len(rows)
    return out


def estate_wave(state: SandboxState) -> str:
    """The demo's wave file: its locations on the sandbox's endpoints and a US residency policy. The
    sandbox's endpoints are loopback, so every region here is declared, never verified."""
    return ("# The demo's estate: the data centre, Singapore backups, Google Cloud, AWS in the US, OCI US and EU.\n"
            + estate_locations(state, BUCKETS)
            + '\n[policy]\nresidency = "US"\nallowed_regions = ["us-ashburn-1"]\nother_residency = "out-of-scope"\n')
