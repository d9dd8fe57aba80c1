"""The OCI emulator on loopback: the in-process object tests start, and the process entry point.

``OciEmulator`` binds one service (:mod:`migrator.sandbox.oci.service`) and one signature verifier to the
HTTP handler (:mod:`migrator.sandbox.oci.http`). ``main`` is what ``python -m migrator.sandbox.oci_emulator``
runs (``migrator sandbox up`` starts it so): it refuses a non-loopback host, writes the bound port to
``--ready-file`` once listening, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from migrator.endpoints import is_loopback_host
from migrator.sandbox.base import Emulator
from migrator.sandbox.oci.http import OciHandler
from migrator.sandbox.oci.model import ObjectVersion
from migrator.sandbox.oci.service import OciService
from migrator.sandbox.oci.signature import SignatureVerifier
from migrator.sandbox.serve import add_tls_arguments, tls_from_arguments


class OciEmulator(Emulator):
    """The OCI Object Storage emulator on loopback. ``start()`` returns once it is listening."""

    name = "oci-emulator"
    _service: OciService

    def __init__(self, *, public_key_pem: bytes, namespace: str, host: str = "127.0.0.1", port: int = 0,
                 min_part_size: int = 0, region: str = "us-ashburn-1",
                 tls: ssl.SSLContext | None = None) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("the OCI emulator needs an RSA public key")
        self.namespace = namespace
        self._service = OciService(namespace, min_part_size, region)
        handler = type("_BoundHandler", (OciHandler,),
                       {"service": self._service, "verifier": SignatureVerifier(key)})
        self._bind(host, port, handler, tls)

    def set_replication_paused(self, paused: bool) -> None:
        """Paused: replication queues up, as a lagging destination; resumed: the queue runs in order."""
        self._service.set_replication_paused(paused)

    def iter_objects(self, bucket: str) -> Iterator[tuple[str, ObjectVersion]]:
        """Every stored version in ``bucket`` (for tests that inspect the server side)."""
        with self._service.lock:
            b = self._service.buckets.get(bucket)
            items = [(n, v) for n, vs in b.objects.items() for v in vs] if b else []
        yield from items


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrator.sandbox.oci_emulator",
                                     description="In-memory OCI Object Storage emulator (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--public-key", required=True, type=Path, help="PEM public key of the API key")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--ready-file", type=Path, help="the bound port is written here once listening")
    parser.add_argument("--min-part-size", type=int, default=0)
    parser.add_argument("--region", default="us-ashburn-1", help="the region this endpoint plays")
    add_tls_arguments(parser)
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.exit(2, f"refusing to listen on non-loopback host {args.host!r}\n")
    emulator = OciEmulator(public_key_pem=args.public_key.read_bytes(), namespace=args.namespace,
                           host=args.host, port=args.port, min_part_size=args.min_part_size,
                           region=args.region, tls=tls_from_arguments(parser, args))

    return emulator.run_until_signalled(args.ready_file)
