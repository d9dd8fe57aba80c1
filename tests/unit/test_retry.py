"""migrator.retry: one policy, one layer (the outermost call owns the attempts), and its testing switches."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from migrator import retry
from migrator.errors import DigestRefused, InputError, StoreError


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(retry._backoff, "enabled", False)
    yield
    assert not retry.owned(), "a call left its owner mark behind"


class Counter:
    """A store call that fails ``fails`` times (or always), counting its attempts; thread-safe."""

    def __init__(self, error: Exception, fails: int = 10**9) -> None:
        self.error = error
        self.fails = fails
        self.attempts = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fails:
                raise self.error
        return "ok"


def busy() -> StoreError:
    return StoreError("busy", status=503, code="SlowDown", retryable=True)


def test_a_persistent_retryable_failure_makes_six_attempts() -> None:
    call = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(call)
    assert call.attempts == retry.DEFAULT_ATTEMPTS == 6


def test_a_passing_retry_returns_the_value() -> None:
    call = Counter(busy(), fails=2)
    assert retry.call(call) == "ok" and call.attempts == 3


@pytest.mark.parametrize("error", [
    DigestRefused("refused", status=400, code="BadDigest"),
    StoreError("bad", status=400, code="HTTP400"),
    InputError("not a store error at all"),
])
def test_what_is_not_retryable_is_tried_once(error: Exception) -> None:
    call = Counter(error)
    with pytest.raises(type(error)):
        retry.call(call)
    assert call.attempts == 1


def test_a_nested_call_retries_from_the_outer_calls_budget() -> None:
    inner = Counter(busy())
    outer_runs = [0]

    def operation() -> str:
        outer_runs[0] += 1
        assert retry.owned()
        return retry.call(inner)   # e.g. a store's PUT inside the pipeline's retried copy

    with pytest.raises(StoreError):
        retry.call(operation)
    # The PUT is retried where it failed, and the copy is not run again: 6 attempts in all, not 6 x 6.
    assert (outer_runs[0], inner.attempts) == (1, 6)


def test_a_failure_outside_any_nested_call_runs_the_operation_again_from_the_same_budget() -> None:
    inner = Counter(busy(), fails=2)
    runs = [0]

    def operation() -> str:
        runs[0] += 1
        got = retry.call(inner)              # fails twice, then passes: 2 of the 6 spent
        if runs[0] < 10:
            raise busy()                     # a stream cut while reading: the operation itself fails
        return got

    with pytest.raises(StoreError):
        retry.call(operation)
    assert (inner.attempts, runs[0]) == (3 + 3, 4)   # 2 failed PUTs + 4 failed runs = 6 failed attempts


def test_three_levels_still_make_six_attempts() -> None:
    inner = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(lambda: retry.call(lambda: retry.call(inner)))
    assert inner.attempts == 6


def test_a_nested_success_after_outer_retries() -> None:
    inner = Counter(busy(), fails=4)
    assert retry.call(lambda: retry.call(inner)) == "ok" and inner.attempts == 5


def test_calls_after_an_outer_call_own_their_attempts_again() -> None:
    with pytest.raises(StoreError):
        retry.call(lambda: retry.call(Counter(busy())))
    assert not retry.owned()
    later = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(later)
    assert later.attempts == 6


def _in_threads(fn: Callable[[], str], n: int, carry: bool) -> None:
    with ThreadPoolExecutor(max_workers=n) as pool:
        task = retry.carry(fn) if carry else fn
        futures = [pool.submit(task) for _ in range(n)]
        for f in futures:
            f.result()


def test_carried_threads_belong_to_the_callers_operation() -> None:
    part = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(lambda: _in_threads(lambda: retry.call(part), 3, carry=True))
    # 3 parts at once share the operation's 6 failed attempts; parts in flight when it ran out finish theirs.
    assert 6 <= part.attempts <= 6 + 2


def test_threads_started_plainly_begin_operations_of_their_own() -> None:
    part = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(lambda: _in_threads(lambda: retry.call(part), 1, carry=False))
    assert part.attempts == 6 * 6   # why the adapters carry their part threads


def test_carry_outside_any_call_leaves_each_thread_its_own_retries() -> None:
    part = Counter(busy(), fails=3)
    _in_threads(lambda: retry.call(part), 1, carry=True)
    assert part.attempts == 4


def test_one_carried_function_runs_in_many_threads_at_once() -> None:
    barrier = threading.Barrier(4)

    def work() -> str:
        barrier.wait(timeout=10)  # all four inside the carried context at the same time
        return "ok" if retry.owned() else "not owned"

    def operation() -> list[str]:
        task = retry.carry(work)
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda _: task(), range(4)))

    assert retry.call(operation) == ["ok"] * 4


def test_cap_attempts_caps_every_policy_and_restores() -> None:
    previous = retry.cap_attempts(2)
    try:
        call = Counter(busy())
        with pytest.raises(StoreError):
            retry.call(call, attempts=10)
        assert call.attempts == 2
        assert retry.cap_attempts(0) == 2   # at least one attempt
        once = Counter(busy())
        with pytest.raises(StoreError):
            retry.call(once)
        assert once.attempts == 1
    finally:
        retry.cap_attempts(previous)
    assert previous is None
    uncapped = Counter(busy())
    with pytest.raises(StoreError):
        retry.call(uncapped)
    assert uncapped.attempts == 6


def test_retries_are_counted_by_code() -> None:
    before = retry.retry_counts.get("SlowDown", 0)
    with pytest.raises(StoreError):
        retry.call(lambda: retry.call(Counter(busy())))
    assert retry.retry_counts.get("SlowDown", 0) - before == 5   # one count per retry, at the owner only


def test_backoff_sleeps_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", slept.append)
    with pytest.raises(StoreError):
        retry.call(Counter(busy()), attempts=3)
    assert slept == [0.0, 0.0]
    slept.clear()
    retry.set_backoff(True)
    try:
        with pytest.raises(StoreError):
            retry.call(Counter(busy()), attempts=3)
    finally:
        retry.set_backoff(False)
    assert len(slept) == 2 and all(0 < s <= 10 for s in slept)


# The switch a test hands to the CLI processes it starts: read by the entry point (cli.main), which then
# runs its command; migrator.retry itself reads no environment, so importing it leaves back-off on.
_AT_IMPORT_THEN_IN_MAIN = (
    "import migrator.cli as cli\n"
    "from migrator import retry\n"
    "print(retry._backoff['enabled'])\n"
    "cli.app = lambda: print(retry._backoff['enabled'])\n"
    "cli.main()\n")


@pytest.mark.parametrize(("value", "enabled"), [("1", False), ("", True), ("0", True)])
def test_the_environment_switch_is_read_by_the_entry_point(value: str, enabled: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_NO_BACKOFF"}
    if value:
        env["MIGRATOR_NO_BACKOFF"] = value
    out = subprocess.run([sys.executable, "-c", _AT_IMPORT_THEN_IN_MAIN],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", str(enabled)]


def test_clean_up_inside_an_operation_has_attempts_of_its_own() -> None:
    cleanup = Counter(busy(), fails=3)
    runs = [0]

    def operation() -> str:
        runs[0] += 1
        retry.separately(lambda: retry.call(cleanup))   # e.g. aborting the attempt's multipart upload
        assert retry.owned()            # back inside the owner's operation afterwards
        raise StoreError("not retryable", status=400)

    with pytest.raises(StoreError):
        retry.call(operation)
    assert (runs[0], cleanup.attempts) == (1, 4)
