"""The benchmark cases of issue 9, the sandbox they run in, and how each run is measured.

Every measured command is a subprocess, started by a tiny launcher; its wall time, CPU seconds (user +
system) and peak RSS come from os.wait4 on that one process, so nothing of the harness (seeding, listing,
checking) is counted. The sandbox servers' CPU comes from /proc, and the rest of the machine's busy time
during the run is reported as "other processes" (noise).
Request counts are deltas of the sandbox endpoints' own `/_emulator/stats` around the run; where an
endpoint has none (moto's S3 before the faithful-sandbox layer), the measured process counts its own
requests (see peers.counting_env) and the result says `"counted": "client"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import peers
from migrator.sandbox import control
from migrator.sandbox.buckets import create_bucket, gcs_client, oci_client, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

KiB = 1024
MiB = 1024 * 1024
MB = 1_000_000
PYTHON_PEERS = ("migrator", "boto3")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


# ---- settings ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    workdir: Path
    reps: int = 3
    scale: float = 1.0                 # multiplies object, row and record counts (not object sizes)
    concurrency: int = 16
    big_size: int = 1024 * MiB         # case 4's object
    latency_ms: int = 20               # case 7
    latency_concurrency: int = 4       # case 7: low enough that latency, not the emulator, is the bound
    quick: bool = False
    tls: bool = True                   # the sandbox over HTTPS, as the clouds are (--http: plain)
    log: Callable[[str], None] = print

    def count(self, full: int, minimum: int = 1) -> int:
        return max(minimum, round(full * self.scale))


# ---- results ----------------------------------------------------------------------------------------

@dataclass
class Rep:
    """One measured subprocess."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    requests: int | None                    # all endpoints together
    requests_by_endpoint: dict[str, int]
    server_cpu_s: dict[str, float]
    ok: bool
    check: str = ""                         # what the post-run check found
    requests_by_op: dict[str, int] = field(default_factory=dict)   # "s3 GetObject": n
    other_cpu_s: float = 0.0                # CPU the rest of the machine used meanwhile (noise)
    left_at_source: int | None = None       # versions and delete markers still in the source bucket


@dataclass
class Row:
    case: str
    title: str
    variant: str
    peer: str
    objects: int
    bytes: int
    reps: list[Rep] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    ratio_vs_rclone: dict[str, float] = field(default_factory=dict)
    limit: str = ""
    counted: str = "server"                 # server | client | mixed | none
    notes: list[str] = field(default_factory=list)

    def summarize(self) -> None:
        good = [r for r in self.reps if r.ok] or self.reps
        if not good:
            return
        wall = statistics.median(r.wall_s for r in good)
        self.metrics["wall_s"] = wall
        self.metrics["cpu_s"] = statistics.median(r.cpu_s for r in good)
        self.metrics["peak_rss_mib"] = max(r.peak_rss_mib for r in good)
        if self.objects:
            self.metrics["objects_per_s"] = statistics.median(self.objects / r.wall_s for r in good)
            self.metrics["mb_per_s"] = statistics.median(self.bytes / MB / r.wall_s for r in good)
            reqs = [r.requests for r in good if r.requests is not None]
            self.metrics["requests_per_object"] = statistics.median(reqs) / self.objects if reqs else None
            # CPU per object barely moves with the machine's other load, unlike wall time.
            self.metrics["client_cpu_ms_per_object"] = statistics.median(r.cpu_s for r in good) * 1000 / self.objects
            self.metrics["sandbox_cpu_ms_per_object"] = statistics.median(
                sum(r.server_cpu_s.values()) for r in good) * 1000 / self.objects
        left = [r.left_at_source for r in good if r.left_at_source is not None]
        if left:
            self.metrics["left_at_source"] = statistics.median(left)
        self.limit = limit_of(self.peer, good)
        if any(not r.ok for r in self.reps):
            self.notes.append(f"{sum(not r.ok for r in self.reps)} of {len(self.reps)} reps failed their check")


def limit_of(peer: str, reps: Sequence[Rep], latency_ms: float = 0) -> str:
    """What bounds a run, from where the machine's CPU went during it (this machine has few cores)."""
    wall = statistics.median(r.wall_s for r in reps)
    client = statistics.median(r.cpu_s for r in reps) / wall
    other = statistics.median(r.other_cpu_s for r in reps) / wall
    servers: dict[str, float] = {}
    for r in reps:
        for name, cpu in r.server_cpu_s.items():
            servers[name] = servers.get(name, 0.0) + cpu / r.wall_s / len(reps)
    busiest = max(servers.items(), key=lambda kv: kv[1], default=("", 0.0))
    cores = os.cpu_count() or 1
    total = client + sum(servers.values()) + other
    usage = ", ".join([f"client {client:.2f} cores",
                       *(f"{k} server {v:.2f}" for k, v in sorted(servers.items()) if v >= 0.01),
                       f"other processes {other:.2f}"])
    if busiest[1] >= 0.85:
        why = f"emulator CPU ({busiest[0]} server)"
    elif peer in PYTHON_PEERS and client >= 0.85:
        why = "client CPU (one interpreter)"
    elif total >= cores * 0.85:
        why = "machine CPU" + (" (other processes took a share)" if other >= 0.25 else " (client and emulators)")
    elif latency_ms:
        why = f"latency ({latency_ms:g} ms per request)"
    else:
        why = "round trips (no side saturated)"
    return f"{why}: {usage}"


# ---- measuring a subprocess -------------------------------------------------------------------------

@dataclass(frozen=True)
class Completed:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    machine_cpu_s: float            # busy CPU seconds of the whole machine during the run


# A child's ru_maxrss starts at the RSS of the process that forked it (the kernel carries the old mm's
# high-water mark across exec), so the harness, which holds seeded data, must not fork the measured
# command itself. This tiny launcher (a fresh interpreter of ~10 MiB) forks it, waits for it, and writes
# its rusage; the floor it leaves is far below anything measured.
_LAUNCHER = """\
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as fh:
    fh.write("%r %r %r %r %r" % (wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, code, 0))
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(cmd: Sequence[str], env: dict[str, str], workdir: Path, timeout: float = 3600.0) -> Completed:
    """Run ``cmd`` through the launcher and take that one process's wall time, CPU and peak RSS."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path, report = workdir / "stdout.txt", workdir / "stderr.txt", workdir / "rusage.txt"
    report.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        busy0 = machine_busy_s()
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(report), *cmd], env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except BaseException:  # interrupted: do not leave the measured command running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.perf_counter() - start
        busy = machine_busy_s() - busy0
    try:
        w, cpu, rss_kib, code, _ = (float(x) for x in report.read_text().split())
        wall, returncode = w, int(code)
    except (OSError, ValueError):
        cpu, rss_kib, returncode = 0.0, 0.0, proc.returncode if proc.returncode else -9
    return Completed(wall_s=wall, cpu_s=cpu, peak_rss_mib=rss_kib / 1024, returncode=returncode,
                     stdout=out_path.read_text(errors="replace"), stderr=err_path.read_text(errors="replace"),
                     machine_cpu_s=busy)


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (user, nice, system, irq, steal)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def make_rep(done: Completed, ok: bool, *, requests: int | None = None, by_endpoint: dict[str, int] | None = None,
             by_op: dict[str, int] | None = None, server_cpu: dict[str, float] | None = None) -> Rep:
    servers = server_cpu or {}
    rep = Rep(wall_s=done.wall_s, cpu_s=done.cpu_s, peak_rss_mib=done.peak_rss_mib, returncode=done.returncode,
              requests=requests, requests_by_endpoint=by_endpoint or {}, server_cpu_s=servers, ok=ok,
              requests_by_op=dict(sorted((by_op or {}).items())),
              other_cpu_s=max(0.0, done.machine_cpu_s - done.cpu_s - sum(servers.values())))
    if not ok:
        rep.check = f"exit {done.returncode}: " + " ".join((done.stderr or done.stdout).split())[-300:]
    return rep


def _proc_cpu(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the sandbox ------------------------------------------------------------------------------------

class Box:
    """A fresh sandbox for one case, its request counters and its servers' CPU time."""

    def __init__(self, directory: Path, *, tls: bool = True) -> None:
        self.directory = directory
        control.down(directory, missing_ok=True)
        self.state = control.up(directory, tls=tls)
        self._opener = _OPENER if self.state.ca_file is None else urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=self.state.ca_file)))
        self.env = {**os.environ, **self.state.env()}
        self.endpoints = {"s3": self.state.s3, "gcs": self.state.gcs, "oci": self.state.oci}
        self.server_stats = {name: self._stats(name) is not None for name in self.endpoints}
        self.latency_ms = 0

    def __enter__(self) -> Box:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        control.down(self.directory, missing_ok=True)

    def _stats(self, name: str) -> dict[str, int] | None:
        """Requests by operation so far, from the endpoint's own counters (None: it has none)."""
        url = self.endpoints[name].url
        for path in ("/_emulator/stats", "/_emulator/faults"):
            try:
                with self._opener.open(url + path, timeout=10) as resp:
                    raw = json.loads(resp.read())
            except (urllib.error.URLError, OSError, ValueError):
                continue
            if isinstance(raw, dict) and isinstance(raw.get("requests"), dict):
                return {str(k): int(v) for k, v in raw["requests"].items()}
        return None

    def snapshot(self) -> tuple[dict[str, dict[str, int] | None], dict[str, float]]:
        counts = {name: self._stats(name) if ok else None for name, ok in self.server_stats.items()}
        cpu = {name: _proc_cpu(ep.pid) for name, ep in self.endpoints.items()}
        return counts, cpu

    def port_names(self) -> dict[str, str]:
        return {ep.url.split("://", 1)[1]: name for name, ep in self.endpoints.items()}

    # Seeding and checking go through the sandbox's own clients, outside every measured window.
    def s3(self) -> S3Client:
        client: S3Client = s3_client(self.state)   # the sandbox helper is untyped (Any)
        return client

    def bucket(self, scheme: str, name: str, *, versioned: bool = False) -> None:
        create_bucket(self.state, scheme, name, versioned=versioned)


def object_keys(n: int) -> list[str]:
    # Keys in "folders" of 100, like per-user prefixes; rclone lists folder by folder.
    return [f"users/u{i // 100:05d}/obj-{i:07d}.bin" for i in range(n)]


def _blob(size: int, i: int) -> bytes:
    if size <= 64 * KiB:
        return os.urandom(size)
    head = i.to_bytes(8, "big")  # distinct objects without paying urandom for every byte
    block = os.urandom(min(size, 4 * MiB))
    return (head + (block * (size // len(block) + 1)))[:size]


def seed_s3(box: Box, bucket: str, keys: Sequence[str], size: int, *, versioned: bool) -> int:
    box.bucket("s3", bucket, versioned=versioned)
    client = box.s3()

    def put(item: tuple[int, str]) -> int:
        data = _blob(size, item[0])
        client.put_object(Bucket=bucket, Key=item[1], Body=data)
        return len(data)

    with ThreadPoolExecutor(max_workers=8 if size > MiB else 16) as pool:
        return sum(pool.map(put, enumerate(keys)))


def seed_s3_multipart(box: Box, bucket: str, key: str, size: int, part: int = 64 * MiB) -> int:
    box.bucket("s3", bucket)
    client = box.s3()
    up = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts: list[CompletedPartTypeDef] = []
    block = os.urandom(4 * MiB)
    for n, off in enumerate(range(0, size, part), start=1):
        length = min(part, size - off)
        body = (n.to_bytes(8, "big") + block * (length // len(block) + 1))[:length]
        r = client.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": parts})
    return size


def seed_gcs(box: Box, bucket: str, keys: Sequence[str], size: int) -> int:
    import io

    box.bucket("gs", bucket)
    import threading

    local = threading.local()

    def put(item: tuple[int, str]) -> int:
        if not hasattr(local, "bucket"):
            local.bucket = gcs_client(box.state).bucket(bucket)
        data = _blob(size, item[0])
        local.bucket.blob(item[1]).upload_from_file(io.BytesIO(data), size=len(data))
        return len(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(put, enumerate(keys)))


def s3_inventory(box: Box, bucket: str) -> tuple[int, int]:
    """(live objects, versions + delete markers) in an S3 bucket."""
    client = box.s3()
    live = sum(len(p.get("Contents", [])) for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    every = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        every += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return live, every


def s3_empty(box: Box, bucket: str) -> None:
    """Free the emulator's memory after a large-object run (never inside a measured window)."""
    client = box.s3()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        targets: list[ObjectIdentifierTypeDef] = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(targets), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": targets[i:i + 1000], "Quiet": True})


def oci_count(box: Box, bucket: str) -> int:
    client, _ = oci_client(box.state)
    total, start = 0, None
    while True:
        resp = client.list_objects(box.state.oci_namespace, bucket, start=start, limit=1000)
        total += len(resp.data.objects)
        start = resp.data.next_start_with
        if not start:
            return total


def gcs_count(box: Box, bucket: str) -> int:
    return sum(1 for _ in gcs_client(box.state).list_blobs(bucket, versions=True))


def write_manifest(path: Path, rows: Iterator[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for src, dst in rows:
            fh.write(json.dumps({"source": src, "destination": dst}, separators=(",", ":")) + "\n")
    return path


# ---- one peer, one rep ------------------------------------------------------------------------------

class Runner:
    """Runs peers against one Box and turns each run into a Rep."""

    def __init__(self, box: Box, settings: Settings, name: str) -> None:
        self.box = box
        self.s = settings
        self.dir = settings.workdir / name
        # A kept --workdir must not hand a finished wave's state to a new run (migrator would resume it).
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        keys = self.dir / "keys"
        if not (keys / "signing.key").exists():
            done = subprocess.run([peers.migrator_bin(), "keys", "generate", "--out", str(keys)],
                                  capture_output=True, text=True, env=box.env, check=False)
            if done.returncode:
                raise RuntimeError(f"migrator keys generate failed: {done.stderr.strip()}")
        self.key = keys / "signing.key"
        self.conf = peers.write_rclone_conf(self.dir / "rclone", box.state.s3.url, control.AWS_ACCESS_KEY_ID,
                                            control.AWS_SECRET_ACCESS_KEY, control.AWS_REGION)
        self.client_counted = not box.server_stats["s3"]
        self.rclone_counts: dict[str, int] = {}
        self.seq = 0

    def _counted(self, count_file: Path, env: dict[str, str]) -> dict[str, str]:
        return peers.counting_env(self.dir / "count-hook", env, count_file) if self.client_counted else env

    def measure(self, label: str, cmd: Sequence[str], env: dict[str, str], *,
                python: bool = True, timeout: float = 3600.0) -> tuple[Completed, Rep]:
        self.seq += 1
        run_dir = self.dir / f"{self.seq:03d}-{label}"
        count_file = run_dir / "client-requests.json"
        run_dir.mkdir(parents=True, exist_ok=True)
        env = self._counted(count_file, env) if python else env
        before, cpu0 = self.box.snapshot()
        done = run_measured(cmd, env, run_dir, timeout)
        after, cpu1 = self.box.snapshot()
        by_endpoint: dict[str, int] = {}
        by_op: dict[str, int] = {}
        for name in before:
            b, a = before[name], after[name]
            if b is None or a is None:
                continue
            for op, count in a.items():
                if count - b.get(op, 0):
                    by_op[f"{name} {op}"] = count - b.get(op, 0)
            total = sum(a.values()) - sum(b.values())
            if total:
                by_endpoint[name] = total
        if self.client_counted and python:
            names = self.box.port_names()
            for hostport, n in peers.read_counts(count_file).items():
                name = names.get(hostport, hostport)
                if name == "s3" or name not in by_endpoint:
                    by_endpoint[name] = n
        requests = sum(by_endpoint.values()) if (by_endpoint or not self.client_counted) else None
        rep = make_rep(done, done.returncode == 0, requests=requests, by_endpoint=by_endpoint, by_op=by_op,
                       server_cpu={n: cpu1[n] - cpu0[n] for n in cpu0 if cpu1[n] - cpu0[n] > 0.005})
        return done, rep

    def migrator(self, label: str, pairs: Sequence[tuple[str, str]], concurrency: int | None = None,
                 timeout: float = 3600.0) -> Rep:
        manifest = write_manifest(self.dir / f"{label}.jsonl", iter(pairs))
        state = self.dir / f"{label}-state"
        cmd = peers.migrator_run_cmd(manifest, state, self.key, concurrency or self.s.concurrency)
        done, rep = self.measure(label, cmd, self.box.env, timeout=timeout)
        if rep.ok and f"removed {len(pairs)}," not in done.stdout:
            rep.ok = False
            rep.check = "not every row removed: " + " ".join(done.stdout.split())[:300]
        return rep

    def rclone(self, label: str, src: str, dst: str, concurrency: int | None = None, count_key: str = "") -> Rep:
        c = concurrency or self.s.concurrency
        _, rep = self.measure(label, peers.rclone_move_cmd(self.conf, src, dst, c),
                                 peers.rclone_env(self.box.env), python=False)
        if self.client_counted:
            rep.requests = self.rclone_counts.get(count_key)
            rep.requests_by_endpoint = {"s3": rep.requests} if rep.requests is not None else {}
        return rep

    def rclone_count(self, key: str, src: str, dst: str) -> None:
        """Fallback only: one extra, unmeasured rclone run with --dump headers to count its requests."""
        log = self.dir / f"rclone-dump-{key}.log"
        cmd = peers.rclone_move_cmd(self.conf, src, dst, self.s.concurrency, dump_log=log)
        subprocess.run(cmd, env=peers.rclone_env(self.box.env), capture_output=True, check=False)
        self.rclone_counts[key] = peers.rclone_dump_requests(log)

    def boto3(self, label: str, src: str, dst: str, concurrency: int | None = None) -> Rep:
        _, rep = self.measure(label, peers.boto3_cmd(src, dst, concurrency or self.s.concurrency), self.box.env)
        return rep


def check_s3_move(box: Box, rep: Rep, src: str, dst: str, n: int) -> None:
    live_src, every_src = s3_inventory(box, src)
    live_dst, _ = s3_inventory(box, dst)
    rep.left_at_source = every_src
    if live_src or live_dst != n:
        rep.ok = False
        rep.check = (rep.check + "; " if rep.check else "") + \
            f"source still lists {live_src}, destination {live_dst} of {n}"


# ---- cases 1 and 2: S3 -> S3 against the peers ------------------------------------------------------

def compare_s3(s: Settings, case: str, title: str, n: int, size: int, variants: Sequence[str],
               peer_names: Sequence[str]) -> list[Row]:
    rows: list[Row] = []
    if "rclone" in peer_names and peers.rclone_path() is None:
        s.log("  rclone is not installed: skipping it (benchmarks/install_rclone.sh)")
        peer_names = [p for p in peer_names if p != "rclone"]
    keys = object_keys(n)
    with Box(s.workdir / f"case{case}-sandbox", tls=s.tls) as box:
        run = Runner(box, s, f"case{case}")
        for variant in variants:
            versioned = variant == "versioned"
            table = {p: Row(case, title, variant, p, n, n * size) for p in peer_names}
            if run.client_counted and "rclone" in peer_names:
                src, dst = f"c{case}-{variant[0]}rc-count-src", f"c{case}-{variant[0]}rc-count-dst"
                seed_s3(box, src, keys, size, versioned=versioned)
                box.bucket("s3", dst, versioned=True)
                run.rclone_count(variant, src, dst)
                s3_empty(box, src)
                s3_empty(box, dst)
            for rep_no in range(s.reps):
                for p in peer_names:
                    tag = f"c{case}-{variant[0]}{p[:2]}-r{rep_no}"
                    src, dst = f"{tag}-src", f"{tag}-dst"
                    seed_s3(box, src, keys, size, versioned=versioned)
                    box.bucket("s3", dst, versioned=True)
                    label = f"{variant}-{p}-r{rep_no}"
                    if p == "migrator":
                        rep = run.migrator(label, [(f"s3://{src}/{k}", f"s3://{dst}/{k}") for k in keys])
                    elif p == "rclone":
                        rep = run.rclone(label, src, dst, count_key=variant)
                    else:
                        rep = run.boto3(label, src, dst)
                    check_s3_move(box, rep, src, dst, n)
                    table[p].reps.append(rep)
                    s.log(f"  case {case} {variant} {p} rep {rep_no + 1}: {n / rep.wall_s:.1f} obj/s, "
                          f"{n * size / MB / rep.wall_s:.1f} MB/s, requests {rep.requests}, "
                          f"cpu {rep.cpu_s:.1f}s, rss {rep.peak_rss_mib:.0f} MiB"
                          f"{'' if rep.ok else ' FAILED ' + rep.check}")
                    if size >= MiB:
                        s3_empty(box, src)
                        s3_empty(box, dst)
            for row in table.values():
                row.counted = "client" if run.client_counted else "server"
                if run.client_counted:
                    row.notes.append("S3 requests counted by the client (sandbox S3 has no /_emulator/stats)"
                                     + ("; rclone's in a separate --dump headers run" if row.peer == "rclone" else ""))
                row.summarize()
            add_ratios(list(table.values()))
            rows.extend(table.values())
    return rows


def add_ratios(rows: Sequence[Row]) -> None:
    base = next((r for r in rows if r.peer == "rclone"), None)
    if base is None:
        return
    for row in rows:
        for metric in ("objects_per_s", "mb_per_s"):
            mine, theirs = row.metrics.get(metric), base.metrics.get(metric)
            if mine and theirs:
                row.ratio_vs_rclone[metric] = mine / theirs


def case1(s: Settings) -> list[Row]:
    return compare_s3(s, "1", "2,000 x 4 KiB S3 -> S3", s.count(2000, 20), 4 * KiB, ("unversioned", "versioned"),
                      ("migrator", "rclone", "boto3"))


def case2(s: Settings) -> list[Row]:
    return compare_s3(s, "2", "20 x 16 MiB S3 -> S3", s.count(20, 2), 16 * MiB, ("unversioned",),
                      ("migrator", "rclone", "boto3"))


# ---- cases 3 and 4: into OCI, migrator only ---------------------------------------------------------

def _into_oci(s: Settings, run: Runner, box: Box, row: Row, source: str, keys: Sequence[str], size: int,
              rep_no: int, multipart_big: bool = False) -> None:
    tag = f"{row.case}{'s' if source == 's3' else 'g'}{row.variant[0]}r{rep_no}"
    src, dst = f"c{tag}-src", f"c{tag}-dst"
    if multipart_big:
        seed_s3_multipart(box, src, keys[0], size)
    elif source == "s3":
        seed_s3(box, src, keys, size, versioned=False)
    else:
        seed_gcs(box, src, keys, size)
    box.bucket("oci", dst, versioned=True)
    scheme = "s3" if source == "s3" else "gs"
    ns = box.state.oci_namespace
    rep = run.migrator(f"{tag}", [(f"{scheme}://{src}/{k}", f"oci://{ns}/{dst}/{k}") for k in keys])
    n = len(keys)
    landed = oci_count(box, dst)
    if source == "s3":
        live, every = s3_inventory(box, src)
        rep.left_at_source = every
    else:
        live = every = gcs_count(box, src)
        rep.left_at_source = every
    if live or landed != n:
        rep.ok = False
        rep.check = (rep.check + "; " if rep.check else "") + f"source still holds {live}, destination {landed} of {n}"
    row.reps.append(rep)
    s.log(f"  case {row.case} {row.variant} rep {rep_no + 1}: {n / rep.wall_s:.1f} obj/s, "
          f"{n * size / MB / rep.wall_s:.1f} MB/s, requests {rep.requests_by_endpoint}, cpu {rep.cpu_s:.1f}s, "
          f"rss {rep.peak_rss_mib:.0f} MiB{'' if rep.ok else ' FAILED ' + rep.check}")
    if size >= MiB:
        if source == "s3":
            s3_empty(box, src)


def case3(s: Settings) -> list[Row]:
    rows: list[Row] = []
    shapes = [("small", s.count(2000, 20), 4 * KiB), ("large", s.count(20, 2), 16 * MiB)]
    with Box(s.workdir / "case3-sandbox", tls=s.tls) as box:
        run = Runner(box, s, "case3")
        for shape, n, size in shapes:
            keys = object_keys(n)
            for source in ("s3", "gcs"):
                title = f"{n:,} x {size // KiB if size < MiB else size // MiB} {'KiB' if size < MiB else 'MiB'} " \
                        f"{source.upper()} -> OCI"
                row = Row("3", title, f"{shape} {source}->oci", "migrator", n, n * size)
                for rep_no in range(s.reps):
                    _into_oci(s, run, box, row, source, keys, size, rep_no)
                row.counted = "client" if run.client_counted and source == "s3" else "server"
                row.summarize()
                rows.append(row)
    return rows


def case4(s: Settings) -> list[Row]:
    size = s.big_size
    with Box(s.workdir / "case4-sandbox", tls=s.tls) as box:
        run = Runner(box, s, "case4")
        row = Row("4", f"1 x {size // MiB} MiB S3 -> OCI", "multipart source", "migrator", 1, size)
        for rep_no in range(s.reps):
            _into_oci(s, run, box, row, "s3", ["big/object-0000.bin"], size, rep_no, multipart_big=True)
        row.counted = "client" if run.client_counted else "server"
        row.summarize()
    return [row]


# ---- case 5: a manifest of a million rows -----------------------------------------------------------

def manifest_rows(n: int, namespace: str = control.NAMESPACE) -> Iterator[dict[str, Any]]:
    for i in range(n):
        key = f"users/u{i // 50:06d}/obj-{i:08d}.bin"
        yield {"source": f"s3://bench-src/{key}", "destination": f"oci://{namespace}/bench-dst/{key}",
               "size": 4096 + i % 1000, "subject": f"u{i // 50:06d}", "residency": "US"}


def big_manifest(s: Settings, n: int) -> Path:
    path = s.workdir / "data" / f"manifest-{n}.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        batch: list[str] = []
        for row in manifest_rows(n):
            batch.append(json.dumps(row, separators=(",", ":")))
            if len(batch) >= 10_000:
                fh.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            fh.write("\n".join(batch) + "\n")
    tmp.replace(path)
    return path


def migrator_has(*command: str) -> bool:
    done = subprocess.run([peers.migrator_bin(), *command, "--help"], capture_output=True, check=False)
    return done.returncode == 0


def case5(s: Settings) -> list[Row]:
    n = s.count(1_000_000, 100)
    t0 = time.perf_counter()
    manifest = big_manifest(s, n)
    s.log(f"  manifest of {n:,} rows ({manifest.stat().st_size / MiB:.0f} MiB) ready in "
          f"{time.perf_counter() - t0:.1f}s")
    rows: list[Row] = []
    env = dict(os.environ)
    row = Row("5", f"manifest of {n:,} rows", "validate", "migrator", 0, manifest.stat().st_size)
    for rep_no in range(s.reps):
        run_dir = s.workdir / "case5" / f"validate-r{rep_no}"
        done = run_measured([peers.migrator_bin(), "manifest", "validate", str(manifest)], env, run_dir)
        ok = done.returncode == 0 and f"{n} rows" in done.stdout
        row.reps.append(make_rep(done, ok))
        s.log(f"  case 5 validate rep {rep_no + 1}: {done.wall_s:.1f}s, {n / done.wall_s:,.0f} rows/s, "
              f"rss {done.peak_rss_mib:.0f} MiB{'' if ok else ' FAILED'}")
    _summarize_rows(row, n)
    rows.append(row)
    if migrator_has("plan"):
        rows.append(_plan(s, manifest, n))
    else:
        row.notes.append("no `migrator plan` command yet: plan not measured")
    return rows


def _plan(s: Settings, manifest: Path, n: int) -> Row:
    row = Row("5", f"manifest of {n:,} rows", "plan", "migrator", 0, manifest.stat().st_size)
    with Box(s.workdir / "case5-sandbox", tls=s.tls) as box:
        for rep_no in range(s.reps):
            run_dir = s.workdir / "case5" / f"plan-r{rep_no}"
            before, cpu0 = box.snapshot()
            done = run_measured([peers.migrator_bin(), "plan", str(manifest), "--json"], box.env, run_dir,
                                timeout=1800)
            after, cpu1 = box.snapshot()
            reqs = {k: sum((after[k] or {}).values()) - sum((before[k] or {}).values()) for k in before}
            row.reps.append(make_rep(done, done.returncode in (0, 1), requests=sum(reqs.values()),
                                     by_endpoint={k: v for k, v in reqs.items() if v},
                                     server_cpu={k: cpu1[k] - cpu0[k] for k in cpu0 if cpu1[k] - cpu0[k] > 0.005}))
            s.log(f"  case 5 plan rep {rep_no + 1}: {done.wall_s:.1f}s, rss {done.peak_rss_mib:.0f} MiB, "
                  f"exit {done.returncode}, requests {reqs}")
    _summarize_rows(row, n)
    row.notes.append("plan runs against an empty sandbox: every source is absent")
    return row


def _summarize_rows(row: Row, n: int) -> None:
    good = [r for r in row.reps if r.ok] or row.reps
    row.metrics["wall_s"] = statistics.median(r.wall_s for r in good)
    row.metrics["rows_per_s"] = statistics.median(n / r.wall_s for r in good)
    row.metrics["cpu_s"] = statistics.median(r.cpu_s for r in good)
    row.metrics["peak_rss_mib"] = max(r.peak_rss_mib for r in good)
    row.metrics["rows"] = n
    row.limit = limit_of(row.peer, good)
    if any(not r.ok for r in row.reps):
        row.notes.append(f"{sum(not r.ok for r in row.reps)} of {len(row.reps)} reps failed: {row.reps[0].check}")


# ---- case 6: offline verification of a million-record attestation ----------------------------------

_TIME = "2026-11-23T03:05:01.271397Z"


def _record(row: int, src: str, dst: str) -> dict[str, Any]:
    """A record shaped like the pipeline's for a removed 4 KiB object, with the row's own digests."""
    seed = row.to_bytes(8, "big")
    md5 = hashlib.md5(seed).hexdigest()
    sha = hashlib.sha256(seed).hexdigest()
    crc = sha[:8]
    etag = f'"{md5}"'
    rec: dict[str, Any] = {
        "schema": 1, "row": row, "source": src, "destination": dst, "replicas": [], "replica_results": [],
        "state": "REMOVED", "reason": None,
        "versions": [{
            "version": "null", "etag": etag, "size": 4096, "destination_version": f"v{row}",
            "destination_etag": etag, "encryption": None, "extra": {}, "storage_class": "STANDARD",
            "verified_at": _TIME,
            "digests": [{"algorithm": "md5", "hex": md5, "provenance": "computed"},
                        {"algorithm": "sha256", "hex": sha, "provenance": "computed"},
                        {"algorithm": "crc32c", "hex": crc, "provenance": "computed"},
                        {"algorithm": "crc32c", "hex": crc, "provenance": "destination-reported"},
                        {"algorithm": "md5", "hex": md5, "provenance": "destination-reported"}],
            "evidence": {"destination": ["crc32c (destination-reported)", "md5 (destination-reported)"],
                         "source": ["md5 (source-reported)"], "source_tier": "source-checksum"}}],
        "deletions": [{"at": _TIME, "kind": "version", "result": "deleted", "uri": src, "version": None}],
        "proof": {"empty": True, "leftovers": [], "listed_at": _TIME, "locations": [src]},
    }
    if row % 100 == 0:
        rec["state"], rec["reason"] = "HELD", "S3 Object Lock legal hold"
        rec["detail"] = f"{src} version null"
        rec["deletions"], rec["proof"] = [], None
    return rec


@dataclass(frozen=True)
class Attestation:
    envelope: Path
    records: Path
    manifest: Path
    public_key: Path
    rows: int


def synthetic_attestation(s: Settings, n: int) -> Attestation:
    """records.jsonl, the manifest and a signed attestation over them, made with migrator.attest."""
    from datetime import UTC, datetime

    from migrator import __version__
    from migrator.attest.canonical import canonical_json, record_line
    from migrator.attest.dsse import sign_envelope
    from migrator.attest.keys import generate_keypair, load_signer
    from migrator.attest.merkle import MerkleBuilder
    from migrator.attest.statement import (
        PAYLOAD_TYPE,
        PREDICATE_TYPE_V1,
        RECORDS_SUBJECT,
        RecordTally,
        build_predicate,
        build_statement,
    )

    out = s.workdir / "data" / f"attestation-{n}"
    done = out / "done"
    manifest = big_manifest(s, n)
    att = Attestation(out / "attestation.json", out / RECORDS_SUBJECT, manifest, out / "keys" / "signing.pub", n)
    if done.exists():
        return att
    out.mkdir(parents=True, exist_ok=True)
    key, _ = generate_keypair(out / "keys") if not (out / "keys" / "signing.key").exists() else \
        (out / "keys" / "signing.key", att.public_key)
    signer = load_signer(key)
    merkle = MerkleBuilder()
    tally = RecordTally()
    sha = hashlib.sha256()
    started = datetime.now(UTC)
    with open(manifest, "rb") as man, open(att.records, "wb") as fh:
        for row, raw in enumerate(man, start=1):
            m = json.loads(raw)
            rec = _record(row, m["source"], m["destination"])
            # json.dumps with sorted keys and no spaces is RFC 8785 for these ASCII strings and small ints;
            # record_line (rfc8785, ~120 us a record) checks that on a sample.
            line = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
            if (row <= 100 or row % 9973 == 0) and line != record_line(rec):
                raise RuntimeError(f"record {row} is not canonical")
            fh.write(line)
            sha.update(line)
            merkle.add(line[:-1])
            tally.count(rec["state"], rec["reason"])
    if merkle.size != n:
        raise RuntimeError(f"manifest {manifest} has {merkle.size} rows, expected {n}")
    predicate = build_predicate(
        wave_id="wave-bench-synthetic", tool_name="migrator", tool_version=__version__, started=started,
        finished=datetime.now(UTC), policy={"versions": "all", "second_read": True, "soft_delete": "require-off"},
        tally=tally, merkle_root=merkle.root(), tree_size=merkle.size, scope=["s3://bench-src"],
        extra={"record_schema": 1, "manifest_rows": n})
    manifest_sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
    statement = build_statement(subjects=[(manifest.name, manifest_sha), (RECORDS_SUBJECT, sha.hexdigest())],
                                predicate_type=PREDICATE_TYPE_V1, predicate=predicate)
    att.envelope.write_bytes(sign_envelope(canonical_json(statement), PAYLOAD_TYPE, [signer]))
    done.write_text("ok\n")
    return att


def _time_proof(att: Attestation, s: Settings) -> dict[str, float | str]:
    """One inclusion proof, by object URI, for a record in the middle of the tree.

    The records' sidecar (records.idx: line offsets, the tree's levels, URI keys; migrator.attest.recindex) is
    written once when missing, as the runner writes it at attestation time, and that build is timed. Then one
    proof through it in this process (median of 5) and its offline check; then, each in a fresh interpreter,
    a proof with the sidecar and one without it (a chunked scan of the records), and `migrator audit prove`.
    """
    from migrator.attest import proofs, recindex
    from migrator.attest.keys import load_public_key
    from migrator.attest.policy import Threshold

    out: dict[str, float | str] = {}
    middle = att.rows // 2
    uri = next(r for i, r in enumerate(manifest_rows(att.rows)) if i == middle)["source"]
    if not recindex.index_path(att.records).exists():
        code = "import sys; from pathlib import Path; from migrator.attest.recindex import write_index; " \
               "write_index(Path(sys.argv[1]))"
        done = run_measured([sys.executable, "-c", code, str(att.records)], dict(os.environ),
                            s.workdir / "case6" / "index")
        if done.returncode == 0:
            out["index_build_s"], out["index_build_cpu_s"] = done.wall_s, done.cpu_s
            out["index_build_peak_rss_mib"] = done.peak_rss_mib
        else:
            out["index_build"] = "failed: " + " ".join(done.stderr.split())[-200:]
    envelope = att.envelope.read_bytes()
    times = []
    proof: dict[str, Any] = {}
    for _ in range(5):
        t = time.perf_counter()
        proof = recindex.prove_record_file(envelope, att.records, uri)
        times.append((time.perf_counter() - t) * 1000)
    out["inclusion_proof_ms"] = statistics.median(times)
    t = time.perf_counter()
    proofs.verify_proof(proof, envelope, Threshold([load_public_key(att.public_key)]))
    out["verify_proof_ms"] = (time.perf_counter() - t) * 1000
    out["proof_api"] = "migrator.attest.recindex.prove_record_file(attestation, records, uri) with records.idx"
    for name, use_index in (("prove_indexed", True), ("prove_scan", False)):
        code = ("import sys; from pathlib import Path; from migrator.attest.recindex import prove_record_file; "
                "prove_record_file(Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), sys.argv[3], "
                f"use_index={use_index})")
        done = run_measured([sys.executable, "-c", code, str(att.envelope), str(att.records), uri],
                            dict(os.environ), s.workdir / "case6" / name)
        if done.returncode == 0:
            out[f"{name}_s"], out[f"{name}_peak_rss_mib"] = done.wall_s, done.peak_rss_mib
        else:
            out[name] = "failed: " + " ".join(done.stderr.split())[-200:]
    if migrator_has("audit", "prove"):
        cmd = [peers.migrator_bin(), "audit", "prove", str(att.envelope), uri, "--records", str(att.records)]
        done = run_measured(cmd, dict(os.environ), s.workdir / "case6" / "prove-cli")
        if done.returncode == 0:
            out["cli_prove_s"] = done.wall_s
            out["cli_prove_peak_rss_mib"] = done.peak_rss_mib
        else:
            out["cli_prove"] = "failed: " + " ".join((done.stderr or done.stdout).split())[-200:]
    return out


def case6(s: Settings) -> list[Row]:
    n = s.count(1_000_000, 100)
    t0 = time.perf_counter()
    att = synthetic_attestation(s, n)
    s.log(f"  attestation over {n:,} records ({att.records.stat().st_size / MiB:.0f} MiB) ready in "
          f"{time.perf_counter() - t0:.1f}s")
    row = Row("6", f"attestation of {n:,} records", "audit verify", "migrator", 0, att.records.stat().st_size)
    cmd = [peers.migrator_bin(), "audit", "verify", str(att.envelope), "--key", str(att.public_key),
           "--records", str(att.records), "--manifest", str(att.manifest)]
    for rep_no in range(s.reps):
        done = run_measured(cmd, dict(os.environ), s.workdir / "case6" / f"verify-r{rep_no}")
        ok = done.returncode == 0 and "verified" in done.stdout
        row.reps.append(make_rep(done, ok))
        s.log(f"  case 6 verify rep {rep_no + 1}: {done.wall_s:.1f}s, rss {done.peak_rss_mib:.0f} MiB"
              f"{'' if ok else ' FAILED ' + row.reps[-1].check}")
    _summarize_rows(row, n)
    proof = _time_proof(att, s)
    for k, v in proof.items():
        if isinstance(v, float):
            row.metrics[k] = v
        else:
            row.notes.append(f"{k}: {v}")
    s.log(f"  case 6 one inclusion proof: {proof['inclusion_proof_ms']:.1f} ms; " +
          ", ".join(f"{k} {v:.1f}" for k, v in proof.items() if isinstance(v, float) and k != "inclusion_proof_ms"))
    return [row]


# ---- case 7: latency-bound --------------------------------------------------------------------------

def set_latency(box: Box, ms: float, names: Sequence[str]) -> list[str]:
    """Install a fixed per-request latency on the named endpoints; returns those that accepted it."""
    from migrator.errors import SandboxError
    from migrator.sandbox.faults import FaultPlan, set_faults

    accepted = []
    for name in names:
        try:
            set_faults(box.endpoints[name].url, FaultPlan(latency_ms=ms) if ms else None, ca_file=box.state.ca_file)
        except SandboxError:
            continue
        accepted.append(name)
    return accepted


def case7(s: Settings) -> list[Row]:
    """Objects/s with 20 ms added to every request, against the bound that concurrency, requests per
    object and the sandbox's capacity allow."""
    n = s.count(1000, 20)
    size = 4 * KiB
    keys = object_keys(n)
    c = s.latency_concurrency
    rows: list[Row] = []
    with Box(s.workdir / "case7-sandbox", tls=s.tls) as box:
        run = Runner(box, s, "case7")
        if not set_latency(box, 0, ["s3"]):
            row = Row("7", f"{n:,} x 4 KiB S3 -> S3, {s.latency_ms} ms per request", "latency", "migrator", n,
                      n * size, notes=["the sandbox S3 endpoint has no /_emulator/faults yet: not measured"])
            return [row]
        # Capacity: the request rate the S3 endpoint sustains without added latency, driven at twice the
        # concurrency by rclone (the least CPU-hungry client) and by the boto3 baseline; the higher counts.
        probes: dict[str, float] = {}
        per_cpu: list[float] = []
        for probe in (["rclone"] if peers.rclone_path() else []) + ["boto3"]:
            cap_src, cap_dst = f"c7-cap{probe[:2]}-src", f"c7-cap{probe[:2]}-dst"
            seed_s3(box, cap_src, keys, size, versioned=False)
            box.bucket("s3", cap_dst, versioned=True)
            if probe == "rclone":
                if run.client_counted:
                    run.rclone_count("capacity", cap_src, cap_dst)  # counts this probe's shape
                    seed_s3(box, cap_src, keys, size, versioned=False)
                cap = run.rclone(f"capacity-{probe}", cap_src, cap_dst, concurrency=4 * c, count_key="capacity")
            else:
                cap = run.boto3(f"capacity-{probe}", cap_src, cap_dst, concurrency=4 * c)
            probes[probe] = (cap.requests or 0) / cap.wall_s
            s3_cpu = cap.server_cpu_s.get("s3", 0.0)
            if s3_cpu and cap.requests:
                per_cpu.append(cap.requests / s3_cpu)
        capacity_rps = max(probes.values())
        per_cpu_rps = statistics.median(per_cpu) if per_cpu else None
        s.log(f"  case 7 capacity: {capacity_rps:.0f} requests/s (" +
              ", ".join(f"{k} {v:.0f}" for k, v in probes.items()) + f" at concurrency {4 * c}); "
              f"{per_cpu_rps or 0:.0f} requests per S3-server CPU second")
        latency_on = set_latency(box, s.latency_ms, list(box.endpoints))
        peer_names = ["migrator", "rclone", "boto3"] if peers.rclone_path() else ["migrator", "boto3"]
        table = {p: Row("7", f"{n:,} x 4 KiB S3 -> S3, +{s.latency_ms} ms per request", "latency", p, n, n * size)
                 for p in peer_names}
        if run.client_counted and "rclone" in table:
            seed_s3(box, "c7-rc-count-src", keys, size, versioned=False)
            box.bucket("s3", "c7-rc-count-dst", versioned=True)
            run.rclone_count("latency", "c7-rc-count-src", "c7-rc-count-dst")
        for rep_no in range(s.reps):
            for p in peer_names:
                src, dst = f"c7-l{p[:2]}-r{rep_no}-src", f"c7-l{p[:2]}-r{rep_no}-dst"
                set_latency(box, 0, latency_on)   # seed at full speed
                seed_s3(box, src, keys, size, versioned=False)
                box.bucket("s3", dst, versioned=True)
                set_latency(box, s.latency_ms, latency_on)
                label = f"latency-{p}-r{rep_no}"
                if p == "migrator":
                    rep = run.migrator(label, [(f"s3://{src}/{k}", f"s3://{dst}/{k}") for k in keys], concurrency=c)
                elif p == "rclone":
                    rep = run.rclone(label, src, dst, concurrency=c, count_key="latency")
                else:
                    rep = run.boto3(label, src, dst, concurrency=c)
                set_latency(box, 0, latency_on)
                check_s3_move(box, rep, src, dst, n)
                table[p].reps.append(rep)
                s.log(f"  case 7 {p} rep {rep_no + 1}: {n / rep.wall_s:.1f} obj/s, requests {rep.requests}, "
                      f"cpu {rep.cpu_s:.1f}s{'' if rep.ok else ' FAILED ' + rep.check}")
        for row in table.values():
            row.counted = "client" if run.client_counted else "server"
            row.summarize()
            good = [r for r in row.reps if r.ok] or row.reps
            row.limit = limit_of(row.peer, good, s.latency_ms)
            rpo = row.metrics.get("requests_per_object")
            if rpo:
                latency_bound = c / (rpo * s.latency_ms / 1000)
                capacity_bound = capacity_rps / rpo
                bound = min(latency_bound, capacity_bound)
                row.metrics["latency_bound_objects_per_s"] = latency_bound
                row.metrics["capacity_bound_objects_per_s"] = capacity_bound
                row.metrics["bound_objects_per_s"] = bound
                row.metrics["fraction_of_bound"] = (row.metrics.get("objects_per_s") or 0) / bound
                # Little's law: requests waiting out the latency at once, on average, of the concurrency allowed.
                row.metrics["requests_in_flight"] = (row.metrics.get("objects_per_s") or 0) * rpo * s.latency_ms / 1000
            row.metrics["capacity_requests_per_s"] = capacity_rps
            for k, v in probes.items():
                row.metrics[f"capacity_probe_{k}_requests_per_s"] = v
            if per_cpu_rps:
                row.metrics["s3_requests_per_cpu_s"] = per_cpu_rps
            if row.peer == "migrator":
                row.notes.append(f"latency on {', '.join(latency_on)}; concurrency {c} for every peer; bound = "
                                 f"min(concurrency / (requests per object x {s.latency_ms} ms), capacity / requests "
                                 "per object)")
        add_ratios(list(table.values()))
        rows.extend(table.values())
    return rows


CASES: dict[str, Callable[[Settings], list[Row]]] = {
    "1": case1, "2": case2, "3": case3, "4": case4, "5": case5, "6": case6, "7": case7,
}


def rows_as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def python_version() -> str:
    return sys.version.split()[0]
