"""Start, describe and stop the local sandbox: S3 (moto behind our layer), GCS and OCI (our emulators).

Each endpoint runs as its own background process on 127.0.0.1, recorded in a state folder
(``.migrator-sandbox/`` by default) so that ``env`` and ``down`` find them from another shell.
They speak HTTPS, as the clouds do, with a certificate from the sandbox's own CA (:mod:`.tls`), unless
started with ``tls=False``. Test fixtures call the same functions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from migrator.endpoints import require_loopback
from migrator.errors import SandboxError
from migrator.sandbox import tls as sandbox_tls
from migrator.sandbox.serve import EXIT_MISSING_EXTRA, SANDBOX_EXTRA

DEFAULT_DIR = Path(".migrator-sandbox")
NAMESPACE = "sandboxns"
# Fake, distinctive credentials: the sandbox accepts anything, and real clouds would reject these.
AWS_ACCESS_KEY_ID = "AKIASANDBOXEXAMPLE00"
AWS_SECRET_ACCESS_KEY = "sandbox-secret-not-a-real-key"  # noqa: S105 - loopback-only fake
AWS_REGION = "us-east-1"
STATE_FILE = "state.json"
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    pid: int


@dataclass(frozen=True)
class SandboxState:
    directory: str
    s3: Endpoint
    gcs: Endpoint
    oci: Endpoint
    oci_namespace: str
    oci_config: str
    ca_file: str | None = None  # the bundle that trusts the sandbox CA; None: plain HTTP

    def env(self) -> dict[str, str]:
        """What ``sandbox env`` exports: the endpoints, fake credentials and, over HTTPS, the CA bundle
        under each name an SDK or client reads it by."""
        trust = {} if self.ca_file is None else {
            "AWS_CA_BUNDLE": self.ca_file,          # botocore, the AWS CLI
            "REQUESTS_CA_BUNDLE": self.ca_file,     # requests: google-auth, google-cloud-storage, the oci SDK
            "CURL_CA_BUNDLE": self.ca_file,         # curl, and requests' fallback
            "OCI_CLI_CERT_BUNDLE": self.ca_file,    # the OCI CLI
            "SSL_CERT_FILE": self.ca_file,          # OpenSSL's default: Python's ssl, aiohttp (gcsfs), Go (rclone)
        }
        return {
            "AWS_ENDPOINT_URL": self.s3.url,
            "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": AWS_REGION,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "MIGRATOR_OCI_ENDPOINT": self.oci.url,
            "MIGRATOR_OCI_NAMESPACE": self.oci_namespace,
            "MIGRATOR_OCI_CONFIG": self.oci_config,
            "MIGRATOR_SANDBOX": self.directory,
            **trust,
        }

    @property
    def scheme(self) -> str:
        return "http" if self.ca_file is None else "https"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, close_fds=True)


def _wait_port_file(proc: subprocess.Popen[bytes], ready: Path, name: str, log: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready.exists():
            return int(ready.read_text().strip())
        code = proc.poll()
        if code == EXIT_MISSING_EXTRA:
            raise SandboxError(f"the sandbox needs the [sandbox] extra, which is not installed: {SANDBOX_EXTRA} "
                               f"(see {log})")
        if code is not None:
            raise SandboxError(f"{name} endpoint exited during start (see {log})")
        time.sleep(0.05)
    proc.kill()
    raise SandboxError(f"{name} endpoint did not become ready in {READY_TIMEOUT:.0f}s (see {log})")


def _tls_args(tls: sandbox_tls.TlsFiles | None) -> list[str]:
    if tls is None:
        return []
    return ["--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)]


def _url(tls: sandbox_tls.TlsFiles | None, port: int) -> str:
    return f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"


def _start_s3(d: Path, tls: sandbox_tls.TlsFiles | None = None) -> Endpoint:
    ready, log = d / "s3.port", d / "s3.log"
    ready.unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", "migrator.sandbox.s3_server", "--ready-file", str(ready),
                   *_tls_args(tls)], log)
    port = _wait_port_file(proc, ready, "S3", log)
    return Endpoint("s3", _url(tls, port), proc.pid)


def _start_gcs(d: Path, tls: sandbox_tls.TlsFiles | None = None) -> Endpoint:
    # The project's own GCS JSON API emulator: fake-gcs-server ignores delete preconditions, deletes the
    # wrong generation and has no soft delete, exactly where pinned deletes and removal proofs live.
    ready, log = d / "gcs.port", d / "gcs.log"
    ready.unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", "migrator.sandbox.gcs_emulator", "--host", "127.0.0.1", "--port", "0",
                   "--ready-file", str(ready), *_tls_args(tls)], log)
    port = _wait_port_file(proc, ready, "GCS", log)
    return Endpoint("gcs", _url(tls, port), proc.pid)


def _start_oci(d: Path, tls: sandbox_tls.TlsFiles | None = None) -> tuple[Endpoint, str]:
    from migrator.sandbox.oci_auth import write_sandbox_config

    creds = write_sandbox_config(d / "oci", NAMESPACE)
    ready, log = d / "oci.port", d / "oci.log"
    ready.unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", "migrator.sandbox.oci_emulator", "--host", "127.0.0.1", "--port", "0",
                   "--public-key", str(creds.public_key_path), "--namespace", NAMESPACE,
                   "--ready-file", str(ready), *_tls_args(tls)], log)
    port = _wait_port_file(proc, ready, "OCI", log)
    return Endpoint("oci", _url(tls, port), proc.pid), str(creds.config_path)


def load(directory: Path = DEFAULT_DIR) -> SandboxState:
    path = directory / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SandboxError(f"no sandbox is running from {directory} (run `migrator sandbox up`)") from None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"sandbox state {path} is unreadable: {exc}") from None
    state = SandboxState(directory=raw["directory"], s3=Endpoint(**raw["s3"]), gcs=Endpoint(**raw["gcs"]),
                         oci=Endpoint(**raw["oci"]), oci_namespace=raw["oci_namespace"],
                         oci_config=raw["oci_config"], ca_file=raw.get("ca_file"))
    for ep in (state.s3, state.gcs, state.oci):
        require_loopback(ep.url, f"sandbox {ep.name}")
    return state


def running(directory: Path = DEFAULT_DIR) -> SandboxState | None:
    try:
        state = load(directory)
    except SandboxError:
        return None
    if all(_alive(ep.pid) for ep in (state.s3, state.gcs, state.oci)):
        return state
    return None


def up(directory: Path = DEFAULT_DIR, *, tls: bool = True) -> SandboxState:
    """Start the three endpoints (or return the running ones) and record them. HTTPS unless ``tls`` is
    False; a running sandbox of the other kind is refused, not silently returned."""
    existing = running(directory)
    if existing is not None:
        if (existing.ca_file is not None) != tls:
            raise SandboxError(f"a sandbox is already running from {directory} over "
                               f"{existing.scheme.upper()}: `migrator sandbox down` it first")
        return existing
    down(directory, missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    d = directory.resolve()
    files = sandbox_tls.ensure(d) if tls else None
    started: list[Endpoint] = []
    try:
        s3 = _start_s3(d, files)
        started.append(s3)
        gcs = _start_gcs(d, files)
        started.append(gcs)
        oci, oci_config = _start_oci(d, files)
        started.append(oci)
    except BaseException:
        for ep in started:
            _stop_pid(ep.pid)
        raise
    state = SandboxState(directory=str(d), s3=s3, gcs=gcs, oci=oci, oci_namespace=NAMESPACE,
                         oci_config=oci_config, ca_file=None if files is None else str(files.bundle))
    tmp = d / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, d / STATE_FILE)
    return state


def _stop_pid(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def down(directory: Path = DEFAULT_DIR, *, missing_ok: bool = False) -> bool:
    """Stop the endpoints recorded in ``directory``. Returns False when none was recorded."""
    try:
        state = load(directory)
    except SandboxError:
        if missing_ok:
            return False
        raise
    for ep in (state.s3, state.gcs, state.oci):
        _stop_pid(ep.pid)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True
