"""OCI's HTTP request signatures, verified against the sandbox's API public key (401 ``NotAuthenticated``).

Every request but the unsigned control paths is signed as the ``oci`` SDK signs it: ``Authorization:
Signature version="1",keyId="tenancy/user/fingerprint",algorithm="rsa-sha256",headers="...",signature="..."``.
The signed headers must include ``date`` (or ``x-date``), ``(request-target)`` and ``host``, and for a body
the caller says is signed also ``content-length``, ``content-type`` and ``x-content-sha256``, which must match
the body. The date is checked against real time (not the emulator's clock, which tests move forward while
the SDK signs with now), within ``CLOCK_SKEW_SECONDS``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from migrator.sandbox.base import ApiError, b64
from migrator.sandbox.oci_auth import fingerprint

CLOCK_SKEW_SECONDS = 300
_SIG_PARAM = re.compile(r'([a-zA-Z]+)="([^"]*)"')


class SignatureVerifier:
    """Checks requests signed with the one API key the sandbox issues."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        self.public_key = public_key
        self.fingerprint = fingerprint(public_key)

    def verify(self, method: str, target: str, headers: Any, body: bytes, body_required: bool) -> None:
        auth = headers.get("Authorization")
        if not auth or not auth.startswith("Signature "):
            raise ApiError(401, "NotAuthenticated", "The required information to complete authentication "
                           "was not provided.")
        params = dict(_SIG_PARAM.findall(auth[len("Signature "):]))
        if params.get("version", "1") != "1" or params.get("algorithm") != "rsa-sha256":
            raise ApiError(401, "NotAuthenticated", "unsupported signature version or algorithm")
        key_id = params.get("keyId", "").split("/")
        if len(key_id) != 3 or key_id[2] != self.fingerprint:
            raise ApiError(401, "NotAuthenticated", "unknown key id")
        signed = [h.lower() for h in params.get("headers", "date").split()]
        required = ["date", "(request-target)", "host"]
        if body_required:
            required += ["content-length", "content-type", "x-content-sha256"]
        missing = [h for h in required if h not in signed and not (h == "date" and "x-date" in signed)]
        if missing:
            raise ApiError(401, "NotAuthenticated", f"headers not signed: {' '.join(missing)}")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
                continue
            value = headers.get(name)
            if value is None:
                raise ApiError(401, "NotAuthenticated", f"signed header {name} is missing")
            lines.append(f"{name}: {value}")
        try:
            signature = base64.b64decode(params.get("signature", ""), validate=True)
            self.public_key.verify(signature, "\n".join(lines).encode("utf-8"), padding.PKCS1v15(),
                                   hashes.SHA256())
        except (InvalidSignature, binascii.Error, ValueError):
            raise ApiError(401, "NotAuthenticated", "The signature does not match the request") from None
        self._check_date(headers.get("x-date") or headers.get("date"))
        if "x-content-sha256" in signed:
            if b64(hashlib.sha256(body).digest()) != headers.get("x-content-sha256"):
                raise ApiError(401, "NotAuthenticated", "x-content-sha256 does not match the body")
        if "content-length" in signed and headers.get("content-length") != str(len(body)):
            raise ApiError(401, "NotAuthenticated", "content-length does not match the body")

    @staticmethod
    def _check_date(value: str | None) -> None:
        try:
            when = parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            when = None
        if when is None or when.tzinfo is None:
            raise ApiError(401, "NotAuthenticated", "missing or malformed date header")
        # Real time, not the emulator clock: tests move that one forward while the SDK signs with now.
        if abs((datetime.now(UTC) - when).total_seconds()) > CLOCK_SKEW_SECONDS:
            raise ApiError(401, "NotAuthenticated", "date header is too far from the server's clock")
