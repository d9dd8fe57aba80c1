"""The one retry policy, and one layer of it. Errors are classified by type and status code, never by text.

Adapters translate SDK exceptions through the one table (``migrator.stores.errors``) into StoreError
subclasses with ``retryable`` set; this module retries those and nothing else. SDK-internal retries are
switched off in the adapters so that this is the only policy.

**One budget of attempts per operation.** The outermost ``call`` opens a budget of ``DEFAULT_ATTEMPTS``
failed attempts; every ``call`` nested in it, at any depth, retries from that same budget rather than from a
fresh one. So a persistent failure costs ``DEFAULT_ATTEMPTS`` attempts in all, however deep the store call
sits (a store call inside the pipeline's retried copy makes 6 requests, not 6 x 6), while a transient one is
retried where it happened: one part of a multipart upload is sent again, not the whole object. Only a
failure outside every nested call (a stream cut while the copy reads) runs the owner's function again.
"The same logical operation" is the same thread, or a thread whose work was wrapped with :func:`carry`
(the parts of a multipart upload, which share the budget: parts already in flight when it runs out still
finish their attempt, so up to ``parts in flight - 1`` more); a thread started plainly begins operations
of its own. Clean-up after a failed attempt (aborting its multipart upload) is an operation of its own too
(:func:`separately`). The budget travels in a ``contextvars`` variable, so it needs no parameter through
the stores' signatures.

Back-off is on unless an entry point turns it off: :func:`set_backoff` switches the sleeps between attempts
off (tests/conftest.py does, and ``cli.main`` does when MIGRATOR_NO_BACKOFF=1, the switch tests hand to the
CLI processes they start); :func:`cap_attempts` caps every policy at fewer attempts. This module reads no
environment.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import tenacity

from migrator.errors import StoreError
from migrator.stores.errors import NO_ANSWER_EXCEPTIONS, RETRYABLE_STATUS

T = TypeVar("T")
P = ParamSpec("P")

__all__ = ["DEFAULT_ATTEMPTS", "RETRYABLE_EXCEPTIONS", "RETRYABLE_STATUS", "call", "cap_attempts", "carry",
           "classify_status", "owned", "retry_counts", "separately", "set_backoff"]

# Kept under this name for callers that classify connection failures themselves.
RETRYABLE_EXCEPTIONS = NO_ANSWER_EXCEPTIONS

DEFAULT_ATTEMPTS = 6
_backoff = {"enabled": True}
_cap: dict[str, int | None] = {"attempts": None}


class _Budget:
    """Failed attempts one operation may still make; shared by the threads carried into it."""

    def __init__(self, attempts: int) -> None:
        self._left = attempts
        self._lock = threading.Lock()

    def spend(self) -> bool:
        """Count one failed attempt; True while another may follow."""
        with self._lock:
            self._left -= 1
            return self._left > 0


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("migrator_retry_budget", default=None)
_counts_lock = threading.Lock()
retry_counts: dict[str, int] = {}


def set_backoff(enabled: bool) -> bool:
    """Tests switch back-off off so that retries do not sleep. Returns the previous setting, to restore."""
    previous = _backoff["enabled"]
    _backoff["enabled"] = enabled
    return previous


def cap_attempts(attempts: int | None) -> int | None:
    """Tests cap every policy at ``attempts`` (at least 1; None lifts the cap). Returns the previous cap."""
    previous = _cap["attempts"]
    _cap["attempts"] = None if attempts is None else max(1, attempts)
    return previous


def classify_status(status: int | None) -> bool:
    return status is not None and status in RETRYABLE_STATUS


def owned() -> bool:
    """True inside a ``call``'s function (or a thread carried into one): a nested ``call`` spends its budget."""
    return _budget.get() is not None


def carry(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, to be run in another thread as part of the caller's operation (e.g. one part of an upload).

    Each run gets its own copy of the caller's context as it is now, so parts running at once never share
    one (a Context cannot be entered by two threads).
    """
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return context.copy().run(fn, *args, **kwargs)

    return run


def separately(fn: Callable[[], T]) -> T:
    """Run ``fn`` as an operation of its own, with its own attempts, even inside a ``call``: for clean-up
    after a failed attempt (aborting its multipart upload), which a retry of the owner would not redo."""
    token = _budget.set(None)
    try:
        return fn()
    finally:
        _budget.reset(token)


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
    """Run ``fn`` under the policy; re-raises the last error when the operation's attempts run out.

    Nested in another ``call`` (see the module docstring), ``fn`` retries from the outer call's budget and
    ``attempts`` is not used.
    """
    budget = _budget.get()
    token = None
    if budget is None:
        cap = _cap["attempts"]
        budget = _Budget(max(1, attempts if cap is None else min(attempts, cap)))
        token = _budget.set(budget)
    spend = budget.spend
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_retryable),
        stop=lambda _: not spend(),   # asked once per retryable failure
        wait=_wait,
        before_sleep=_count,
        reraise=True,
    )
    try:
        return retrying(fn)
    finally:
        if token is not None:
            _budget.reset(token)
