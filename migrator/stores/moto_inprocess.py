"""S3 under moto's in-process mock (``mock_aws``, no server): the guard that replaces the loopback check.

A user's test suite that already mocks S3 with ``moto.mock_aws`` has no endpoint to check: boto3 resolves
AWS's own hostnames and moto's stubber answers each request before it leaves the process. So an explicit
setting (``MIGRATOR_S3_INPROCESS_MOCK=moto``, ``EndpointSettings.s3_inprocess_mock``) replaces the loopback
guard for S3 with three checks, any of which refuses (``UnsafeEndpointError``):

- when the store is built: moto's mock is active, the endpoint is AWS's default one (no ``AWS_ENDPOINT_URL``,
  no location endpoint), and the credentials botocore resolved are moto's fakes;
- on every request: the mock is still active, so a store that outlives ``mock_aws`` cannot reach AWS.

Stock moto (5.x) mishandles a ListObjectVersions KeyMarker without a VersionIdMarker: it drops the first
version after the marker and keeps the marker key's own versions, so a batched listing loses the first key
of every batch. :func:`fix_version_listing` translates such a marker into the pair moto handles correctly;
the guard applies it, and ``migrator.testing.moto`` documents it for users' own listings.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import sys
from typing import Any

from migrator.errors import UnsafeEndpointError

INPROCESS_MOCKS = ("moto",)
# moto's own fake credentials (mock_aws sets them), and the ones moto's documentation tells users to set.
MOTO_ACCESS_KEYS = frozenset({"FOOBARKEY", "testing"})
_FIXED = "_migrator_fixed_key_marker"


def mock_active() -> bool:
    """Whether moto's in-process mock is answering botocore now. Reads moto only if it was imported: a
    process that never imported moto has no mock."""
    models = sys.modules.get("moto.core.models")
    if models is None:
        return False
    stubber = getattr(models, "botocore_stubber", None)
    return bool(getattr(stubber, "enabled", False)) and getattr(models.MockAWS, "_nested_count", 0) > 0


def require_mock(what: str = "S3") -> None:
    if not mock_active():
        raise UnsafeEndpointError(f"{what}: MIGRATOR_S3_INPROCESS_MOCK=moto, but moto's mock is not active "
                                  "(run inside `with moto.mock_aws():` or under @mock_aws); nothing was sent")


def require_moto_credentials(access_key: str | None) -> None:
    if access_key not in MOTO_ACCESS_KEYS:
        raise UnsafeEndpointError("S3: MIGRATOR_S3_INPROCESS_MOCK=moto, but the credentials botocore found are "
                                  "not moto's fakes (AWS_ACCESS_KEY_ID FOOBARKEY or testing): refusing to "
                                  "build a client that could sign for a real account")


def refuse_unless_mocked(request: Any, **_: Any) -> None:
    """botocore ``before-send``: the per-request guard (moto's stubber answers after it, or nothing does)."""
    require_mock()


def fix_version_listing() -> None:
    """Make moto's ListObjectVersions treat a KeyMarker alone as S3 does: list every version of every key
    after the marker, none of the marker key's own. Process-wide and idempotent.

    moto skips to an exact (key, version id) pair correctly; a KeyMarker ``K`` alone becomes the pair of
    the last version (in moto's listing order) whose key is ``<= K``, or no marker when there is none.
    Listings with a delimiter are left alone (a marker there may be a common prefix)."""
    from moto.s3 import models

    original = models.S3Backend.list_object_versions
    if getattr(original, _FIXED, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def list_object_versions(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        given = bound.arguments
        marker = given.get("key_marker")
        if marker and not given.get("version_id_marker") and not given.get("delimiter"):
            bucket = self.buckets.get(given["bucket_name"])
            if bucket is not None:   # a missing bucket: moto's own error
                given["key_marker"], given["version_id_marker"] = _pair_before(models, bucket, marker)
        return original(*bound.args, **bound.kwargs)

    setattr(list_object_versions, _FIXED, True)
    models.S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]


def _pair_before(models: Any, bucket: Any, marker: str) -> tuple[str | None, str | None]:
    # The order moto lists in: by key, newest first within a key (moto.s3.models.list_object_versions).
    versions = list(itertools.chain(*(versions for _, versions in bucket.keys.iterlists())))
    versions.sort(key=lambda v: (v.name, -models.unix_time_millis(v.last_modified)))
    last = None
    for version in versions:
        if version.name > marker:
            break
        last = version
    return (None, None) if last is None else (str(last.name), str(last.version_id))
