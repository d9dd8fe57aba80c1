"""The OCI Vault (KMS) subset the auditor issues use, served by the OCI emulator on the same port.

The ``oci`` SDK's ``KmsManagementClient`` and ``KmsCryptoClient`` take a ``service_endpoint`` per client, so
both point at the emulator's URL and send these REST paths (API version ``20180608``):

==========================================  =====================  ====================================
path                                        operation              SDK call
==========================================  =====================  ====================================
``POST /20180608/keys``                     CreateKey              ``KmsManagementClient.create_key``
``GET  /20180608/keys?compartmentId=``      ListKeys               ``list_keys``
``GET  /20180608/keys/{keyId}``             GetKey                 ``get_key``
``POST /20180608/keys/{keyId}/keyVersions``  CreateKeyVersion       ``create_key_version`` (rotation)
``GET  /20180608/keys/{keyId}/keyVersions``  ListKeyVersions        ``list_key_versions``
``GET  .../keyVersions/{keyVersionId}``     GetKeyVersion          ``get_key_version`` (``publicKey`` PEM)
``POST /20180608/sign``                     Sign                   ``KmsCryptoClient.sign``
``POST /20180608/verify``                   Verify                 ``KmsCryptoClient.verify``
==========================================  =====================  ====================================

Only ECDSA keys exist (P-256, P-384, P-521: ``keyShape.length`` 32, 48 or 66 bytes). Signatures are real
ASN.1 DER ECDSA signatures: with ``messageType`` ``DIGEST`` the message is the (base64) digest, signed as
prehashed, and its length must be the algorithm's digest size; with ``RAW`` the service hashes the message,
which may be at most 4096 bytes as OCI documents. The algorithm must match the key's curve
(``ECDSA_SHA_256`` for P-256, ``ECDSA_SHA_384`` for P-384, ``ECDSA_SHA_512`` for P-521). Keys are
``ENABLED`` as soon as they are created (the real service passes through ``CREATING``). Requests are signed
and checked by the emulator like every other path.

One module holds the vault's keys (``Key``, ``KeyVersion``), its operations and their routing: the eight
paths above are one table in ``KmsVault.route``, and each handler takes the request body and query and
returns ``(status, JSON value, headers)`` for the emulator's HTTP side to write. Errors are the sandbox's
one :class:`~migrator.sandbox.base.ApiError`, written as OCI's JSON error body.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from migrator.sandbox.base import ApiError, iso_millis

API_VERSION = "20180608"
MAX_RAW_MESSAGE = 4096
VAULT_ID = "ocid1.vault.oc1.sandbox.vault"

# curveId -> (key length in bytes, curve, the one signing algorithm OCI pairs with it)
_CURVES: dict[str, tuple[int, type[ec.EllipticCurve], str]] = {
    "NIST_P256": (32, ec.SECP256R1, "ECDSA_SHA_256"),
    "NIST_P384": (48, ec.SECP384R1, "ECDSA_SHA_384"),
    "NIST_P521": (66, ec.SECP521R1, "ECDSA_SHA_512"),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "ECDSA_SHA_256": hashes.SHA256, "ECDSA_SHA_384": hashes.SHA384, "ECDSA_SHA_512": hashes.SHA512,
}


@dataclass
class KeyVersion:
    version_id: str
    private_key: ec.EllipticCurvePrivateKey
    created: datetime

    def public_pem(self) -> str:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


@dataclass
class Key:
    key_id: str
    compartment_id: str
    display_name: str
    curve_id: str
    protection_mode: str
    created: datetime
    versions: list[KeyVersion] = field(default_factory=list)   # oldest first; the last is current
    etag: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def current(self) -> KeyVersion:
        return self.versions[-1]


def json_details(body: bytes) -> dict[str, Any]:
    """An OCI request body: one JSON object (400 ``InvalidParameter`` otherwise); object storage's too."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "InvalidParameter", "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "InvalidParameter", "request body must be a JSON object")
    return value


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "InvalidParameter", f"{what} is required (base64)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "InvalidParameter", f"{what} is not valid base64") from None


Response = tuple[int, Any, dict[str, str]]   # status, JSON value, extra headers
Handler = Callable[[bytes, dict[str, str]], Response]


class KmsVault:
    """Keys and the crypto operations. ``route`` maps a request to an operation name and a handler."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Key] = {}

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()

    # -- routing

    @staticmethod
    def handles(path: str) -> bool:
        return path == f"/{API_VERSION}" or path.startswith(f"/{API_VERSION}/")

    def route(self, method: str, path: str) -> tuple[str, Handler]:
        s = path.split("/")[2:]   # after "", API_VERSION
        n = len(s)
        if n == 1 and s[0] == "sign" and method == "POST":
            return "Sign", self._sign
        if n == 1 and s[0] == "verify" and method == "POST":
            return "Verify", self._verify
        if n >= 1 and s[0] == "keys":
            if n == 1:
                if method == "POST":
                    return "CreateKey", self._create_key
                if method == "GET":
                    return "ListKeys", self._list_keys
            key_id = s[1] if n >= 2 else ""
            if n == 2 and method == "GET":
                return "GetKey", lambda body, q: self._get_key(key_id)
            if n == 3 and s[2] == "keyVersions":
                if method == "POST":
                    return "CreateKeyVersion", lambda body, q: self._create_version(key_id)
                if method == "GET":
                    return "ListKeyVersions", lambda body, q: self._list_versions(key_id)
            if n == 4 and s[2] == "keyVersions" and method == "GET":
                return "GetKeyVersion", lambda body, q: self._get_version(key_id, s[3])
        raise ApiError(404, "NotFound", f"no vault operation for {method} {path}")

    # -- management plane

    def _key(self, key_id: str) -> Key:
        key = self._keys.get(key_id)
        if key is None:
            raise ApiError(404, "NotAuthorizedOrNotFound", f"key {key_id!r} was not found or is not authorized")
        return key

    def _key_json(self, key: Key) -> dict[str, Any]:
        length = _CURVES[key.curve_id][0]
        return {"compartmentId": key.compartment_id, "currentKeyVersion": key.current.version_id,
                "definedTags": {}, "freeformTags": {}, "displayName": key.display_name, "id": key.key_id,
                "keyShape": {"algorithm": "ECDSA", "length": length, "curveId": key.curve_id},
                "protectionMode": key.protection_mode, "lifecycleState": "ENABLED",
                "timeCreated": iso_millis(key.created), "vaultId": VAULT_ID, "isPrimary": True,
                "isAutoRotationEnabled": False}

    def _version_json(self, key: Key, v: KeyVersion) -> dict[str, Any]:
        return {"compartmentId": key.compartment_id, "id": v.version_id, "keyId": key.key_id,
                "publicKey": v.public_pem(), "lifecycleState": "ENABLED", "origin": "INTERNAL",
                "timeCreated": iso_millis(v.created), "vaultId": VAULT_ID, "isPrimary": True, "isAutoRotated": False}

    def _new_version(self, key: Key) -> KeyVersion:
        curve = _CURVES[key.curve_id][1]
        v = KeyVersion(f"ocid1.keyversion.oc1.sandbox.{uuid.uuid4().hex}", ec.generate_private_key(curve()),
                       self._clock())
        key.versions.append(v)
        key.etag = uuid.uuid4().hex
        return v

    def _create_key(self, body: bytes, query: dict[str, str]) -> Response:
        d = json_details(body)
        compartment, name, shape = d.get("compartmentId"), d.get("displayName"), d.get("keyShape")
        if not isinstance(compartment, str) or not compartment:
            raise ApiError(400, "InvalidParameter", "compartmentId is required")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "InvalidParameter", "displayName is required")
        if not isinstance(shape, dict):
            raise ApiError(400, "InvalidParameter", "keyShape is required")
        if shape.get("algorithm") != "ECDSA":
            raise ApiError(400, "InvalidParameter",
                           f"the sandbox vault makes ECDSA keys only, not {shape.get('algorithm')!r}")
        curve_id = shape.get("curveId") or "NIST_P256"
        if curve_id not in _CURVES or shape.get("length") != _CURVES[curve_id][0]:
            raise ApiError(400, "InvalidParameter",
                           f"keyShape length {shape.get('length')!r} does not fit curve {curve_id!r}")
        mode = d.get("protectionMode") or "HSM"
        if mode not in ("HSM", "SOFTWARE"):
            raise ApiError(400, "InvalidParameter", f"protectionMode {mode!r} is not supported")
        key = Key(f"ocid1.key.oc1.sandbox.{uuid.uuid4().hex}", compartment, name, curve_id, mode, self._clock())
        with self._lock:
            self._new_version(key)
            self._keys[key.key_id] = key
            return 200, self._key_json(key), {"etag": key.etag}

    def _list_keys(self, body: bytes, query: dict[str, str]) -> Response:
        compartment = query.get("compartmentId")
        if not compartment:
            raise ApiError(400, "MissingParameter", "compartmentId is required")
        with self._lock:
            keys = sorted((k for k in self._keys.values() if k.compartment_id == compartment),
                          key=lambda k: (k.created, k.key_id))
            items = [{k2: v for k2, v in self._key_json(k).items()
                      if k2 in ("compartmentId", "displayName", "id", "lifecycleState", "timeCreated",
                                "vaultId", "protectionMode", "freeformTags", "definedTags")}
                     | {"algorithm": "ECDSA"} for k in keys]
        return 200, items, {}

    def _get_key(self, key_id: str) -> Response:
        with self._lock:
            key = self._key(key_id)
            return 200, self._key_json(key), {"etag": key.etag}

    def _create_version(self, key_id: str) -> Response:
        with self._lock:
            key = self._key(key_id)
            v = self._new_version(key)
            return 200, self._version_json(key, v), {"etag": key.etag}

    def _list_versions(self, key_id: str) -> Response:
        with self._lock:
            key = self._key(key_id)
            return 200, [self._version_json(key, v) for v in reversed(key.versions)], {}

    def _get_version(self, key_id: str, version_id: str) -> Response:
        with self._lock:
            key = self._key(key_id)
            v = next((x for x in key.versions if x.version_id == version_id), None)
            if v is None:
                raise ApiError(404, "NotAuthorizedOrNotFound", f"key version {version_id!r} was not found")
            return 200, self._version_json(key, v), {"etag": key.etag}

    # -- crypto plane

    def _signing_input(self, d: dict[str, Any]) -> tuple[Key, KeyVersion, str, bytes, ec.ECDSA]:
        key_id = d.get("keyId")
        if not isinstance(key_id, str):
            raise ApiError(400, "InvalidParameter", "keyId is required")
        with self._lock:
            key = self._key(key_id)
            version_id = d.get("keyVersionId")
            if version_id is None:
                v = key.current
            else:
                found = next((x for x in key.versions if x.version_id == version_id), None)
                if found is None:
                    raise ApiError(404, "NotAuthorizedOrNotFound", f"key version {version_id!r} was not found")
                v = found
        algorithm = d.get("signingAlgorithm")
        if algorithm not in _HASHES:
            raise ApiError(400, "InvalidParameter", f"signingAlgorithm {algorithm!r} is not an ECDSA algorithm")
        if algorithm != _CURVES[key.curve_id][2]:
            raise ApiError(400, "InvalidParameter",
                           f"signingAlgorithm {algorithm} does not match the key's curve {key.curve_id}")
        message = _b64decode(d.get("message"), "message")
        digest_alg = _HASHES[algorithm]()
        message_type = d.get("messageType") or "RAW"
        if message_type == "DIGEST":
            if len(message) != digest_alg.digest_size:
                raise ApiError(400, "InvalidParameter",
                               f"a {algorithm} digest has {digest_alg.digest_size} bytes, not {len(message)}")
            scheme = ec.ECDSA(Prehashed(digest_alg))
        elif message_type == "RAW":
            if len(message) > MAX_RAW_MESSAGE:
                raise ApiError(400, "InvalidParameter",
                               f"a RAW message is at most {MAX_RAW_MESSAGE} bytes; send a DIGEST instead")
            scheme = ec.ECDSA(digest_alg)
        else:
            raise ApiError(400, "InvalidParameter", f"messageType must be RAW or DIGEST, not {message_type!r}")
        return key, v, algorithm, message, scheme

    def _sign(self, body: bytes, query: dict[str, str]) -> Response:
        key, v, algorithm, message, scheme = self._signing_input(json_details(body))
        signature = v.private_key.sign(message, scheme)
        return 200, {"keyId": key.key_id, "keyVersionId": v.version_id,
                     "signature": base64.b64encode(signature).decode("ascii"), "signingAlgorithm": algorithm}, {}

    def _verify(self, body: bytes, query: dict[str, str]) -> Response:
        d = json_details(body)
        _key, v, _algorithm, message, scheme = self._signing_input(d)
        signature = _b64decode(d.get("signature"), "signature")
        try:
            v.private_key.public_key().verify(signature, message, scheme)
            valid = True
        except (InvalidSignature, ValueError):
            valid = False
        return 200, {"isSignatureValid": valid}, {}
