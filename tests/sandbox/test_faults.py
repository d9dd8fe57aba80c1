"""FaultInjector: plans, deterministic decisions, counts, body transforms and the control path (no network)."""

from __future__ import annotations

import json
import socket
import threading
from typing import TypedDict

import pytest

from migrator.errors import InputError, UnsafeEndpointError
from migrator.sandbox.faults import (
    FAULT_KINDS,
    PASS,
    Action,
    FaultInjector,
    FaultPlan,
    abort_connection,
    flip_bit,
    get_faults,
    set_faults,
)


class Sleeps:
    """Records the delays the injector asks for, instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def injector(plan: FaultPlan | None = None) -> tuple[FaultInjector, Sleeps]:
    sleeps = Sleeps()
    inj = FaultInjector("test", sleep=sleeps)
    inj.configure(plan)
    return inj, sleeps


def decisions(inj: FaultInjector, n: int) -> list[Action]:
    ops = ("GetObject", "PutObject", "HeadObject")
    return [inj.decide(ops[i % 3], data_in=i % 3 == 1, data_out=i % 3 == 0) for i in range(n)]


# -- plans

class PlanFields(TypedDict, total=False):
    """FaultPlan's fields: the plans below are well-typed, and FaultPlan refuses their values."""

    latency_ms: float
    rate: float
    kinds: frozenset[str]
    seed: int
    operations: frozenset[str]
    timeout_ms: float


@pytest.mark.parametrize("kwargs", [
    {"kinds": frozenset({"explode"}), "rate": 0.5},
    {"kinds": frozenset({"500"}), "rate": 1.5},
    {"kinds": frozenset({"500"}), "rate": -0.1},
    {"rate": 0.5},
    {"latency_ms": -1.0},
    {"latency_ms": 1e9},
    {"timeout_ms": 1e9},
])
def test_invalid_plans_are_refused(kwargs: PlanFields) -> None:
    with pytest.raises(InputError):
        FaultPlan(**kwargs)


def test_plan_json_round_trip_and_empty_plan() -> None:
    plan = FaultPlan(latency_ms=5, rate=0.25, kinds=frozenset({"500", "flip-get"}), seed=7,
                     operations=frozenset({"GetObject"}), timeout_ms=100)
    assert FaultPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert FaultPlan.from_json({}) == FaultPlan() == FaultPlan.from_json(None)
    assert not FaultPlan().active
    assert FaultPlan(latency_ms=1).active


@pytest.mark.parametrize("data", [{"rate": 0.5, "kinds": ["500"], "surprise": 1}, {"kinds": "500", "rate": 1},
                                  {"kinds": [5], "rate": 1}, {"rate": "often", "kinds": ["500"]}])
def test_bad_plan_json_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(InputError):
        FaultPlan.from_json(data)


# -- decisions

def test_same_seed_same_decisions_and_a_new_plan_restarts_the_sequence() -> None:
    plan = FaultPlan(rate=0.4, kinds=FAULT_KINDS, seed=42)
    a, _ = injector(plan)
    b, _ = injector(plan)
    first = decisions(a, 300)
    assert first == decisions(b, 300)
    a.configure(plan)
    assert decisions(a, 300) == first
    other, _ = injector(FaultPlan(rate=0.4, kinds=FAULT_KINDS, seed=43))
    assert decisions(other, 300) != first


def test_rate_and_counts_by_kind() -> None:
    inj, _ = injector(FaultPlan(rate=0.3, kinds=frozenset({"500", "503-slowdown", "429"}), seed=1))
    actions = [inj.decide("GetObject") for _ in range(2000)]
    injected = [a.kind for a in actions if a.kind is not None]
    assert 450 <= len(injected) <= 750  # 30% of 2000, loosely
    counts = inj.injected()
    assert sum(counts.values()) == len(injected)
    assert set(counts) == {"500", "503-slowdown", "429"}
    assert inj.requests() == {"GetObject": 2000}


def test_full_rate_injects_every_request() -> None:
    inj, _ = injector(FaultPlan(rate=1.0, kinds=frozenset({"503-slowdown"})))
    assert all(inj.decide("PutObject").status == 503 for _ in range(50))
    assert inj.injected() == {"503-slowdown": 50}


def test_body_kinds_apply_only_to_requests_that_carry_object_bytes() -> None:
    inj, _ = injector(FaultPlan(rate=1.0, kinds=frozenset({"flip-get", "truncate", "flip-put"})))
    assert inj.decide("ListObjectVersions") is PASS
    assert inj.decide("GetObject", data_out=True).kind in {"flip-get", "truncate"}
    assert inj.decide("PutObject", data_in=True).kind == "flip-put"
    assert sum(inj.injected().values()) == 2
    assert inj.requests() == {"ListObjectVersions": 1, "GetObject": 1, "PutObject": 1}


def test_operations_limit_faults_and_latency() -> None:
    inj, sleeps = injector(FaultPlan(latency_ms=20, rate=1.0, kinds=frozenset({"500"}),
                                     operations=frozenset({"PutObject"})))
    assert inj.before("GetObject") is PASS
    assert sleeps.calls == []
    assert inj.before("PutObject").status == 500
    assert sleeps.calls == [0.02]


def test_latency_and_timeout_hold_are_slept_by_before() -> None:
    inj, sleeps = injector(FaultPlan(latency_ms=10, rate=1.0, kinds=frozenset({"timeout"}), timeout_ms=300))
    action = inj.before("HeadObject")
    assert action.drop_before and not action.drop_after
    assert sleeps.calls == [pytest.approx(0.31)]
    quiet, sleeps2 = injector(None)
    assert quiet.before("HeadObject") is PASS and sleeps2.calls == []


def test_thread_safe_counts() -> None:
    inj, _ = injector(FaultPlan(rate=0.5, kinds=frozenset({"500"}), seed=3))
    results: list[list[Action]] = []

    def work() -> None:
        results.append([inj.decide("GetObject") for _ in range(500)])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inj.requests() == {"GetObject": 4000}
    assert inj.injected()["500"] == sum(a.kind == "500" for r in results for a in r)


def test_reset_clears_plan_and_counts() -> None:
    inj, _ = injector(FaultPlan(rate=1.0, kinds=frozenset({"429"})))
    inj.decide("GetObject")
    inj.reset()
    assert inj.plan == FaultPlan()
    assert inj.requests() == {} and inj.injected() == {}


# -- actions

def test_flip_bit_changes_exactly_one_bit() -> None:
    body = bytes(range(256)) * 4
    for salt in (0, 1, 12345, 2**31 + 7):
        flipped = flip_bit(body, salt)
        assert len(flipped) == len(body)
        diff = sum(bin(x ^ y).count("1") for x, y in zip(body, flipped, strict=True))
        assert diff == 1
        assert flip_bit(body, salt) == flipped  # deterministic
    assert flip_bit(b"", 5) == b""


def test_action_transforms() -> None:
    body = b"0123456789" * 10
    truncated = Action("truncate", 37).response_body(body)
    assert body.startswith(truncated) and len(truncated) < len(body)
    assert Action("truncate", 37).close_after
    assert Action("flip-get", 9).response_body(body) != body
    assert Action("flip-get", 9).request_body(body) == body
    assert Action("flip-put", 9).request_body(body) != body
    assert Action("flip-put", 9).response_body(body) == body
    assert Action("reset-after").drop_after and not Action("reset-after").drop_before
    assert Action("reset-before").drop_before
    assert (Action("500").status, Action("503-slowdown").status, Action("429").status) == (500, 503, 429)
    assert PASS.status is None and PASS.response_body(body) == body


# -- control path and clients

def test_control_path() -> None:
    inj, _ = injector()
    status, snap = inj.control("POST", json.dumps({"rate": 1, "kinds": ["500"], "seed": 9}).encode())
    assert status == 200 and snap["plan"]["kinds"] == ["500"] and snap["active"]
    inj.decide("GetObject")
    status, snap = inj.control("GET", b"")
    assert status == 200 and snap["injected"] == {"500": 1} and snap["requests"] == {"GetObject": 1}
    assert snap["endpoint"] == "test"
    assert inj.control("POST", b"{not json")[0] == 400
    assert inj.control("POST", b'{"kinds": ["nope"], "rate": 1}')[0] == 400
    assert inj.control("DELETE", b"")[0] == 405
    assert inj.plan.kinds == frozenset({"500"})  # refused plans change nothing
    status, snap = inj.control("POST", b"")
    assert status == 200 and not snap["active"]


@pytest.mark.parametrize("url", ["http://example.com:9000", "http://10.0.0.1", "https://s3.amazonaws.com"])
def test_clients_refuse_non_loopback(url: str) -> None:
    with pytest.raises(UnsafeEndpointError):
        set_faults(url, FaultPlan(latency_ms=1))
    with pytest.raises(UnsafeEndpointError):
        get_faults(url)


def test_abort_connection_resets_the_peer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
        with client:
            abort_connection(server)
            assert server.fileno() == -1
            with pytest.raises(ConnectionResetError):
                client.recv(1)
