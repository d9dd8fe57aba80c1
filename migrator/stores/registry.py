"""One store per scheme, built lazily from resolved settings and shared across threads.

Every adapter gets the same ``StoreTransfer`` value (see its docstring for what each SDK can use). With
``endpoints.sandbox`` set, every endpoint must be loopback: that is checked when the registry is built,
before any store exists or any request is made, and again by each adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from migrator.endpoints import require_loopback
from migrator.errors import InputError
from migrator.stores.base import ObjectStore
from migrator.stores.settings import StoreSettings
from migrator.uri import ObjectURI


def _s3(s: StoreSettings) -> ObjectStore:
    from migrator.stores.s3 import S3Store

    e = s.endpoints
    return S3Store(endpoint_url=e.s3_endpoint, region=e.aws_region, transfer=s.transfer,
                   allow_non_loopback=not e.sandbox)


def _gcs(s: StoreSettings) -> ObjectStore:
    from migrator.stores.gcs import GcsStore

    e = s.endpoints
    return GcsStore(endpoint=e.gcs_endpoint, transfer=s.transfer, allow_non_loopback=not e.sandbox)


def _oci(s: StoreSettings) -> ObjectStore:
    from migrator.stores.oci import OciStore

    e = s.endpoints
    return OciStore(s.load_oci_config(e.oci_config, e.oci_profile), e.oci_endpoint, transfer=s.transfer,
                    allow_non_loopback=not e.sandbox)


_FACTORIES: dict[str, Callable[[StoreSettings], ObjectStore]] = {
    "s3": _s3, "gs": _gcs, "oci": _oci,
}


class Stores:
    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()
        e = settings.endpoints
        if e.sandbox:
            for url, what in ((e.s3_endpoint, "S3"), (e.gcs_endpoint, "GCS"), (e.oci_endpoint, "OCI")):
                require_loopback(url, f"sandbox {what}")

    def get(self, scheme: str) -> ObjectStore:
        with self._lock:
            store = self._stores.get(scheme)
            if store is None:
                factory = _FACTORIES.get(scheme)
                if factory is None:
                    raise InputError(f"no store for scheme {scheme!r}")
                store = factory(self.settings)
                self._stores[scheme] = store
            return store

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        return self.get(uri.scheme)
