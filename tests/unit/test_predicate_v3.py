"""Predicate v3 and record schema 2: rows left untouched by policy (OUT_OF_SCOPE), `complete` over the rows in
scope, the required `locations` member; and what v2 may not hold."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from migrator.attest import dsse
from migrator.attest.canonical import canonical_json
from migrator.attest.policy import AllOf, Inputs, Policy, RequireManifest, RequireRecords, Threshold
from migrator.attest.statement import PAYLOAD_TYPE, PREDICATE_TYPE_V2, PREDICATE_TYPE_V3
from migrator.attest.verify import verify_attestation
from migrator.errors import VerificationError
from tests.unit.test_proofs import Wave, make_wave, record

LOCATIONS: list[dict[str, Any]] = [
    {"name": "dc", "kind": "s3", "region": "us-east-1", "owner": "000000000042", "endpoint": "https://127.0.0.1:9100",
     "buckets": ["src"], "used": [{"bucket": "s3://dc@src", "roles": ["source"], "rows": 4, "region": "us-east-1",
                                   "region_verified": False, "region_source": "declared", "owner": "000000000042",
                                   "owner_source": "ExpectedBucketOwner"}]},
    {"name": "eu", "kind": "s3", "region": "eu-west-1", "owner": "000000000042", "endpoint": None,
     "buckets": ["eu-src"], "used": []},
]


def located(rec: dict[str, Any], at: str) -> dict[str, Any]:
    """The record as a wave with named locations writes it: schema 2, every URI naming its location."""
    def q(uri: str) -> str:
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://{at if scheme == 's3' else scheme + '-us'}@{rest}"

    out = {**rec, "schema": 2, "source": q(rec["source"]), "destination": q(rec["destination"]),
           "replicas": [q(u) for u in rec["replicas"]],
           "deletions": [{**d, "uri": q(d["uri"])} for d in rec["deletions"]]}
    out["proof"] = {**rec["proof"], "locations": [q(u) for u in rec["proof"]["locations"]]}
    return out


def out_of_scope(row: int) -> dict[str, Any]:
    """An untouched row, as the pipeline records it: no versions, deletions or proof."""
    return {"schema": 2, "row": row, "state": "OUT_OF_SCOPE", "reason": "other residency",
            "detail": "residency SG; the wave moves US", "residency": "SG",
            "source": f"s3://eu@eu-src/users/{row:04d}", "destination": f"oci://oci-eu@ns/dst/users/{row:04d}",
            "replicas": [], "versions": [], "deletions": []}


def v3_wave(n: int = 6, untouched: tuple[int, ...] = (2, 5), held: tuple[int, ...] = ()) -> Wave:
    recs = [out_of_scope(i) if i in untouched else
            located(record(i, *(("HELD", "legal hold") if i in held else ("REMOVED", None))), "dc")
            for i in range(1, n + 1)]
    return make_wave(recs=recs, locations=LOCATIONS)


def statement(w: Wave) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(w.envelope)["payload"]))  # type: ignore[no-any-return]


def resign(w: Wave, st: dict[str, Any]) -> bytes:
    return dsse.sign_envelope(canonical_json(st), PAYLOAD_TYPE, w.signers)


def full(w: Wave) -> Policy:
    return AllOf(Threshold(w.pubs), RequireRecords(), RequireManifest())


def verify(w: Wave, envelope: bytes | None = None) -> Any:
    return verify_attestation(envelope or w.envelope, Inputs(records=w.records, manifest=w.manifest), full(w))


def test_a_v3_attestation_with_out_of_scope_rows_verifies() -> None:
    w = v3_wave()
    v = verify(w)
    p = v.predicate
    assert statement(w)["predicateType"] == PREDICATE_TYPE_V3
    assert p["totals"] == {"rows": 6, "removed": 4, "held": 0, "failed": 0, "out_of_scope": 2}
    assert p["complete"] is True                     # every row in scope was removed
    assert p["exceptions"]["by_reason"] == {}        # untouched rows are no exceptions
    assert p["locations"] == LOCATIONS
    assert "s3://eu@eu-src" not in p["scope"]        # untouched: never searched


def test_a_v3_attestation_with_locations_null_verifies() -> None:
    w = make_wave(6, locations=None)
    assert verify(w).predicate["locations"] is None


def test_complete_is_over_the_rows_in_scope() -> None:
    w = v3_wave()
    st = statement(w)
    st["predicate"]["complete"] = False              # the v1/v2 rule (removed == rows) would say false
    with pytest.raises(VerificationError, match=r"^totals: complete must be true exactly when every row in scope"):
        verify_attestation(resign(w, st), Inputs(), Threshold(w.pubs))   # the predicate alone says so
    w = v3_wave(held=(3,))
    assert verify(w).predicate["complete"] is False
    st = statement(w)
    st["predicate"]["complete"] = True
    with pytest.raises(VerificationError, match=r"^totals: complete"):
        verify(w, resign(w, st))


def test_out_of_scope_rows_are_counted_and_must_add_up() -> None:
    w = v3_wave()
    st = statement(w)
    st["predicate"]["totals"].update(out_of_scope=1, removed=5)     # an untouched row claimed as removed
    with pytest.raises(VerificationError, match=r"^totals: records add up to"):
        verify(w, resign(w, st))
    st = statement(w)
    st["predicate"]["totals"]["out_of_scope"] = 3
    with pytest.raises(VerificationError, match=r"^totals: removed \+ held \+ failed \(\+ out_of_scope\)"):
        verify(w, resign(w, st))


def test_v3_needs_out_of_scope_in_totals_and_locations() -> None:
    w = v3_wave()
    st = statement(w)
    del st["predicate"]["totals"]["out_of_scope"]
    with pytest.raises(VerificationError, match=r"predicate.totals needs exactly"):
        verify(w, resign(w, st))
    st = statement(w)
    del st["predicate"]["locations"]
    with pytest.raises(VerificationError, match=r"predicate lacks locations"):
        verify(w, resign(w, st))
    for bad in ({"name": "dc"}, [{"kind": "s3"}], ["dc"], "dc"):
        st = statement(w)
        st["predicate"]["locations"] = bad
        with pytest.raises(VerificationError, match=r"predicate.locations is neither null nor"):
            verify(w, resign(w, st))


def test_a_v2_attestation_with_an_out_of_scope_record_fails() -> None:
    """v2 knows no such state: its totals cannot count the row, so the records never add up."""
    w = v3_wave(untouched=(2,))
    for as_state in ("removed", "held"):
        st = statement(w)
        p = st["predicate"]
        st["predicateType"] = PREDICATE_TYPE_V2
        del p["locations"]
        del p["totals"]["out_of_scope"]
        p["totals"][as_state] += 1
        if as_state == "held":
            p["exceptions"]["held"] += 1
            p["exceptions"]["by_reason"] = {"other residency": 1}
            p["complete"] = False
        with pytest.raises(VerificationError, match=r"^totals: records add up to"):
            verify(w, resign(w, st))
    st = statement(w)
    st["predicateType"] = PREDICATE_TYPE_V2
    with pytest.raises(VerificationError, match=r"predicate.totals needs exactly failed, held, removed, rows"):
        verify(w, resign(w, st))
