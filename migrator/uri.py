"""Object addresses: ``s3://bucket/key``, ``gs://bucket/key``, ``oci://namespace/bucket/key``, and the
locations they live in: ``s3://bucket``, ``gs://bucket``, ``oci://namespace/bucket``.

The key is everything after the bucket's slash, taken literally: no percent-decoding, so keys with
``%``, ``+``, ``?``, ``#``, ``..`` and leading slashes round-trip.

A ``Location`` is one bucket as a value (scheme, bucket and, on OCI, namespace): what a store's bucket-level
calls take, so that no part of the address is lost between a URI and the store. Its text, ``str(location)``,
is the one written in records, attestations and reports.

A wave that spans several endpoints names them (``[locations.NAME]`` in the wave file), and an address may
say which one it means: ``s3://dc@users/key``, ``oci://oci-us@namespace/bucket/key``. That is the URI's
userinfo; no bucket or namespace name may hold ``@``, so the form is unambiguous, and an address without it
means what it always has. ``at`` is that name ("" when there is none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from migrator.errors import InputError

SCHEMES = ("s3", "gs", "oci")

# Bucket names: S3 3-63 of [a-z0-9.-]; GCS also allows '_' (and dotted names up to 222); OCI allows
# letters, digits, '-', '_' and '.' up to 256. Checked loosely per scheme, strictly enough to catch typos.
_BUCKET = {
    "s3": re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"),
    "gs": re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$"),
    "oci": re.compile(r"^[A-Za-z0-9._\-]{1,256}$"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
LOCATION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class Location:
    """One bucket: ``s3://bucket``, ``gs://bucket`` or ``oci://namespace/bucket``. Hashable, so it keys dicts.

    ``namespace`` is OCI's; None elsewhere, and on an OCI location that does not name one (the store's own
    namespace then applies). An empty namespace is None, so equal locations compare equal.
    """

    scheme: str
    bucket: str
    namespace: str | None = None
    at: str = ""                      # the named location (wave file) holding the bucket; "" = the default

    def __post_init__(self) -> None:
        if self.namespace == "":
            object.__setattr__(self, "namespace", None)

    def __str__(self) -> str:
        at = f"{self.at}@" if self.at else ""
        if self.scheme == "oci":
            return f"oci://{at}{self.namespace or ''}/{self.bucket}"
        return f"{self.scheme}://{at}{self.bucket}"

    def uri(self, key: str) -> ObjectURI:
        """The object ``key`` in this bucket."""
        return ObjectURI(self.scheme, self.bucket, key, self.namespace or "", self.at)

    def placed(self, at: str) -> Location:
        """The same bucket, named as held by location ``at``."""
        return Location(self.scheme, self.bucket, self.namespace, at)


@dataclass(frozen=True, order=True)
class ObjectURI:
    scheme: str
    bucket: str
    key: str
    namespace: str = ""
    at: str = ""                      # the named location (wave file) holding the bucket; "" = the default

    def __str__(self) -> str:
        at = f"{self.at}@" if self.at else ""
        if self.scheme == "oci":
            return f"oci://{at}{self.namespace}/{self.bucket}/{self.key}"
        return f"{self.scheme}://{at}{self.bucket}/{self.key}"

    @property
    def location(self) -> Location:
        """The bucket the object lives in; ``str()`` of it is the URI's prefix, e.g. ``s3://bucket``."""
        return Location(self.scheme, self.bucket, self.namespace or None, self.at)

    def placed(self, at: str) -> ObjectURI:
        """The same object, named as held by location ``at``."""
        return ObjectURI(self.scheme, self.bucket, self.key, self.namespace, at)

    @property
    def unplaced(self) -> ObjectURI:
        """The address without its location name, as the cloud itself knows it."""
        return ObjectURI(self.scheme, self.bucket, self.key, self.namespace)


def _split_at(rest: str, text: str, field: str | None) -> tuple[str, str]:
    """``NAME@rest`` -> (NAME, rest); the name must be a location name. No '@' -> ("", rest)."""
    head, sep, tail = rest.partition("/")
    if "@" not in head:
        return "", rest
    at, _, head = head.partition("@")
    if not LOCATION_NAME.match(at):
        raise InputError(f"invalid location name {at!r} in {text!r} (want [a-z][a-z0-9-]*, up to 32)", field=field)
    return at, head + sep + tail


def split_location(text: str, *, field: str | None = None) -> tuple[Location, str]:
    """Parse ``scheme://bucket[/rest]`` (``oci://namespace/bucket[/rest]``) into the location and the text
    after the bucket's slash ("" when there is none), or raise InputError naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise InputError("empty location", field=field)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InputError(f"not a location (want s3://, gs:// or oci://): {text!r}", field=field)
    if scheme not in SCHEMES:
        raise InputError(f"unknown scheme {scheme!r} in {text!r} (want s3, gs or oci)", field=field)
    at, rest = _split_at(rest, text, field)
    namespace = None
    if scheme == "oci":
        namespace, sep, rest = rest.partition("/")
        if not sep or not _NAMESPACE.match(namespace):
            raise InputError(f"oci location needs oci://namespace/bucket: {text!r}", field=field)
    bucket, _, tail = rest.partition("/")
    if not _BUCKET[scheme].match(bucket):
        raise InputError(f"invalid {scheme} bucket name {bucket!r} in {text!r}", field=field)
    return Location(scheme, bucket, namespace, at), tail


def parse_location(text: str, *, field: str | None = None) -> Location:
    """Parse a location's text (``str(location)``: ``s3://bucket``, ``gs://bucket``, ``oci://namespace/bucket``)
    or raise InputError naming what is wrong. Anything after the bucket is refused."""
    location, tail = split_location(text, field=field)
    if tail or text.endswith("/"):
        raise InputError(f"a location names a bucket, not a key or prefix: {text!r}", field=field)
    return location


def parse_uri(text: str, *, field: str | None = None) -> ObjectURI:
    """Parse an object URI or raise InputError naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise InputError("empty object URI", field=field)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InputError(f"not an object URI (want s3://, gs:// or oci://): {text!r}", field=field)
    if scheme not in SCHEMES:
        raise InputError(f"unknown scheme {scheme!r} in {text!r} (want s3, gs or oci)", field=field)
    at, rest = _split_at(rest, text, field)
    namespace = ""
    if scheme == "oci":
        namespace, sep, rest = rest.partition("/")
        if not sep or not _NAMESPACE.match(namespace):
            raise InputError(f"oci URI needs oci://namespace/bucket/key: {text!r}", field=field)
    bucket, sep, key = rest.partition("/")
    if not sep or not key:
        raise InputError(f"URI has no object key: {text!r}", field=field)
    if not _BUCKET[scheme].match(bucket):
        raise InputError(f"invalid {scheme} bucket name {bucket!r} in {text!r}", field=field)
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InputError(f"object key longer than {MAX_KEY_BYTES} bytes in {text[:80]!r}...", field=field)
    if _CONTROL.search(key):
        raise InputError(f"object key has control characters: {text!r}", field=field)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"object key is not valid UTF-8: {text!r}", field=field) from None
    return ObjectURI(scheme=scheme, bucket=bucket, key=key, namespace=namespace, at=at)
