"""Request and byte caps against the sandbox's own counters (``/_emulator/faults``: requests by operation).

Waves run from a wave file with caps well below what the sandbox serves, and only the UPPER bound is
asserted, from what the sandbox counted: requests <= 1.1 x rate x T + burst, bytes read <= 1.1 x rate x T +
burst, with T the elapsed time. No lower bound and no time is asserted: a slow machine passes.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from migrator.attest.keys import generate_keypair, load_signer
from migrator.config import WaveSettings, load_wave
from migrator.limits import MiB
from migrator.runner import run_wave
from migrator.sandbox.buckets import create_bucket, s3_client
from migrator.sandbox.control import SandboxState
from migrator.sandbox.faults import get_faults
from migrator.stores.base import PutRequest
from migrator.stores.registry import Stores
from migrator.uri import ObjectURI
from tests.conftest import unique
from tests.reliability.invariant import write_manifest


def _requests(sandbox: SandboxState, url: str) -> dict[str, int]:
    return dict(get_faults(url, ca_file=sandbox.ca_file).get("requests", {}))


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _wave_file(sandbox: SandboxState, tmp_path: Path, src: str, dst: str, *, transfer: str = "",
               src_caps: str = "") -> WaveSettings:
    s, ca = sandbox, sandbox.ca_file
    trust = f'ca_bundle = "{ca}"\n' if ca else ""
    text = (f"[transfer]\n{transfer}"
            f'[locations.src]\nkind = "s3"\nendpoint = "{s.s3.url}"\nbuckets = ["{src}"]\n{src_caps}{trust}'
            f'[locations.dst]\nkind = "oci"\nendpoint = "{s.oci.url}"\nowner = "{s.oci_namespace}"\n'
            f'buckets = ["{dst}"]\nconfig_file = "{s.oci_config}"\n{trust}')
    path = tmp_path / "wave.toml"
    path.write_text(text)
    return load_wave(path, {}, s.env())


def _seed(sandbox: SandboxState, bucket: str, count: int, size: int) -> list[str]:
    client = s3_client(sandbox)
    keys = [f"k/{i:03d}" for i in range(count)]
    for i, key in enumerate(keys):
        client.put_object(Bucket=bucket, Key=key, Body=bytes([i % 256]) * size)
    return keys


def _location(sandbox: SandboxState, kind: str, bucket: str, caps: str) -> str:
    s, ca = sandbox, sandbox.ca_file
    trust = f'ca_bundle = "{ca}"\n' if ca else ""
    body = {"s3": f'endpoint = "{s.s3.url}"\n', "gs": f'endpoint = "{s.gcs.url}"\n',
            "oci": f'endpoint = "{s.oci.url}"\nowner = "{s.oci_namespace}"\nconfig_file = "{s.oci_config}"\n'}[kind]
    return f'[locations.here]\nkind = "{kind}"\nbuckets = ["{bucket}"]\n{body}{caps}{trust}'


@pytest.mark.parametrize("kind", ["s3", "gs", "oci"])
def test_direct_store_calls_stay_under_the_location_requests_cap(sandbox: SandboxState, tmp_path: Path,
                                                                  kind: str) -> None:
    """Each adapter meters at its HTTP layer: 80 stats from 8 threads at 20 requests a second."""
    bucket = unique(f"cap{kind}")
    create_bucket(sandbox, kind, bucket, versioned=True)
    rate = 20.0
    path = tmp_path / "wave.toml"
    path.write_text(_location(sandbox, kind, bucket, f"requests_per_second = {rate}\n"))
    store = Stores(load_wave(path, {}, sandbox.env()).stores).get(kind, "here")
    ns = sandbox.oci_namespace if kind == "oci" else ""
    uris = [ObjectURI(kind, bucket, f"k/{i}", ns, at="here") for i in range(4)]
    for uri in uris:
        store.put(uri, io.BytesIO(b"x" * 1024), PutRequest(size=1024))
    burst = rate   # the default: one second's worth (the puts above spent some of it, which only helps)
    url = {"s3": sandbox.s3.url, "gs": sandbox.gcs.url, "oci": sandbox.oci.url}[kind]
    before = _requests(sandbox, url)
    start = time.monotonic()

    def work(worker: int) -> None:
        for i in range(10):
            store.stat(uris[(worker + i) % len(uris)])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    sent = sum(_delta(_requests(sandbox, url), before).values())
    print(f"\n{kind} stat: {sent} requests in {elapsed:.2f}s (cap {rate}/s, bound "
          f"{1.1 * rate * elapsed + burst:.0f})")
    assert sent >= 80   # every stat reached the sandbox
    assert sent <= 1.1 * rate * elapsed + burst, f"{sent} requests in {elapsed:.2f}s at {rate}/s"


def test_a_wave_stays_under_its_caps(sandbox: SandboxState, tmp_path: Path) -> None:
    """One wave, two caps that both bind (more requests and bytes than one second's burst): 10 requests a
    second on the source location, 2 MiB a second for the wave."""
    src, dst = unique("capwsrc"), unique("capwdst")
    create_bucket(sandbox, "s3", src, versioned=True)
    create_bucket(sandbox, "oci", dst, versioned=True)
    size, count = 256 * 1024, 30
    keys = _seed(sandbox, src, count, size)
    rps, bps = 10.0, 2 * MiB
    settings = _wave_file(sandbox, tmp_path, src, dst, transfer=f"bytes_per_second = {bps}\n",
                          src_caps=f"requests_per_second = {rps}\n")
    ns = sandbox.oci_namespace
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"source": f"s3://{src}/{k}", "destination": f"oci://{ns}/{dst}/{k}"} for k in keys])
    private, _ = generate_keypair(tmp_path / "keys")
    before = _requests(sandbox, sandbox.s3.url)
    start = time.monotonic()
    result = run_wave(manifest, tmp_path / "state", load_signer(private), settings)
    elapsed = time.monotonic() - start
    assert result.complete and result.failed == 0, result
    sent = _delta(_requests(sandbox, sandbox.s3.url), before)
    requests = sum(sent.values())
    assert requests > rps            # the cap binds: more than one second's burst
    assert requests <= 1.1 * rps * elapsed + rps, f"{requests} requests {sent} in {elapsed:.2f}s"
    # Every GetObject of this wave read one whole object (none is ranged): the bytes the source served.
    read = sent.get("GetObject", 0) * size
    print(f"\nwave: {requests} source requests {sent}, {read} bytes read in {elapsed:.2f}s "
          f"(bounds {1.1 * rps * elapsed + rps:.0f} requests, {1.1 * bps * elapsed + bps:.0f} bytes)")
    assert read >= count * size
    assert read <= 1.1 * bps * elapsed + bps, f"{read} bytes in {elapsed:.2f}s"
