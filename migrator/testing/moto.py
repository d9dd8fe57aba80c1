"""moto's in-process mock (``moto.mock_aws``), as users' own suites already use it, under migrator.

Set ``MIGRATOR_S3_INPROCESS_MOCK=moto`` (see :data:`INPROCESS_ENV`) and run migrator inside ``mock_aws``:
S3 is then answered in this process, with the loopback guard replaced by moto's own checks (the mock is
active when a store is built and on every request, the endpoint is AWS's default one, the credentials are
moto's fakes). GCS and OCI have no in-process mock: point them at the sandbox's endpoints
(``migrator_sandbox``, or ``migrator sandbox up``), which must be loopback.

:func:`fix_version_listing` makes moto's ListObjectVersions honour a KeyMarker alone as S3 does (stock moto
drops the first key after it). migrator applies it itself when it builds an S3 store under the mock; call it
yourself when your own code lists versions from a marker under ``mock_aws``.
"""

from __future__ import annotations

from migrator.stores.moto_inprocess import MOTO_ACCESS_KEYS, fix_version_listing, mock_active

INPROCESS_ENV = {"MIGRATOR_S3_INPROCESS_MOCK": "moto"}

__all__ = ["INPROCESS_ENV", "MOTO_ACCESS_KEYS", "fix_version_listing", "mock_active"]
