"""Start, describe and stop the local sandbox: S3 (moto behind our layer), GCS and OCI (our emulators), and
the wider estate of issue 15: a second S3 server (``s3dc``, a data centre's, another owner account) and a
second OCI region (``oci_eu``, eu-frankfurt-1, the same namespace).

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
AWS_SG_REGION = "ap-southeast-1"  # the AWS-like S3's second region (buckets made with that LocationConstraint)
AWS_OWNER = "123456789012"  # the AWS-like S3's account (moto's default), checked against ExpectedBucketOwner
# The data centre's S3 (s3dc): another account, and credentials of its own; it refuses any other key id.
DC_OWNER = "000000000042"
DC_ACCESS_KEY_ID = "DCSANDBOXKEY00000000"
DC_SECRET_ACCESS_KEY = "dc-sandbox-secret-not-a-real-key"  # noqa: S105 - loopback-only fake
DC_REGION = "us-east-1"  # declared only: an S3-compatible store has no region of its own to report
# The AWS shared-config profiles ``up`` writes under <sandbox>/aws/: the estate's locations name them.
AWS_PROFILE_AWS = "sandbox-aws"
AWS_PROFILE_DC = "sandbox-dc"
OCI_REGION = "us-ashburn-1"
OCI_EU_REGION = "eu-frankfurt-1"
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
    # The wider estate (issue 15); None in a state written before it: ``up`` then restarts the sandbox.
    oci_eu: Endpoint | None = None  # a second OCI emulator, eu-frankfurt-1, same namespace
    s3dc: Endpoint | None = None    # a second S3 server, the data centre's, owner DC_OWNER
    aws_credentials: str | None = None  # the AWS shared credentials file (profiles sandbox-aws, sandbox-dc)
    aws_config: str | None = None       # the AWS config file (their regions, the dc's path style)

    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint process recorded."""
        return tuple(ep for ep in (self.s3, self.gcs, self.oci, self.oci_eu, self.s3dc) if ep is not None)

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
            **self._aws_files(),
            **trust,
        }

    def _aws_files(self) -> dict[str, str]:
        # Profiles for the estate's locations; the keys above stay the default for profile-less clients.
        files = {"AWS_SHARED_CREDENTIALS_FILE": self.aws_credentials, "AWS_CONFIG_FILE": self.aws_config}
        return {name: path for name, path in files.items() if path is not None}

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


@dataclass(frozen=True)
class _Launch:
    """An endpoint process started and not yet ready (``up`` starts them all, then waits for each)."""
    name: str
    label: str
    proc: subprocess.Popen[bytes]
    ready: Path
    log: Path
    tls: sandbox_tls.TlsFiles | None


def _launch(d: Path, name: str, label: str, module: str, args: list[str],
            tls: sandbox_tls.TlsFiles | None) -> _Launch:
    ready, log = d / f"{name}.port", d / f"{name}.log"
    ready.unlink(missing_ok=True)
    proc = _spawn([sys.executable, "-m", module, *args, "--ready-file", str(ready), *_tls_args(tls)], log)
    return _Launch(name, label, proc, ready, log, tls)


def _ready(launch: _Launch) -> Endpoint:
    port = _wait_port_file(launch.proc, launch.ready, launch.label, launch.log)
    return Endpoint(launch.name, _url(launch.tls, port), launch.proc.pid)


def _launch_s3(d: Path, tls: sandbox_tls.TlsFiles | None, name: str = "s3", owner: str = AWS_OWNER,
               extra: tuple[str, ...] = ()) -> _Launch:
    return _launch(d, name, name.upper(), "migrator.sandbox.s3_server", ["--owner-id", owner, *extra], tls)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def write_aws_files(d: Path) -> tuple[Path, Path]:
    """The AWS shared credentials and config files (0600) under ``d/aws``: one profile per S3 server."""
    credentials, config = d / "aws" / "credentials", d / "aws" / "config"
    _write_private(credentials, f"""[{AWS_PROFILE_AWS}]
aws_access_key_id = {AWS_ACCESS_KEY_ID}
aws_secret_access_key = {AWS_SECRET_ACCESS_KEY}

[{AWS_PROFILE_DC}]
aws_access_key_id = {DC_ACCESS_KEY_ID}
aws_secret_access_key = {DC_SECRET_ACCESS_KEY}
""")
    _write_private(config, f"""[profile {AWS_PROFILE_AWS}]
region = {AWS_REGION}

[profile {AWS_PROFILE_DC}]
region = {DC_REGION}
s3 =
    addressing_style = path
""")
    return credentials, config


def _launch_gcs(d: Path, tls: sandbox_tls.TlsFiles | None) -> _Launch:
    # The project's own GCS JSON API emulator: fake-gcs-server ignores delete preconditions, deletes the
    # wrong generation and has no soft delete, exactly where pinned deletes and removal proofs live.
    return _launch(d, "gcs", "GCS", "migrator.sandbox.gcs_emulator", ["--host", "127.0.0.1", "--port", "0"], tls)


def _launch_oci(d: Path, tls: sandbox_tls.TlsFiles | None, public_key: Path, name: str = "oci",
                region: str = OCI_REGION, namespace: str = NAMESPACE) -> _Launch:
    # One namespace in every region, as a real tenancy has: only the endpoint (and its buckets) differ.
    return _launch(d, name, f"OCI {region}", "migrator.sandbox.oci_emulator",
                   ["--host", "127.0.0.1", "--port", "0", "--public-key", str(public_key), "--namespace", namespace,
                    "--region", region], tls)


def _start_s3(d: Path, tls: sandbox_tls.TlsFiles | None = None) -> Endpoint:
    return _ready(_launch_s3(d, tls))


def load(directory: Path = DEFAULT_DIR) -> SandboxState:
    path = directory / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise SandboxError(f"no sandbox is running from {directory} (run `migrator sandbox up`)") from None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"sandbox state {path} is unreadable: {exc}") from None
    extra = {name: Endpoint(**raw[name]) for name in ("oci_eu", "s3dc") if raw.get(name) is not None}
    state = SandboxState(directory=raw["directory"], s3=Endpoint(**raw["s3"]), gcs=Endpoint(**raw["gcs"]),
                         oci=Endpoint(**raw["oci"]), oci_namespace=raw["oci_namespace"],
                         oci_config=raw["oci_config"], ca_file=raw.get("ca_file"), **extra,
                         aws_credentials=raw.get("aws_credentials"), aws_config=raw.get("aws_config"))
    for ep in state.endpoints():
        require_loopback(ep.url, f"sandbox {ep.name}")
    return state


def running(directory: Path = DEFAULT_DIR) -> SandboxState | None:
    try:
        state = load(directory)
    except SandboxError:
        return None
    if all(_alive(ep.pid) for ep in state.endpoints()):
        return state
    return None


def up(directory: Path = DEFAULT_DIR, *, tls: bool = True, namespace: str = NAMESPACE,
       oci_regions: tuple[str, str] = (OCI_REGION, OCI_EU_REGION)) -> SandboxState:
    """Start the endpoints (or return the running ones) and record them. HTTPS unless ``tls`` is False; a
    running sandbox of the other kind is refused, not silently returned. The processes start at once and
    are then waited for one by one. ``namespace``: the OCI tenancy's, and ``oci_regions`` the regions its two
    endpoints play (a rehearsal plays the manifest's; a running sandbox is reused whatever its regions)."""
    existing = running(directory)
    if existing is not None and (existing.oci_eu is None or existing.s3dc is None):
        existing = None  # started before the estate had them: restarted below
    if existing is not None:
        if (existing.ca_file is not None) != tls:
            raise SandboxError(f"a sandbox is already running from {directory} over "
                               f"{existing.scheme.upper()}: `migrator sandbox down` it first")
        if existing.oci_namespace != namespace:
            raise SandboxError(f"a sandbox is already running from {directory} with OCI namespace "
                               f"{existing.oci_namespace!r}, not {namespace!r}: `migrator sandbox down` it first")
        return existing
    down(directory, missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    d = directory.resolve()
    files = sandbox_tls.ensure(d) if tls else None
    from migrator.sandbox.oci_auth import write_sandbox_config

    creds = write_sandbox_config(d / "oci", namespace)
    aws_credentials, aws_config = write_aws_files(d)
    launches: list[_Launch] = []
    try:
        launches.append(_launch_s3(d, files))
        launches.append(_launch_s3(d, files, "s3dc", DC_OWNER, ("--access-key", DC_ACCESS_KEY_ID, "--path-only")))
        launches.append(_launch_gcs(d, files))
        launches.append(_launch_oci(d, files, creds.public_key_path, "oci", oci_regions[0], namespace))
        launches.append(_launch_oci(d, files, creds.public_key_path, "oci_eu", oci_regions[1], namespace))
        ep = {launch.name: _ready(launch) for launch in launches}
    except BaseException:
        for launch in launches:
            _stop_pid(launch.proc.pid)
        raise
    state = SandboxState(directory=str(d), s3=ep["s3"], gcs=ep["gcs"], oci=ep["oci"], oci_namespace=namespace,
                         oci_config=str(creds.config_path), ca_file=None if files is None else str(files.bundle),
                         oci_eu=ep["oci_eu"], s3dc=ep["s3dc"], aws_credentials=str(aws_credentials),
                         aws_config=str(aws_config))
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
    for ep in state.endpoints():
        _stop_pid(ep.pid)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True
