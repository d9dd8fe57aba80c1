"""The one error table (migrator/stores/errors.py) and each adapter's extraction into it, without an emulator.

The same answer (status and code) must come out as the same class, retryability and code from S3, GCS and
OCI alike: each adapter only reads its SDK's exception, the table decides.
"""

from __future__ import annotations

from typing import Any

import oci
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, SSLError
from google.api_core import exceptions as gexc

from migrator import retry
from migrator.errors import (
    AccessDenied,
    DigestRefused,
    MigratorError,
    NotFound,
    PreconditionFailed,
    StoreError,
)
from migrator.stores import errors as table
from migrator.stores import gcs, s3
from migrator.stores import oci as oci_store
from migrator.stores.errors import Cause, Failure, to_error


def _s3(status: int, code: str | None, headers: dict[str, str] | None = None) -> StoreError:
    error: dict[str, Any] = {"Code": code, "Message": "m"} if code else {}
    response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {},
                                                          "RequestId": "s3-req-1"}}
    return s3._translate("PUT s3://b/k", ClientError(response, "PutObject"))


def _gcs(status: int, reason: str | None = None, *, digests_sent: bool = False) -> StoreError:
    errors = [{"reason": reason}] if reason else []
    # from_http_status has no annotations in google-api-core: the declared type is its documented one.
    exc: gexc.GoogleAPICallError = gexc.from_http_status(status, "m", errors=errors)  # type: ignore[no-untyped-call]
    return _store_error(gcs.translate(exc, "gs://b/k", digests_sent=digests_sent))


def _store_error(err: MigratorError) -> StoreError:
    assert isinstance(err, StoreError), err
    return err


def _oci(status: int, code: str | None) -> StoreError:
    exc = oci.exceptions.ServiceError(status, code, {"opc-request-id": "oci-req-1"}, "m",
                                      request_id="oci-req-1")
    return _store_error(oci_store.translate(exc, "oci://ns/b/k"))


# ------------------------------------------------------------------------------------------------ the table

@pytest.mark.parametrize(("failure", "kind", "retryable", "code"), [
    # 1. refused digests, by code, whatever the status
    (Failure("m", 400, "BadDigest"), DigestRefused, False, "BadDigest"),
    (Failure("m", 400, "InvalidDigest"), DigestRefused, False, "InvalidDigest"),
    (Failure("m", 400, "XAmzContentSHA256Mismatch"), DigestRefused, False, "XAmzContentSHA256Mismatch"),
    (Failure("m", 400, "UnmatchedContentMD5"), DigestRefused, False, "UnmatchedContentMD5"),
    (Failure("m", 400, "UnmatchedContentCRC32C"), DigestRefused, False, "UnmatchedContentCRC32C"),
    # ... and GCS's bare 400 only where the request declared digests
    (Failure("m", 400, None, digests_sent=True), DigestRefused, False, "DigestRefused"),
    (Failure("m", 400, "invalid", digests_sent=True), DigestRefused, False, "invalid"),
    (Failure("m", 400, "required", digests_sent=True), StoreError, False, "required"),
    (Failure("m", 400, None), StoreError, False, "HTTP400"),
    (Failure("m", 400, "invalid"), StoreError, False, "invalid"),
    # 2-4. codes, then statuses
    (Failure("m", 404, None), NotFound, False, "NotFound"),
    (Failure("m", 404, "NoSuchVersion"), NotFound, False, "NoSuchVersion"),
    (Failure("m", 405, "DeleteMarker"), NotFound, False, "DeleteMarker"),
    (Failure("m", 412, None), PreconditionFailed, False, "PreconditionFailed"),
    (Failure("m", 409, "IfMatchFailed"), PreconditionFailed, False, "IfMatchFailed"),
    (Failure("m", 401, None), AccessDenied, False, "AccessDenied"),
    (Failure("m", 403, "retentionPolicyNotMet"), AccessDenied, False, "retentionPolicyNotMet"),
    (Failure("m", 403, "RequestTimeTooSkewed"), AccessDenied, False, "RequestTimeTooSkewed"),
    # 5. plain errors: retryable by status or by code
    (Failure("m", 408, None), StoreError, True, "HTTP408"),
    (Failure("m", 429, "TooManyRequests"), StoreError, True, "TooManyRequests"),
    (Failure("m", 400, "RequestTimeout"), StoreError, True, "RequestTimeout"),
    (Failure("m", 409, "ConditionalRequestConflict"), StoreError, True, "ConditionalRequestConflict"),
    (Failure("m", 409, "BucketNotEmpty"), StoreError, False, "BucketNotEmpty"),
    (Failure("m", None, None), StoreError, False, None),
    # no answer, and failures on our side
    (Failure("m", code="ConnectionError", cause=Cause.NO_ANSWER), StoreError, True, "ConnectionError"),
    (Failure("m", code="SSLError", cause=Cause.CLIENT), StoreError, False, "SSLError"),
    (Failure("m", code="NotFound", cause=Cause.CLIENT), StoreError, False, "NotFound"),  # a type name, not a code
])
def test_the_table_decides_class_retryability_and_code(failure: Failure, kind: type[StoreError], retryable: bool,
                                                       code: str | None) -> None:
    err = to_error(failure)
    assert type(err) is kind
    assert (err.retryable, err.code, err.status, str(err)) == (retryable, code, failure.status, "m")


@pytest.mark.parametrize("status", range(500, 600))
def test_only_500_502_503_504_are_retried_among_the_5xx(status: int) -> None:
    err = to_error(Failure("m", status, None))
    assert type(err) is StoreError and err.code == f"HTTP{status}"
    assert err.retryable is (status in (500, 502, 503, 504))
    assert retry.classify_status(status) is err.retryable


def test_the_policy_and_the_table_share_one_retryable_set() -> None:
    assert retry.RETRYABLE_STATUS is table.RETRYABLE_STATUS
    assert retry.RETRYABLE_EXCEPTIONS is table.NO_ANSWER_EXCEPTIONS
    assert table.RETRYABLE_STATUS == {408, 429, 500, 502, 503, 504}
    assert not table.RETRYABLE_CODES & (table.DIGEST_CODES | table.NOT_FOUND_CODES | table.PRECONDITION_CODES
                                        | table.ACCESS_DENIED_CODES)


def test_the_request_id_travels_with_the_error() -> None:
    assert to_error(Failure("m", 503, None, request_id="r-9")).request_id == "r-9"
    assert _s3(503, "SlowDown").request_id == "s3-req-1"
    assert _oci(503, "ServiceUnavailable").request_id == "oci-req-1"


# ------------------------------------------------------------------------- one answer, three adapters, one error

@pytest.mark.parametrize(("status", "kind", "retryable"), [
    (400, StoreError, False), (401, AccessDenied, False), (403, AccessDenied, False), (404, NotFound, False),
    (408, StoreError, True), (409, StoreError, False), (412, PreconditionFailed, False), (429, StoreError, True),
    (500, StoreError, True), (501, StoreError, False), (502, StoreError, True), (503, StoreError, True),
    (504, StoreError, True), (505, StoreError, False), (507, StoreError, False), (511, StoreError, False),
])
def test_the_same_status_is_the_same_error_from_every_adapter(status: int, kind: type[StoreError],
                                                               retryable: bool) -> None:
    # S3 always names a code, so give each cloud one no rule knows; GCS and OCI also without any.
    answers = [_s3(status, "Whatever"), _gcs(status), _gcs(status, "whatever"), _oci(status, "Whatever"),
               _oci(status, None)]
    for err in answers:
        assert isinstance(err, StoreError)
        assert (type(err), err.retryable, err.status) == (kind, retryable, status), err


def test_refused_digests_are_one_error_from_every_adapter() -> None:
    refused = [_s3(400, "BadDigest"), _s3(400, "InvalidDigest"), _oci(400, "UnmatchedContentMD5"),
               _oci(400, "UnmatchedContentSHA256"), _gcs(400, digests_sent=True),
               _gcs(400, "invalid", digests_sent=True)]
    for err in refused:
        assert type(err) is DigestRefused and isinstance(err, StoreError), err
        assert not err.retryable and err.status == 400
    # A GCS 400 to a request that sent no digests is a plain bad request, as before.
    plain = _gcs(400)
    assert type(plain) is StoreError and plain.code == "HTTP400"


def test_each_adapter_keeps_the_codes_its_callers_compare() -> None:
    # GCS: 404 and 412 carry the stable names, never GCS's own reasons (the removal step compares them).
    assert (type(_gcs(404, "notFound")), _gcs(404, "notFound").code) == (NotFound, "NotFound")
    assert _gcs(412, "conditionNotMet").code == "PreconditionFailed"
    assert _gcs(403, "retentionPolicyNotMet").code == "retentionPolicyNotMet"
    assert _gcs(503, "backendError").code == "backendError" and _gcs(503).code == "HTTP503"
    # OCI: the service's code, or the class's name when it sent none.
    assert _oci(404, "ObjectNotFound").code == "ObjectNotFound" and _oci(404, None).code == "NotFound"
    assert type(_oci(412, "IfMatchFailed")) is PreconditionFailed
    # S3: its code, or the status when the answer had no body (HEAD).
    assert _s3(404, None).code == "404" and _s3(503, "SlowDown").code == "SlowDown"
    assert str(_s3(503, "SlowDown")) == "PUT s3://b/k: SlowDown (HTTP 503)"


def test_s3_delete_marker_reads_are_not_found() -> None:
    err = _s3(405, "MethodNotAllowed", {"x-amz-delete-marker": "true"})
    assert type(err) is NotFound and err.code == "DeleteMarker" and "delete marker" in str(err)
    other = _s3(405, "MethodNotAllowed")
    assert type(other) is StoreError and not other.retryable


def test_failures_without_an_answer() -> None:
    refused = s3._translate("GET s3://b/k", EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert refused.retryable and refused.code == "EndpointConnectionError" and refused.status is None
    tls = s3._translate("GET s3://b/k", SSLError(endpoint_url="https://x", error=ValueError("bad cert")))
    assert not tls.retryable and tls.code == "SSLError"
    for translate in (gcs.translate, oci_store.translate):
        reset = translate(ConnectionResetError("reset"), "x")
        assert isinstance(reset, StoreError) and reset.retryable and reset.code == "ConnectionError"
        odd = translate(KeyError("surprise"), "x")
        assert isinstance(odd, StoreError) and not odd.retryable and odd.code == "KeyError"
