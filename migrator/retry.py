"""The one retry policy. Errors are classified by type and status code, never by message text.

Adapters translate SDK exceptions into StoreError subclasses with ``retryable`` set by
``classify_status``/``RETRYABLE_EXCEPTIONS``; this module retries those and nothing else. SDK-internal
retries are switched off in the adapters so that this is the only policy.

Back-off is on unless an entry point turns it off: tests call ``set_backoff(False)`` (tests/conftest.py),
and ``cli.main`` does so when MIGRATOR_NO_BACKOFF=1, the switch tests hand to the CLI processes they start.
This module reads no environment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import tenacity

from migrator.errors import StoreError

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Connection-level failures from urllib3/requests/http.client all derive from these builtins.
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

DEFAULT_ATTEMPTS = 6
_backoff = {"enabled": True}
_counts_lock = threading.Lock()
retry_counts: dict[str, int] = {}


def set_backoff(enabled: bool) -> bool:
    """Tests switch back-off off so that retries do not sleep. Returns the previous setting, to restore."""
    previous = _backoff["enabled"]
    _backoff["enabled"] = enabled
    return previous


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
