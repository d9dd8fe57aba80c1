"""Token buckets and gates (migrator/limits.py): exact arithmetic under a fake clock, bursts, debt above the
burst, several buckets in one acquire, threads that never exceed rate x T + burst, and what counts as
unlimited or refused."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import pytest

from migrator.errors import InputError
from migrator.limits import (
    NO_LIMITS,
    UNLIMITED,
    Caps,
    Gate,
    Limiter,
    MiB,
    Rates,
    StoreLimits,
    TokenBucket,
    acquire_in_pieces,
)
from migrator.stores.base import PutRequest


class FakeClock:
    """A clock that only moves when someone sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _bucket(rate: float, burst: float | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_a_full_bucket_grants_its_burst_at_once_then_one_token_per_interval() -> None:
    bucket, clock = _bucket(10, burst=5)
    for _ in range(5):
        bucket.acquire()
    assert clock.sleeps == [] and bucket.tokens == 0
    bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.1)]
    bucket.acquire(2)
    assert clock.sleeps[-1] == pytest.approx(0.2) and clock.now == pytest.approx(100.3)


def test_refill_is_exact_and_capped_at_the_burst() -> None:
    bucket, clock = _bucket(4, burst=8)
    bucket.acquire(8)
    clock.now += 0.5
    assert bucket.tokens == pytest.approx(2.0)
    clock.now += 100
    assert bucket.tokens == 8.0          # never more than the burst, however long it was idle
    bucket.acquire(3.5)
    assert bucket.tokens == pytest.approx(4.5) and clock.sleeps == []


def test_default_burst_is_one_second_at_least_the_minimum() -> None:
    assert TokenBucket(20).burst == 20
    assert TokenBucket(0.5).burst == 1               # at least one request
    assert TokenBucket(100, min_burst=MiB).burst == MiB   # bytes: at least one read piece
    assert TokenBucket(8 * MiB, min_burst=MiB).burst == 8 * MiB


def test_a_request_above_the_burst_waits_for_its_debt_and_later_callers_queue_behind_it() -> None:
    bucket, clock = _bucket(10, burst=5)
    bucket.acquire(25)                    # 5 held, 20 owed: 2 seconds
    assert clock.sleeps == [pytest.approx(2.0)]
    assert bucket.tokens == pytest.approx(0.0)
    bucket.acquire(1)                     # behind it: one more interval
    assert clock.sleeps[-1] == pytest.approx(0.1)


def test_zero_tokens_never_wait_and_bad_counts_are_refused() -> None:
    bucket, clock = _bucket(1, burst=1)
    bucket.acquire(1)
    bucket.acquire(0)
    assert clock.sleeps == []
    for bad in (-1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            bucket.acquire(bad)
    with pytest.raises(ValueError):
        UNLIMITED.acquire(-1)


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan"), True, "10"])
def test_a_bucket_wants_a_positive_finite_rate(rate: object) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate)  # type: ignore[arg-type]


def test_a_bucket_wants_a_positive_burst() -> None:
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


def test_a_sleep_that_returns_early_is_slept_again() -> None:
    clock = FakeClock()

    def short_sleep(seconds: float) -> None:   # a signal, a coarse timer: wakes up at half the time
        clock.sleep(max(seconds / 2, 1e-4))

    bucket = TokenBucket(1, 1, clock=clock, sleep=short_sleep)
    bucket.acquire(1)
    bucket.acquire(1)
    assert clock.now >= 101.0 and len(clock.sleeps) > 1


def test_a_gate_acquires_from_every_bucket() -> None:
    clock = FakeClock()
    fast = TokenBucket(100, 1, clock=clock, sleep=clock.sleep)
    slow = TokenBucket(2, 1, clock=clock, sleep=clock.sleep)
    gate = Gate((fast, slow))
    for _ in range(5):
        gate.acquire()
    # The slow bucket sets the pace: 1 from its burst, then 4 at 2 a second.
    assert clock.now == pytest.approx(102.0)
    assert fast.tokens == pytest.approx(1.0)        # refilled meanwhile, capped at its burst
    assert isinstance(gate, Limiter) and isinstance(fast, Limiter)


def test_joined_gates_draw_once_from_a_shared_bucket() -> None:
    clock = FakeClock()
    wave = TokenBucket(10, 100, clock=clock, sleep=clock.sleep)
    src = TokenBucket(10, 100, clock=clock, sleep=clock.sleep)
    dst = TokenBucket(10, 100, clock=clock, sleep=clock.sleep)
    both = Gate.join(Gate((src, wave)), Gate((dst, wave)))
    assert both.limiters == (src, wave, dst)
    both.acquire(30)
    assert (wave.tokens, src.tokens, dst.tokens) == (70, 70, 70)
    assert not Gate() and not Gate.join()


def test_acquire_in_pieces_never_asks_for_more_than_a_piece() -> None:
    asked: list[float] = []

    class Recorder:
        def acquire(self, n: float = 1) -> None:
            asked.append(n)

    acquire_in_pieces(Recorder(), 5 * MiB + 3)
    assert asked == [MiB] * 5 + [3]
    acquire_in_pieces(Recorder(), 0)
    assert len(asked) == 6


def test_many_threads_never_exceed_rate_times_elapsed_plus_burst() -> None:
    """Real time: each grant's return time is read from the bucket's own clock; the k-th grant (in return
    order) must have come no earlier than (k - burst) / rate after the bucket was built."""
    rate, burst, threads, each = 400.0, 10.0, 8, 25
    start = time.monotonic()
    bucket = TokenBucket(rate, burst)
    returned: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(each):
            bucket.acquire()
            t = time.monotonic()
            with lock:
                returned.append(t)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    returned.sort()
    assert len(returned) == threads * each
    for k, t in enumerate(returned, start=1):
        assert k <= rate * (t - start) + burst + 1e-6, f"grant {k} at {t - start:.4f}s"


def test_many_threads_with_a_fake_clock_share_one_debt() -> None:
    """Reservations are exact under contention: N threads taking one token each from an empty bucket owe
    N / rate seconds together, and the last one to be served waited that long."""
    clock = FakeClock()
    lock = threading.Lock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:   # no clock advance: record what each reservation owed
        with lock:
            waits.append(seconds)
        raise _Stop

    bucket = TokenBucket(10, 1, clock=clock, sleep=sleep)
    bucket.acquire(1)   # empty now

    def one() -> None:
        try:
            bucket.acquire(1)
        except _Stop:
            pass

    pool = [threading.Thread(target=one) for _ in range(20)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sorted(waits) == pytest.approx([k / 10 for k in range(1, 21)])


class _Stop(Exception):
    pass


def test_unlimited_means_no_bucket() -> None:
    caps = Caps(Rates(), {"dc": Rates(requests_per_second=0, bytes_per_second=0)})
    assert not caps
    assert caps.limits("dc") is NO_LIMITS and caps.limits(None) is NO_LIMITS and caps.limits("other") is NO_LIMITS
    NO_LIMITS.requests.acquire(10**9)    # returns at once
    NO_LIMITS.bytes.acquire(10**12)


def test_caps_share_one_wave_bucket_across_locations() -> None:
    clock = FakeClock()
    caps = Caps(Rates(requests_per_second=10, bytes_per_second=4 * MiB),
                {"dc": Rates(requests_per_second=2), "gcp": Rates(), "oci": Rates(bytes_per_second=MiB)},
                clock=clock, sleep=clock.sleep)
    dc, gcp, oci, default = (caps.limits(n) for n in ("dc", "gcp", "oci", None))
    wave_requests = default.requests.limiters[0]
    assert dc.requests.limiters[-1] is gcp.requests.limiters[0] is oci.requests.limiters[0] is wave_requests
    assert len(dc.requests.limiters) == 2 and len(gcp.requests.limiters) == 1
    assert oci.bytes.limiters[-1] is dc.bytes.limiters[0] is default.bytes.limiters[0]
    assert len(oci.bytes.limiters) == 2
    for _ in range(10):
        gcp.requests.acquire()             # the wave's burst, all of it
    dc.requests.acquire()                  # dc's own bucket is full, the wave's is empty: 0.1 s
    assert clock.now == pytest.approx(100.1)
    assert caps.limits("dc") is dc        # the same gates every time


@pytest.mark.parametrize(("rates", "field"), [
    ({"requests_per_second": -1}, "transfer.requests_per_second"),
    ({"requests_per_second": float("inf")}, "transfer.requests_per_second"),
    ({"requests_per_second": float("nan")}, "transfer.requests_per_second"),
    ({"requests_per_second": "10"}, "transfer.requests_per_second"),
    ({"requests_per_second": True}, "transfer.requests_per_second"),
    ({"bytes_per_second": -5}, "transfer.bytes_per_second"),
    ({"bytes_per_second": 1.5}, "transfer.bytes_per_second"),
    ({"bytes_per_second": "16MiB"}, "transfer.bytes_per_second"),
])
def test_bad_rates_are_refused_naming_their_field(rates: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        Rates(**rates, where="transfer")  # type: ignore[arg-type]
    assert caught.value.field == field


def test_rates_compare_by_value_not_by_where() -> None:
    assert Rates(5, where="transfer") == Rates(5, where="locations.dc")
    assert Rates(0.5) and Rates(bytes_per_second=1) and not Rates(0, 0) and not Rates()


# --- bytes in the data path (migrator/transfer.py) -------------------------------------------------------

class Recorder:
    """A limiter that grants at once and records every acquire."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def acquire(self, n: float = 1) -> None:
        self.asked.append(n)


def _copy_with_caps(size: int) -> tuple[Recorder, Recorder, Recorder, list[int]]:
    from migrator.stores.memory import MemoryStore
    from migrator.transfer import BufferBudget, copy_version
    from migrator.uri import ObjectURI
    from tests.conftest import store_transfer

    wave, src_own, dst_own = Recorder(), Recorder(), Recorder()
    src = MemoryStore("gs", transfer=store_transfer(), limits=StoreLimits(bytes=Gate((src_own, wave))))
    dst = MemoryStore("oci", transfer=store_transfer(multipart_threshold=16 * MiB),
                      limits=StoreLimits(bytes=Gate((dst_own, wave))))
    src.create_bucket("src")
    dst.create_bucket("dst", versioned=True)
    data = bytes(range(256)) * (size // 256)
    src_uri, dst_uri = ObjectURI("gs", "src", "k"), ObjectURI("oci", "dst", "k", "ns")
    src.put(src_uri, io.BytesIO(data), PutRequest(size=len(data)))
    reads: list[int] = []
    real_open = src.open_read

    def open_read(uri: ObjectURI, version: str | None = None, byte_range: tuple[int, int] | None = None) -> Any:
        stream = real_open(uri, version, byte_range)
        real_read = stream.read

        def read(n: int = -1) -> bytes:
            reads.append(n)
            return real_read(n)

        stream.read = read  # type: ignore[method-assign]
        return stream

    src.open_read = open_read  # type: ignore[method-assign]
    out = copy_version(src, src_uri, None, dst, dst_uri, expected_size=len(data), budget=BufferBudget(64 * MiB))
    assert out.put.size == len(data)
    return wave, src_own, dst_own, reads


def test_a_buffered_copy_pays_in_pieces_of_a_mebibyte_and_still_reads_once() -> None:
    size = 5 * MiB + 512 * 1024
    wave, src_own, dst_own, reads = _copy_with_caps(size)
    assert reads[0] == size and len([n for n in reads if n > 1]) == 1   # one read of the whole: no join copy
    for bucket in (wave, src_own, dst_own):
        assert sum(bucket.asked) == size and max(bucket.asked) <= MiB
    assert len(wave.asked) == 6       # the wave's bucket, shared by both stores, is paid once per piece


def test_a_streamed_copy_pays_for_every_part_it_reads() -> None:
    size = 20 * MiB                   # above the destination's 16 MiB threshold: multipart, 8 MiB reads
    wave, src_own, dst_own, reads = _copy_with_caps(size)
    assert max(reads) <= 8 * MiB
    for bucket in (wave, src_own, dst_own):
        assert sum(bucket.asked) == size and max(bucket.asked) <= MiB


def test_a_short_read_leaves_its_tokens_paid_for_the_next() -> None:
    from migrator.transfer import ByteMeter

    bucket = Recorder()
    meter = ByteMeter(bucket)
    meter.before(3 * MiB)
    meter.after(MiB)                  # the stream returned less than asked
    meter.before(2 * MiB)             # already paid
    assert bucket.asked == [MiB, MiB, MiB]
    meter.after(2 * MiB + 10)         # more than paid for (a longer body than announced): paid after
    assert bucket.asked[-1] == 10
    meter.before(0)
    assert len(bucket.asked) == 4


def test_an_independent_read_pays_its_store_bytes() -> None:
    from migrator.stores.memory import MemoryStore
    from migrator.transfer import sha256_of
    from migrator.uri import ObjectURI
    from tests.conftest import store_transfer

    own = Recorder()
    store = MemoryStore("s3", transfer=store_transfer(), limits=StoreLimits(bytes=Gate((own,))))
    store.create_bucket("b")
    uri = ObjectURI("s3", "b", "k")
    data = b"z" * (2 * MiB + 7)
    store.put(uri, io.BytesIO(data), PutRequest(size=len(data)))
    _sha, size = sha256_of(store, uri, None)
    assert size == len(data) and sum(own.asked) == len(data) and max(own.asked) <= MiB


def test_uncapped_stores_meter_nothing() -> None:
    from migrator.transfer import _meter

    assert _meter(NO_LIMITS.bytes) is None and _meter(Gate.join(NO_LIMITS.bytes, NO_LIMITS.bytes)) is None
