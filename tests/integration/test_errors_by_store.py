"""The one error table and the one retry layer, through every adapter against the sandbox's endpoints.

Each endpoint's fault hook (POST /_emulator/faults, migrator/sandbox/faults.py) answers the write with the
same status, and the endpoint counts the requests it got: the same answer must come out as the same error,
retried (or not) the same number of times, from S3, GCS and OCI alike.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator

import pytest

from migrator import retry
from migrator.config import TransferSettings
from migrator.errors import DigestRefused, StoreError
from migrator.sandbox.buckets import create_bucket
from migrator.sandbox.control import SandboxState
from migrator.sandbox.faults import FaultPlan, clear_faults, get_faults, set_faults
from migrator.stores.base import PutRequest
from migrator.stores.registry import Stores
from migrator.transfer import BufferBudget, copy_version
from migrator.uri import ObjectURI
from tests.conftest import unique

SCHEMES = ("s3", "gs", "oci")
PUT_OPERATION = {"s3": "PutObject", "gs": "objects.insert", "oci": "PutObject"}
DATA = bytes(range(256)) * 64   # 16 KiB: one request on every adapter


def _url(sandbox: SandboxState, scheme: str) -> str:
    return {"s3": sandbox.s3.url, "gs": sandbox.gcs.url, "oci": sandbox.oci.url}[scheme]


def _uri(sandbox: SandboxState, scheme: str, key: str) -> ObjectURI:
    bucket = unique("errors")
    create_bucket(sandbox, scheme, bucket)
    return ObjectURI(scheme, bucket, key, sandbox.oci_namespace if scheme == "oci" else "")


class Faults:
    """One fault plan on one endpoint's write operation; counts that operation's requests from now on."""

    def __init__(self, url: str, operation: str) -> None:
        self.url, self.operation = url, operation
        self._before = self._requests()

    def _requests(self) -> int:
        return int(get_faults(self.url)["requests"].get(self.operation, 0))

    def answer(self, kind: str) -> None:
        set_faults(self.url, FaultPlan(rate=1.0, kinds=frozenset({kind}), operations=frozenset({self.operation})))
        self._before = self._requests()

    @property
    def requests(self) -> int:
        return self._requests() - self._before


@pytest.fixture(params=SCHEMES)
def target(request: pytest.FixtureRequest, sandbox: SandboxState) -> Iterator[tuple[ObjectURI, Faults]]:
    scheme = str(request.param)
    uri = _uri(sandbox, scheme, "o")
    faults = Faults(_url(sandbox, scheme), PUT_OPERATION[scheme])
    try:
        yield uri, faults
    finally:
        clear_faults(faults.url)


def _put(stores: Stores, uri: ObjectURI) -> None:
    stores.for_uri(uri).put(uri, io.BytesIO(DATA), PutRequest(size=len(DATA)))


def test_a_501_is_not_retried_by_any_adapter(target: tuple[ObjectURI, Faults], stores: Stores) -> None:
    uri, faults = target
    faults.answer("501")
    with pytest.raises(StoreError) as err:
        _put(stores, uri)
    assert type(err.value) is StoreError and (err.value.status, err.value.retryable) == (501, False)
    assert faults.requests == 1


def test_a_503_is_asked_six_times_by_every_adapter(target: tuple[ObjectURI, Faults], stores: Stores) -> None:
    uri, faults = target
    faults.answer("503-slowdown")
    with pytest.raises(StoreError) as err:
        _put(stores, uri)
    assert (err.value.status, err.value.retryable) == (503, True)
    assert faults.requests == retry.DEFAULT_ATTEMPTS == 6


def test_bytes_damaged_on_the_way_are_one_refusal_from_every_adapter(target: tuple[ObjectURI, Faults],
                                                                     stores: Stores) -> None:
    uri, faults = target
    faults.answer("flip-put")   # the endpoint checks the flipped body against the digests sent with it
    with pytest.raises(DigestRefused) as err:
        _put(stores, uri)
    assert err.value.status == 400 and not err.value.retryable
    assert faults.requests == 1
    clear_faults(faults.url)
    _put(stores, uri)           # nothing was stored: the if-none-match write lands now


def test_the_pipelines_retried_copy_makes_six_requests_in_all(target: tuple[ObjectURI, Faults], stores: Stores,
                                                              sandbox: SandboxState) -> None:
    dst_uri, faults = target
    src_uri = _uri(sandbox, "s3", "source")
    src = stores.for_uri(src_uri)
    src.put(src_uri, io.BytesIO(DATA), PutRequest(size=len(DATA)))
    info = src.stat(src_uri)
    faults.answer("503-slowdown")
    with pytest.raises(StoreError) as err:
        # As pipeline._copy_one calls it: the outer retry owns the attempts, the store's own does not retry.
        retry.call(functools.partial(copy_version, src, src_uri, info.version, stores.for_uri(dst_uri), dst_uri,
                                     expected_size=len(DATA), expected_etag=info.etag,
                                     budget=BufferBudget(TransferSettings().buffer_memory)))
    assert err.value.retryable
    assert faults.requests == 6   # was 6 x 6
