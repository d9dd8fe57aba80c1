"""The one table from a cloud's error answer to migrator's error classes, for every adapter.

An adapter reads what its SDK's exception says into a :class:`Failure` (HTTP status, the cloud's error
code, a message for people, the request id) and calls :func:`to_error`. It decides nothing else: which
class an error is and whether the retry policy may ask again are decided here, by status and code, never
by message text. ``code`` is the cloud's own: S3's ``Code``, OCI's ``code``, a GCS error ``reason``.

Rules for an answer, first match wins:

1. ``DigestRefused``: a code in :data:`DIGEST_CODES` (S3 ``BadDigest``, ``InvalidDigest``,
   ``XAmzContentSHA256Mismatch``; OCI ``UnmatchedContent*``), or a 400 whose code is GCS's ``invalid`` (or
   none) answering a request that declared digests of its body. GCS has no code of its own for a refused
   digest; its ``invalid`` also covers other bad requests, so it counts only where digests were sent
   (``Failure.digests_sent``), and the cloud's message stays in the error for people.
2. ``NotFound``: a code in :data:`NOT_FOUND_CODES`, or 404.
3. ``PreconditionFailed``: a code in :data:`PRECONDITION_CODES`, or 412.
4. ``AccessDenied``: a code in :data:`ACCESS_DENIED_CODES`, or 401 or 403.
5. Anything else is a plain ``StoreError``, retryable when its status is in :data:`RETRYABLE_STATUS` or its
   code in :data:`RETRYABLE_CODES`.

Codes are looked at before statuses (within each class) because they are the more precise; classes 1-4
are never retryable: asking again gets the same answer. A refused digest in particular is not retried
by the policy: the bytes were damaged on the way, and only the caller can read them again.

No answer at all (connection refused or reset, a timeout, a body cut short: :attr:`Cause.NO_ANSWER`) is
retryable; a failure of the SDK on our side (TLS set-up, an exception nobody expected: :attr:`Cause.CLIENT`)
is not.

The error's code is the cloud's; where it sent none, the class's own name (``NotFound``,
``PreconditionFailed``, ``AccessDenied``, ``DigestRefused``), or ``HTTP<status>`` for a plain error.

**The 5xx rule.** 500, 502, 503 and 504 are retried; every other 5xx (501 Not Implemented, 505 HTTP Version
Not Supported, 507 Insufficient Storage, 508 Loop Detected, 511 Network Authentication Required, and any
unassigned 5xx) is not. These say that the server cannot do this request at all (RFC 9110 15.6.2 and
15.6.6) or that an operator must act first (RFC 4918, 5842, 6585): a retry within seconds gets the same
answer, six times over, and delays the row's honest failure. The clouds' own SDK policies agree on 501:
botocore's standard mode retries 500, 502, 503 and 504, google-cloud-storage's default retry 429, 500, 502,
503 and 504, and the OCI SDK any 5xx except 501. Before this table GCS alone retried every 5xx.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from migrator.errors import AccessDenied, DigestRefused, NotFound, PreconditionFailed, StoreError

# 408 Request Timeout and 429 Too Many Requests, and the four 5xx that mean "not now" (the 5xx rule above).
RETRYABLE_STATUS: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
# Transient by code where the status alone would not say so (e.g. S3's RequestTimeout is a 400).
RETRYABLE_CODES: frozenset[str] = frozenset({
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "ConditionalRequestConflict",
    "RequestTimeTooSkewed",
})
# Connection-level failures from urllib3/requests/http.client derive from these builtins.
NO_ANSWER_EXCEPTIONS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

DIGEST_CODES: frozenset[str] = frozenset({
    "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",                               # S3
    "UnmatchedContentMD5", "UnmatchedContentCRC32C", "UnmatchedContentSHA256",             # OCI
    "UnmatchedContentSHA384",
    "InvalidChecksum",  # in the pipeline's list of refused digests before this table (no cloud documents it)
})
# GCS's reason for a bad request, including a body that does not match its declared md5Hash/crc32c.
GCS_INVALID = "invalid"
NOT_FOUND_CODES: frozenset[str] = frozenset({
    "NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NoSuchUpload", "NotFound",
    "ObjectLockConfigurationNotFoundError",
    "DeleteMarker",  # S3's 405 for a read of a delete marker, named so by the S3 adapter
})
PRECONDITION_CODES: frozenset[str] = frozenset({"PreconditionFailed", "IfMatchFailed", "IfNoneMatchFailed"})
ACCESS_DENIED_CODES: frozenset[str] = frozenset({"AccessDenied"})


class Cause(enum.Enum):
    """What kind of failure an adapter saw."""

    ANSWER = "answer"          # the cloud answered with an error status
    NO_ANSWER = "no answer"    # refused, reset, timed out or cut short: the request may or may not have run
    CLIENT = "client"          # the SDK failed on our side of the wire


@dataclass(frozen=True)
class Failure:
    """Everything an adapter extracts from its SDK's exception; the table looks at nothing else."""

    message: str
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    cause: Cause = Cause.ANSWER
    digests_sent: bool = False   # the request declared digests of its body (Content-MD5, md5Hash, crc32c)


@dataclass(frozen=True)
class Rule:
    """One row of the table: an answer with one of ``codes`` or ``statuses`` is an ``error``."""

    error: type[StoreError]
    codes: frozenset[str]
    statuses: frozenset[int]

    def matches(self, status: int | None, code: str | None) -> bool:
        return (code is not None and code in self.codes) or (status is not None and status in self.statuses)


TABLE: tuple[Rule, ...] = (
    Rule(DigestRefused, DIGEST_CODES, frozenset()),
    Rule(NotFound, NOT_FOUND_CODES, frozenset({404})),
    Rule(PreconditionFailed, PRECONDITION_CODES, frozenset({412})),
    Rule(AccessDenied, ACCESS_DENIED_CODES, frozenset({401, 403})),
)


def is_retryable(status: int | None, code: str | None = None) -> bool:
    """Whether a plain error (rule 5) with this status and code is worth asking again."""
    return (status is not None and status in RETRYABLE_STATUS) or (code is not None and code in RETRYABLE_CODES)


def classify(failure: Failure) -> tuple[type[StoreError], bool]:
    """The error class and whether the policy may retry: the table, without building the error."""
    if failure.cause is Cause.NO_ANSWER:
        return StoreError, True
    if failure.cause is Cause.CLIENT:
        return StoreError, False
    status, code = failure.status, failure.code
    if failure.digests_sent and status == 400 and code in (None, GCS_INVALID):
        return DigestRefused, False
    for rule in TABLE:
        if rule.matches(status, code):
            return rule.error, False
    return StoreError, is_retryable(status, code)


def to_error(failure: Failure) -> StoreError:
    """The migrator error for ``failure``, by :data:`TABLE` and the rules in this module's docstring."""
    error, retryable = classify(failure)
    code = failure.code
    if code is None:
        code = error.__name__ if error is not StoreError else (
            f"HTTP{failure.status}" if failure.status else None)
    return error(failure.message, status=failure.status, code=code, retryable=retryable,
                 request_id=failure.request_id)
