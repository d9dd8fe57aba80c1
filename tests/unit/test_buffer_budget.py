"""Buffered copies share one memory budget: a worker waits for room, an oversize object goes alone."""

from __future__ import annotations

import threading

from migrator.transfer import BufferBudget


def test_holds_wait_for_room_and_oversize_goes_alone() -> None:
    budget = BufferBudget(total=10)
    first_in, release_first = threading.Event(), threading.Event()
    order: list[str] = []

    def hold(name: str, size: int, entered: threading.Event | None = None,
             release: threading.Event | None = None) -> None:
        with budget.hold(size):
            order.append(name)
            if entered:
                entered.set()
            if release:
                assert release.wait(10)

    a = threading.Thread(target=hold, args=("a", 6, first_in, release_first))
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=hold, args=("b", 6))
    big = threading.Thread(target=hold, args=("big", 50))   # larger than the whole budget
    b.start()
    big.start()
    b.join(0.2)
    assert b.is_alive() and big.is_alive() and order == ["a"]   # 6 + 6 > 10: both wait
    release_first.set()
    for t in (a, b, big):
        t.join(10)
    assert sorted(order[1:]) == ["b", "big"]
    with budget.hold(10):   # everything was given back
        pass
