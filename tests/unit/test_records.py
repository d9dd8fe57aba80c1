"""The record schema: exact round trips, readers that keep what they do not know, and the schema's rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.canonical import record_line
from migrator.records import (
    SCHEMA,
    Copying,
    Deletion,
    PendingCopy,
    PlannedStep,
    Reason,
    Record,
    RecordError,
    State,
    pinned_version,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "main-440d51f" / "v2-records.jsonl"


def _lines() -> list[bytes]:
    return FIXTURE.read_bytes().splitlines(keepends=True)


def test_every_record_written_at_440d51f_reads_and_writes_back_byte_for_byte() -> None:
    lines = _lines()
    assert len(lines) == 221
    for line in lines:
        rec = Record.from_json(json.loads(line))
        assert record_line(rec.to_json()) == line


def test_a_record_survives_the_journal_unchanged() -> None:
    for line in _lines():
        rec = Record.from_json(json.loads(line))
        again = Record.from_journal(rec.row, rec.state, rec.reason, rec.journal_data())
        # The journal keeps no schema: a record it holds is written in the schema this migrator writes.
        assert again.schema == SCHEMA
        assert record_line({**again.to_json(), "schema": rec.schema}) == line
        assert "row" not in rec.journal_data() and "state" not in rec.journal_data()


def test_working_members_stay_in_the_journal_and_out_of_the_record() -> None:
    rec = Record(row=3, state=State.COPYING, reason=None, source="s3://b/k", destination="oci://ns/d/k",
                 copying=Copying((PendingCopy("v1", '"e"', 5),), "2026-01-01T00:00:00.000000Z"),
                 plan=(PlannedStep("s3://b/k", "version", "v1"), PlannedStep("s3://b/k", "upload", upload_id="u")))
    data = rec.journal_data()
    assert data["copying"] == {"versions": [{"version": "v1", "etag": '"e"', "size": 5}],
                               "at": "2026-01-01T00:00:00.000000Z"}
    assert data["plan"] == [{"uri": "s3://b/k", "version": "v1", "if_match": None, "kind": "version"},
                            {"uri": "s3://b/k", "upload_id": "u", "kind": "upload"}]
    back = Record.from_journal(3, State.COPYING, None, data)
    assert back.copying == rec.copying and back.plan == rec.plan
    assert "copying" not in back.to_json() and "plan" not in back.to_json()


def test_members_a_reader_does_not_know_are_kept_at_every_level() -> None:
    obj: dict[str, Any] = json.loads(_lines()[0])
    obj["from_the_future"] = {"a": [1, 2]}
    obj["versions"][0]["later_member"] = "x"
    obj["versions"][0]["digests"][0]["note"] = True
    obj["deletions"][0]["later"] = 7
    obj["proof"]["also"] = "y"
    rec = Record.from_json(obj)
    assert rec.unknown == {"from_the_future": {"a": [1, 2]}}
    assert rec.to_json() == obj


def test_a_reason_that_is_not_known_here_is_kept_as_written() -> None:
    obj = json.loads(_lines()[-1])
    obj["state"], obj["reason"] = "HELD", "a reason from a later version"
    rec = Record.from_json(obj)
    assert rec.reason == "a reason from a later version"
    assert rec.to_json()["reason"] == "a reason from a later version"


def test_the_producer_speaks_reasons_and_states_as_enums_that_serialise_as_their_strings() -> None:
    rec = Record(row=1, state=State.HELD, reason=Reason.S3_LEGAL_HOLD, source="s3://b/k", destination="oci://n/b/k")
    line = record_line(rec.to_json())
    assert b'"reason":"S3 Object Lock legal hold"' in line and b'"state":"HELD"' in line
    assert b'"schema":%d' % SCHEMA in line


def test_the_schema_number_decides_what_is_required() -> None:
    good = {"schema": 1, "row": 1, "state": "REMOVED", "reason": None, "source": "s3://b/k", "destination": "oci://n/b/k"}
    assert Record.from_json(good).row == 1
    for member in ("row", "state", "reason"):
        with pytest.raises(RecordError, match=member):
            Record.from_json({k: v for k, v in good.items() if k != member})
    with pytest.raises(RecordError, match="schema 99"):
        Record.from_json({**good, "schema": 99})
    with pytest.raises(RecordError, match="without a reason"):
        Record.from_json({**good, "state": "HELD"})
    with pytest.raises(RecordError, match="state"):
        Record.from_json({**good, "state": "COPYING"})


def test_a_record_without_a_schema_member_reads_as_schema_1_and_writes_back_without_one() -> None:
    obj = {"row": 2, "state": "REMOVED", "reason": None, "source": "s3://b/k", "destination": "oci://n/b/k",
           "replicas": [], "versions": [], "deletions": []}
    rec = Record.from_json(obj)
    assert rec.schema is None and rec.to_json() == obj


def test_wrong_member_types_are_schema_errors_not_crashes() -> None:
    base = json.loads(_lines()[0])
    for path, value in ((("versions",), "nope"), (("versions", 0, "size"), "5"), (("deletions", 0), 3),
                        (("proof", "empty"), "yes"), (("replicas",), [1])):
        obj = json.loads(json.dumps(base))
        target = obj
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
        with pytest.raises(RecordError):
            Record.from_json(obj)


def test_s3s_old_null_version_string_pins_no_version_id() -> None:
    assert pinned_version("null") is None and pinned_version(None) is None and pinned_version("17") == "17"
    rec = Record.from_json(json.loads(_lines()[0]))
    v = rec.versions[0]
    assert v.version == "null" and v.pin is None
    assert rec.verified(None, v.etag) is v and rec.verified("null", v.etag) is v


def test_an_upload_deletion_has_no_version_member() -> None:
    d = Deletion(uri="s3://b/k", kind="upload", at="t", result="aborted", upload_id="u1")
    assert d.to_json() == {"uri": "s3://b/k", "upload_id": "u1", "kind": "upload", "at": "t", "result": "aborted"}
    assert Deletion.from_json(d.to_json()) == d
