"""The sandbox over HTTPS: its own CA, what `sandbox env` exports, and what the endpoints refuse."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from migrator.endpoints import require_loopback
from migrator.errors import SandboxError, UnsafeEndpointError
from migrator.sandbox import control, tls
from migrator.sandbox.control import SandboxState

TRUST_VARS = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "OCI_CLI_CERT_BUNDLE", "SSL_CERT_FILE")


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("https://").removeprefix("http://").partition(":")
    return host, int(port)


def _handshake(url: str, context: ssl.SSLContext) -> str:
    host, port = _host_port(url)
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:
        return str(conn.version())


def test_the_session_sandbox_speaks_https_with_its_own_ca(sandbox: SandboxState) -> None:
    assert sandbox.ca_file is not None
    files = tls.files(Path(sandbox.directory))
    assert Path(sandbox.ca_file) == files.bundle
    trusting = ssl.create_default_context(cafile=str(files.ca_cert))
    for ep in sandbox.endpoints():
        assert ep.url.startswith("https://127.0.0.1:")
        assert _handshake(ep.url, trusting) in ("TLSv1.2", "TLSv1.3")
        # A client that trusts only the usual roots is refused: the sandbox CA is not a public one.
        plain_roots = ssl.create_default_context(cafile=ssl.get_default_verify_paths().openssl_cafile)
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(ep.url, plain_roots)


def test_keys_are_private_and_the_bundle_trusts_the_ca_and_the_machine(sandbox: SandboxState) -> None:
    files = tls.files(Path(sandbox.directory))
    for key in (files.server_key, files.ca_cert.with_name("ca.key")):
        assert key.stat().st_mode & 0o777 == 0o600, key
    bundle = files.bundle.read_bytes()
    assert files.ca_cert.read_bytes() in bundle
    # the machine's roots too: a shell that exported it still reaches pip
    assert bundle.count(b"BEGIN CERTIFICATE") > 1


def test_sandbox_env_exports_the_bundle_under_every_name(sandbox: SandboxState) -> None:
    env = sandbox.env()
    for name in TRUST_VARS:
        assert env[name] == sandbox.ca_file, name
    # and the product's own clients, built from that environment alone, trust it (the session fixture set it)
    for name in TRUST_VARS:
        assert os.environ[name] == sandbox.ca_file, name


def _issue(ca_dir: Path, san: x509.GeneralName) -> x509.Certificate:
    """A server certificate signed with the sandbox CA's own key, for any name: what a thief could make."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def test_the_ca_can_vouch_for_loopback_only(tmp_path: Path) -> None:
    files = tls.ensure(tmp_path)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    store = Store([ca])
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    PolicyBuilder().store(store).build_server_verifier(x509.DNSName("localhost")).verify(server, [])
    PolicyBuilder().store(store).build_server_verifier(
        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(server, [])
    # Even signed with the CA's key, a certificate for a real host fails the CA's name constraints.
    for name in ("s3.amazonaws.com", "objectstorage.us-ashburn-1.oraclecloud.com"):
        forged = _issue(files.ca_cert.parent, x509.DNSName(name))
        with pytest.raises(VerificationError):
            PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name)).verify(forged, [])
    forged_ip = _issue(files.ca_cert.parent, x509.IPAddress(ipaddress.ip_address("52.216.0.1")))
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address("52.216.0.1"))).verify(forged_ip, [])


def test_the_ca_is_kept_across_restarts_and_renewed_when_broken(tmp_path: Path) -> None:
    first = tls.ensure(tmp_path).ca_cert.read_bytes()
    assert tls.ensure(tmp_path).ca_cert.read_bytes() == first
    (tmp_path / "tls" / "ca.key").write_bytes(b"not a key")
    renewed = tls.ensure(tmp_path)
    assert renewed.ca_cert.read_bytes() != first
    leaf = x509.load_pem_x509_certificate(renewed.server_cert.read_bytes())
    assert leaf.issuer == x509.load_pem_x509_certificate(renewed.ca_cert.read_bytes()).subject


@pytest.fixture(scope="module")
def plain_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SandboxState]]:
    d = tmp_path_factory.mktemp("plain-sandbox")
    state = control.up(d, tls=False)
    try:
        yield d, state
    finally:
        control.down(d, missing_ok=True)


def test_http_keeps_plain_http_and_exports_no_trust(plain_sandbox: tuple[Path, SandboxState]) -> None:
    d, state = plain_sandbox
    assert state.ca_file is None
    for ep in state.endpoints():
        assert ep.url.startswith("http://127.0.0.1:")
    assert not set(TRUST_VARS) & set(state.env())
    with pytest.raises(SandboxError, match=r"already running .* over HTTP:"):
        control.up(d)   # asking for HTTPS does not silently hand back the plain one


def test_a_plain_http_request_to_an_https_endpoint_gets_no_answer(sandbox: SandboxState) -> None:
    for ep in sandbox.endpoints():
        host, port = _host_port(ep.url)
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(b"GET /_emulator/stats HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = conn.recv(4096)
            except ConnectionResetError:
                answer = b""   # the handshake failed and the server dropped the connection
            assert b"HTTP/1.1" not in answer


def test_the_loopback_guard_applies_over_https() -> None:
    assert require_loopback("https://127.0.0.1:9000", "x") == "https://127.0.0.1:9000"
    with pytest.raises(UnsafeEndpointError):
        require_loopback("https://s3.amazonaws.com", "x")


def test_up_without_the_sandbox_extra_names_it(tmp_path: Path) -> None:
    # moto hidden, as in an install without [sandbox]: the S3 endpoint cannot start.
    shadow = tmp_path / "shadow" / "moto"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'moto'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "migrator", "sandbox", "up", "--dir", str(tmp_path / "box")],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "pip install 'provable-migrator[sandbox]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "box" / "state.json").exists()
