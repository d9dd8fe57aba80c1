"""One store per scheme, built lazily from resolved settings and shared across threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from migrator.config import EndpointSettings, TransferSettings
from migrator.endpoints import require_loopback
from migrator.errors import InputError
from migrator.stores.base import ObjectStore
from migrator.uri import ObjectURI


def _s3(e: EndpointSettings, t: TransferSettings) -> ObjectStore:
    from migrator.stores.s3 import S3Store

    return S3Store(endpoint_url=e.s3_endpoint, region=e.aws_region, part_size=t.part_size,
                   multipart_threshold=t.multipart_threshold, parts_in_flight=t.parts_in_flight,
                   max_pool_connections=t.max_pool_connections, allow_non_loopback=not e.sandbox)


def _gcs(e: EndpointSettings, t: TransferSettings) -> ObjectStore:
    from migrator.stores.gcs import GcsStore

    return GcsStore(endpoint=e.gcs_endpoint, part_size=t.part_size, multipart_threshold=t.multipart_threshold,
                    allow_non_loopback=not e.sandbox)


def _oci(e: EndpointSettings, t: TransferSettings) -> ObjectStore:
    from migrator.stores.oci import OciStore

    return OciStore(e.oci_config, e.oci_profile, e.oci_endpoint, part_size=t.part_size,
                    multipart_threshold=t.multipart_threshold, parts_in_flight=t.parts_in_flight,
                    allow_non_loopback=not e.sandbox)


_FACTORIES: dict[str, Callable[[EndpointSettings, TransferSettings], ObjectStore]] = {
    "s3": _s3, "gs": _gcs, "oci": _oci,
}


class Stores:
    def __init__(self, endpoints: EndpointSettings, transfer: TransferSettings | None = None) -> None:
        self.endpoints = endpoints
        self.transfer = transfer or TransferSettings()
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()
        if endpoints.sandbox:
            for url, what in ((endpoints.s3_endpoint, "S3"), (endpoints.gcs_endpoint, "GCS"),
                              (endpoints.oci_endpoint, "OCI")):
                require_loopback(url, f"sandbox {what}")

    def get(self, scheme: str) -> ObjectStore:
        with self._lock:
            store = self._stores.get(scheme)
            if store is None:
                factory = _FACTORIES.get(scheme)
                if factory is None:
                    raise InputError(f"no store for scheme {scheme!r}")
                store = factory(self.endpoints, self.transfer)
                self._stores[scheme] = store
            return store

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        return self.get(uri.scheme)
