"""Object addresses: ``s3://bucket/key``, ``gs://bucket/key``, ``oci://namespace/bucket/key``.

The key is everything after the bucket's slash, taken literally: no percent-decoding, so keys with
``%``, ``+``, ``?``, ``#``, ``..`` and leading slashes round-trip.
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
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, order=True)
class ObjectURI:
    scheme: str
    bucket: str
    key: str
    namespace: str = ""

    def __str__(self) -> str:
        if self.scheme == "oci":
            return f"oci://{self.namespace}/{self.bucket}/{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}"

    @property
    def location(self) -> str:
        """The bucket as a URI prefix, e.g. ``s3://bucket``: one place objects can live."""
        if self.scheme == "oci":
            return f"oci://{self.namespace}/{self.bucket}"
        return f"{self.scheme}://{self.bucket}"


def parse_uri(text: str, *, field: str | None = None) -> ObjectURI:
    """Parse an object URI or raise InputError naming what is wrong."""
    if not isinstance(text, str) or not text:
        raise InputError("empty object URI", field=field)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InputError(f"not an object URI (want s3://, gs:// or oci://): {text!r}", field=field)
    if scheme not in SCHEMES:
        raise InputError(f"unknown scheme {scheme!r} in {text!r} (want s3, gs or oci)", field=field)
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
    return ObjectURI(scheme=scheme, bucket=bucket, key=key, namespace=namespace)
