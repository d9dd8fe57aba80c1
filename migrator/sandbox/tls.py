"""The sandbox's own certificate authority, so that its endpoints speak HTTPS as the clouds do.

``ensure(folder)`` keeps, under ``folder/tls/``: a CA (``ca.pem``, its key ``ca.key`` 0600), a server
certificate for loopback signed by it (``server.pem``, ``server.key`` 0600) and ``bundle.pem``, what
clients are told to trust. The CA is kept across ``sandbox up``/``down`` (a client told to trust it once
keeps working) and renewed only when missing, unreadable or near its end.

The CA is name-constrained to loopback (``localhost``, 127.0.0.0/8, ::1): clients that check the
constraint (OpenSSL, Go) refuse anything it signs for another host, so trusting it, or a leaked key,
lets nobody impersonate a real cloud. That is why ``bundle.pem`` can add it to the roots the machine
already trusts: a shell that exported it still reaches real services (pip, the clouds).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from migrator.errors import SandboxError
from migrator.files import replace_atomically
from migrator.sandbox.serve import server_context

CA_DAYS = 365
SERVER_DAYS = 90
RENEW_BEFORE = datetime.timedelta(days=7)
_LOOPBACK_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path      # the sandbox CA alone
    bundle: Path       # the CA plus the machine's roots: what SSL_CERT_FILE and the CA bundles point at
    server_cert: Path  # the endpoints' certificate, then the CA's
    server_key: Path   # 0600

    def server_context(self) -> ssl.SSLContext:
        """The endpoints' TLS context: TLS 1.2 or later, the sandbox certificate."""
        try:
            return server_context(self.server_cert, self.server_key)
        except (OSError, ssl.SSLError) as exc:
            raise SandboxError(f"cannot load the sandbox certificate {self.server_cert}: {exc}") from None

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the sandbox CA (for the control paths)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def files(directory: Path) -> TlsFiles:
    d = directory / "tls"
    return TlsFiles(d / "ca.pem", d / "bundle.pem", d / "server.pem", d / "server.key")


def ensure(directory: Path) -> TlsFiles:
    """The sandbox's TLS files under ``directory``, made or renewed as needed."""
    f = files(directory)
    f.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(f.ca_cert.parent, 0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca = _load_ca(f.ca_cert, now)
    if ca is None:
        ca = _new_ca(f, now)
    if not _server_fresh(f.server_cert, ca[0], now):
        _new_server(f, ca, now)
    _write_bundle(f)
    return f


def _key_path(f: TlsFiles) -> Path:
    return f.ca_cert.with_name("ca.key")


def _load_ca(path: Path, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        key = serialization.load_pem_private_key(path.with_name("ca.key").read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.not_valid_after_utc - RENEW_BEFORE < now:
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _server_fresh(path: Path, ca: x509.Certificate, now: datetime.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        path.with_name("server.key").stat()
    except (OSError, ValueError):
        return False
    return cert.issuer == ca.subject and cert.not_valid_after_utc - RENEW_BEFORE > now and \
        cert.not_valid_after_utc <= ca.not_valid_after_utc


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_ca(f: TlsFiles, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "migrator sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "migrator sandbox CA (loopback only)")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.NameConstraints(
                permitted_subtrees=[x509.DNSName("localhost"), *(x509.IPAddress(n) for n in _LOOPBACK_NETS)],
                excluded_subtrees=None), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    replace_atomically(_key_path(f), _pem_key(key), mode=0o600)
    _write_public(f.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _new_server(f: TlsFiles, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
                now: datetime.datetime) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + datetime.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    replace_atomically(f.server_key, _pem_key(key), mode=0o600)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    _write_public(f.server_cert, chain)


def _machine_roots(inside: Path) -> bytes:
    """The roots this machine trusts today: the file SSL_CERT_FILE names (unless it is the sandbox's own
    bundle), else OpenSSL's default file, else certifi's (requests' own)."""
    candidates = [os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().openssl_cafile]
    for name in candidates:
        if not name:
            continue
        path = Path(name)
        if path.resolve().parent == inside.resolve():
            continue
        try:
            return path.read_bytes()
        except OSError:
            continue
    try:
        import certifi
    except ImportError:
        return b""
    return Path(certifi.where()).read_bytes()


def _write_bundle(f: TlsFiles) -> None:
    roots = _machine_roots(f.bundle.parent)
    ca = f.ca_cert.read_bytes()
    _write_public(f.bundle, ca + (b"\n" + roots if roots else b""))


def _write_public(path: Path, data: bytes) -> None:
    replace_atomically(path, data, mode=0o644)
