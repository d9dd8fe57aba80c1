"""One store per location, built lazily from resolved settings and shared across threads.

A URI that names a location (``s3://dc@users/k``: ``uri.at``) is served by that location's store, built
from its own endpoint, region, credentials and CA; a URI without one by the scheme's default store, built
from the environment's endpoints as before. Every adapter gets the same ``StoreTransfer`` value (see its
docstring for what each SDK can use). With ``endpoints.sandbox`` set, every endpoint must be loopback: that
is checked when the registry is built, before any store exists or any request is made, and again by each
adapter.

Caps: the registry builds the wave's token buckets once (``migrator.limits.Caps``), so the wave-wide
bucket of each kind is ONE object shared by every store it builds; each store gets its location's
``StoreLimits`` (the location's buckets and the wave's; a store of no named location, the wave's only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from migrator.endpoints import require_loopback
from migrator.errors import InputError, UnsafeEndpointError
from migrator.estate import LocationSpec
from migrator.limits import Caps, StoreLimits
from migrator.stores.base import ObjectStore
from migrator.stores.moto_inprocess import require_mock
from migrator.stores.settings import StoreSettings
from migrator.uri import Location, ObjectURI


def _s3(s: StoreSettings, spec: LocationSpec | None, limits: StoreLimits) -> ObjectStore:
    from migrator.stores.s3 import S3Store

    e = s.endpoints
    mock = e.s3_inprocess_mock
    loopback_only = e.sandbox and mock is None   # under an in-process mock its own guard replaces loopback
    if spec is None:
        return S3Store(endpoint_url=e.s3_endpoint, region=e.aws_region, transfer=s.transfer,
                       allow_non_loopback=not loopback_only, limits=limits, inprocess_mock=mock)
    return S3Store(endpoint_url=spec.endpoint, region=spec.region, transfer=s.transfer,
                   allow_non_loopback=not loopback_only, profile=spec.profile, addressing_style=spec.addressing_style,
                   ca_bundle=spec.ca_bundle, expected_owner=spec.owner, limits=limits, inprocess_mock=mock)


def _gcs(s: StoreSettings, spec: LocationSpec | None, limits: StoreLimits) -> ObjectStore:
    from migrator.stores.gcs import GcsStore

    e = s.endpoints
    if spec is None:
        return GcsStore(endpoint=e.gcs_endpoint, transfer=s.transfer, allow_non_loopback=not e.sandbox,
                        limits=limits)
    return GcsStore(endpoint=spec.endpoint, transfer=s.transfer, allow_non_loopback=not e.sandbox,
                    credentials_file=spec.credentials_file, ca_bundle=spec.ca_bundle, limits=limits)


def _oci(s: StoreSettings, spec: LocationSpec | None, limits: StoreLimits) -> ObjectStore:
    from migrator.stores.oci import OciStore

    e = s.endpoints
    if spec is None:
        return OciStore(s.load_oci_config(e.oci_config, e.oci_profile), e.oci_endpoint, transfer=s.transfer,
                        allow_non_loopback=not e.sandbox, limits=limits)
    try:
        config = dict(s.load_oci_config(spec.config_file, spec.profile or "DEFAULT"))
    except InputError as exc:   # the location's config, not the environment's: name its field
        raise InputError(f"location {spec.name!r}: {exc.args[0]}", field=f"locations.{spec.name}.config_file") \
            from None
    if spec.region:
        config["region"] = spec.region   # the location's region picks the SDK's endpoint when none is given
    return OciStore(config, spec.endpoint, transfer=s.transfer, allow_non_loopback=not e.sandbox,
                    namespace=spec.owner, ca_bundle=spec.ca_bundle, limits=limits)


_FACTORIES: dict[str, Callable[[StoreSettings, LocationSpec | None, StoreLimits], ObjectStore]] = {
    "s3": _s3, "gs": _gcs, "oci": _oci,
}


class Stores:
    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self._stores: dict[tuple[str, str], ObjectStore] = {}
        self._lock = threading.Lock()
        self._specs = {spec.name: spec for spec in settings.locations}
        self.caps = Caps(settings.rates, {spec.name: spec.rates for spec in settings.locations})
        e = settings.endpoints
        if e.s3_inprocess_mock is not None:
            # No S3 endpoint to check: the mock must be answering, and no S3 endpoint may be named at all
            # (moto answers AWS's own hostnames; anything else would leave the process).
            require_mock()
            if e.s3_endpoint is not None:
                raise UnsafeEndpointError(f"MIGRATOR_S3_INPROCESS_MOCK=moto answers AWS's own endpoints: unset "
                                          f"AWS_ENDPOINT_URL ({e.s3_endpoint!r})")
            for spec in settings.locations:
                if spec.kind == "s3" and spec.endpoint is not None:
                    raise UnsafeEndpointError(f"MIGRATOR_S3_INPROCESS_MOCK=moto answers AWS's own endpoints: "
                                              f"location {spec.name!r} names {spec.endpoint!r}")
        if e.sandbox:
            urls = [(e.gcs_endpoint, "GCS"), (e.oci_endpoint, "OCI")]
            if e.s3_inprocess_mock is None:
                urls.insert(0, (e.s3_endpoint, "S3"))
            else:
                # An S3-only suite under the mock sets no other endpoint; an adapter built without one
                # refuses then (a sandbox-bound adapter needs an explicit loopback endpoint).
                urls = [(url, what) for url, what in urls if url is not None]
            for url, what in urls:
                require_loopback(url, f"sandbox {what}")
            for spec in settings.locations:
                if not (spec.kind == "s3" and e.s3_inprocess_mock is not None):
                    require_loopback(spec.endpoint, f"sandbox location {spec.name!r}")

    def get(self, scheme: str, at: str = "") -> ObjectStore:
        """The store of location ``at`` (which must be of kind ``scheme``), or the scheme's default store."""
        with self._lock:
            store = self._stores.get((scheme, at))
            if store is None:
                factory = _FACTORIES.get(scheme)
                if factory is None:
                    raise InputError(f"no store for scheme {scheme!r}")
                spec = None
                if at:
                    spec = self._specs.get(at)
                    if spec is None:
                        raise InputError(f"no location named {at!r} in the wave file")
                    if spec.kind != scheme:
                        raise InputError(f"location {at!r} is {spec.kind}, not {scheme}")
                store = factory(self.settings, spec, self.caps.limits(at or None))
                self._stores[(scheme, at)] = store
            return store

    def use(self, store: ObjectStore, scheme: str, at: str = "") -> None:
        """Serve ``scheme`` (of location ``at``) with ``store``: for tests that wrap an adapter."""
        with self._lock:
            self._stores[(scheme, at)] = store

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        return self.get(uri.scheme, uri.at)

    def for_location(self, location: Location) -> ObjectStore:
        return self.get(location.scheme, location.at)
