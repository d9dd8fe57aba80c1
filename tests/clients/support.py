"""What the client checks share: payloads and their digests, a bare environment, and running a client.

Every client runs as a subprocess with an environment built here from nothing: a temporary HOME (no
~/.aws, ~/.oci, ~/.config/rclone or gcloud credentials of whoever runs the suite can leak in), the system
PATH, and only the sandbox's fake credentials that each test adds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.checksum import crc32c_bytes
from migrator.sandbox.control import SandboxState

MiB = 1024 * 1024
# Every client is told to cut multipart objects into parts of this size (5 MiB: S3's minimum part).
PART_SIZE = 5 * MiB
# One request everywhere, and three parts of PART_SIZE (the last one short) for every client told so.
SMALL_SIZE = 1000
LARGE_SIZE = 2 * PART_SIZE + MiB + 123
# A client that hangs is a failure with its output, not a stuck suite.
TIMEOUT = 300.0


@dataclass(frozen=True)
class Payload:
    """Bytes written to a local file, with the digests the clouds report for them."""

    path: Path
    data: bytes

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def md5_hex(self) -> str:
        return hashlib.md5(self.data).hexdigest()

    @property
    def md5_b64(self) -> str:
        return base64.b64encode(hashlib.md5(self.data).digest()).decode()

    @property
    def crc32c_b64(self) -> str:
        return base64.b64encode(crc32c_bytes(self.data)).decode()

    def parts(self, part_size: int = PART_SIZE) -> list[bytes]:
        return [self.data[i:i + part_size] for i in range(0, len(self.data), part_size)]

    def multipart_md5(self, part_size: int = PART_SIZE) -> tuple[str, str]:
        """(S3's multipart ETag, OCI's opc-multipart-md5) for parts of ``part_size``."""
        parts = self.parts(part_size)
        joined = b"".join(hashlib.md5(p).digest() for p in parts)
        n = len(parts)
        return (f"{hashlib.md5(joined).hexdigest()}-{n}",
                f"{base64.b64encode(hashlib.md5(joined).digest()).decode()}-{n}")

    def composite_crc32c(self, part_size: int = PART_SIZE) -> str:
        """S3's COMPOSITE CRC32C of a multipart object: the CRC32C of the parts' CRC32Cs, with "-N"."""
        parts = self.parts(part_size)
        joined = b"".join(crc32c_bytes(p) for p in parts)
        return f"{base64.b64encode(crc32c_bytes(joined)).decode()}-{len(parts)}"


def payload(directory: Path, name: str, size: int, seed: int) -> Payload:
    """``size`` seeded random bytes in ``directory/name`` (replayable, incompressible)."""
    data = random.Random(seed).randbytes(size)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return Payload(path, data)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def ca_file(state: SandboxState) -> str | None:
    """The PEM bundle that trusts the sandbox's CA, or None when the sandbox speaks plain HTTP."""
    value = getattr(state, "ca_file", None)
    return str(value) if value else None


def bare_env(home: Path) -> dict[str, str]:
    """An environment with nothing of the caller's: none of its credentials, CA bundles or configs."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "TMPDIR": str(home)}


def run(argv: Sequence[str | Path], env: Mapping[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a client; a non-zero exit fails the test with the command and what it printed."""
    args = [str(a) for a in argv]
    done = subprocess.run(args, env=dict(env), capture_output=True, text=True, timeout=TIMEOUT, check=False,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}\nexit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}"
                             f"\n--- stderr\n{done.stderr[-4000:]}")
    return done


def run_json(argv: Sequence[str | Path], env: Mapping[str, str]) -> Any:
    """Run a client that prints one JSON document (an empty output is None)."""
    out = run(argv, env).stdout.strip()
    return json.loads(out) if out else None
