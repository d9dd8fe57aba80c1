"""The one retry policy. Errors are classified by type and status code, never by message text.

Adapters translate SDK exceptions through the one table (``migrator.stores.errors``) into StoreError
subclasses with ``retryable`` set; this module retries those and nothing else. SDK-internal
retries are switched off in the adapters so that this is the only policy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from migrator.errors import StoreError
from migrator.stores.errors import NO_ANSWER_EXCEPTIONS, RETRYABLE_STATUS

T = TypeVar("T")

__all__ = ["DEFAULT_ATTEMPTS", "RETRYABLE_EXCEPTIONS", "RETRYABLE_STATUS", "call", "classify_status",
           "retry_counts", "set_backoff"]

# Kept under this name for callers that classify connection failures themselves.
RETRYABLE_EXCEPTIONS = NO_ANSWER_EXCEPTIONS

DEFAULT_ATTEMPTS = 6
_backoff = {"enabled": os.environ.get("MIGRATOR_NO_BACKOFF", "") != "1"}
_counts_lock = threading.Lock()
retry_counts: dict[str, int] = {}


def set_backoff(enabled: bool) -> None:
    """Tests switch back-off off so that retries do not sleep."""
    _backoff["enabled"] = enabled


def classify_status(status: int | None) -> bool:
    return status is not None and status in RETRYABLE_STATUS


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retryable


def _wait(retry_state: tenacity.RetryCallState) -> float:
    if not _backoff["enabled"]:
        return 0.0
    return float(tenacity.wait_random_exponential(multiplier=0.2, max=10)(retry_state))


def _count(retry_state: tenacity.RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    key = getattr(exc, "code", None) or type(exc).__name__
    with _counts_lock:
        retry_counts[str(key)] = retry_counts.get(str(key), 0) + 1


def call(fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
    """Run ``fn`` under the policy; re-raises the last error when attempts run out."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_retryable),
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait,
        before_sleep=_count,
        reraise=True,
    )
    return retrying(fn)
